//! Code-search guards run with the tests (SEC-20): secrets are compared in one place each, in
//! constant time, and never with `==`.

use std::path::Path;

use crate::harness::repo;

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn secrets_are_compared_only_in_constant_time() {
    let mut files = Vec::new();
    sources(&repo().join("src"), &mut files);
    assert!(files.len() > 20, "the source tree was not found");
    // `==`/`!=` next to a name that holds a secret (names of environment variables, `*_env`,
    // are configuration, not secrets).
    let plain = regex::Regex::new(
        r"(?i)\b[a-z_.]*(token|secret|digest|password|passwd|api_key)[a-z_]*\b\s*[!=]=|[!=]=\s*&?[a-z_.]*(token|secret|digest|password|passwd|api_key)",
    )
    .expect("regex");
    let mut offenders = Vec::new();
    let mut constant_time = Vec::new();
    for (path, text) in &files {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if plain.find_iter(code).any(|m| !m.as_str().contains("_env")) {
                offenders.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
            if code.contains("ct_eq(") {
                constant_time.push(path.clone());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "secrets compared with ==/!= (use subtle::ConstantTimeEq over digests):\n{}",
        offenders.join("\n")
    );
    // The two checks that compare secrets: the admin token and the invalidation grants.
    constant_time.sort();
    let expected = ["src/admin/auth.rs", "src/engine/client_invalidation.rs"];
    assert_eq!(constant_time.len(), expected.len(), "{constant_time:?}");
    for (got, want) in constant_time.iter().zip(expected) {
        assert!(got.ends_with(want), "{constant_time:?}");
    }
}
