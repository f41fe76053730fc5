//! The `cachegate` binary: help, validate's exit codes and output.

use std::process::Command;

use crate::harness::{origin, repo, PolicyDir};

fn cachegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cachegate"))
}

#[test]
fn help_explains_the_commands() {
    let out = cachegate().arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "validate", "schema", "policies"] {
        assert!(
            text.contains(word),
            "--help does not mention {word}:\n{text}"
        );
    }
}

#[test]
fn validate_accepts_the_shipped_policies() {
    let out = cachegate()
        .arg("validate")
        .arg(repo().join("policies"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "shipped policies are invalid:\n{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (0 error(s)"));
}

#[test]
fn validate_names_file_line_and_column_of_a_misspelt_element() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n[[flows]]\nname = \"all\"\nrequest = [\"RC\"]\nresponse = [\"RC\"]\n");
    d.write(
        "prod/RC.xml",
        "<ResponseCache name=\"RC\">\n  <CacheKey><KeyFragment ref=\"request.uri\"/></CacheKey>\n  <ExcludeErrorRespons>true</ExcludeErrorRespons>\n</ResponseCache>\n",
    );
    let out = cachegate()
        .arg("validate")
        .arg(d.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:3:3: error: unknown element <ExcludeErrorRespons>",
        d.path().join("prod/RC.xml").display()
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
    assert!(
        stderr.contains("did you mean <ExcludeErrorResponse>"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("invalid (1 error(s)"));
}

#[test]
fn run_refuses_an_invalid_directory() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"ftp://nowhere\"\n");
    let out = cachegate()
        .args(["run", "--config"])
        .arg(d.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stage.toml:1:10: error: target `ftp://nowhere` is not an http:// URL"),
        "{stderr}"
    );
    assert!(stderr.contains("not starting"), "{stderr}");
}
