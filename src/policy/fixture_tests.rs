//! Tests over files: the real Apigee policies under `tests/fixtures/apigee/`, cachegate's own valid
//! and invalid fixtures under `tests/fixtures/policies/` (invalid ones are golden tests against
//! `<file>.expected`; regenerate with `UPDATE_EXPECTED=1 cargo test --lib policy`), the XSD kept in
//! step with the parser, and property tests that no input makes a parser panic.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use quick_xml::events::Event;

use super::model::{Expiry, Policy, PolicyFile, Scope};
use super::{load_policy_file, parse_policy, xml, ParseOutcome};
use crate::diag::{Pos, Severity};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (relative to the crate root) with one of `exts`, as relative paths.
fn files_under(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let root = manifest_dir();
    let mut stack = vec![root.join(dir)];
    let mut out = Vec::new();
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let p = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
            {
                out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(manifest_dir().join(rel))
        .unwrap_or_else(|e| panic!("{}: {e}", rel.display()))
}

fn parse_rel(rel: &Path) -> ParseOutcome {
    parse_policy(rel, &read(rel))
}

fn shown(out: &ParseOutcome) -> String {
    out.diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

const APIGEE: &str = "tests/fixtures/apigee";

/// Expected diagnostics of the real Apigee files, by path under `tests/fixtures/apigee/`:
/// (severity, line, col, message fragment). Files not listed must have no diagnostics at all.
/// One expected diagnostic: severity, line, column, a fragment of the message.
type Expect = (Severity, u32, u32, &'static str);

const APIGEE_EXPECTED: &[(&str, &[Expect])] = {
    use Severity::{Error as E, Warning as W};
    const DEPRECATED: &str = "<TimeoutInSec> is deprecated";
    &[
        (
            "apigee+apigeelint/test/fixtures/resources/PO030-ExpirySettings/fail/Cache-Populate-Duplicate-Timeout.xml",
            &[(E, 11, 5, "duplicate <TimeoutInSeconds> in <ExpirySettings>")],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/PO030-ExpirySettings/fail/Cache-Populate-Empty-Expiry.xml",
            &[(E, 9, 3, "<ExpirySettings> has no expiry")],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/PO030-ExpirySettings/fail/Cache-Populate-InvalidExpiryDate.xml",
            &[(E, 12, 5, "invalid date \"2021-22-99\" in <ExpiryDate>")],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/PO030-ExpirySettings/fail/Cache-Populate-Multiple-Expiry.xml",
            &[(E, 13, 3, "duplicate <ExpirySettings> in <PopulateCache>")],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/PO030-ExpirySettings/fail/Cache-Populate-Multiple-children.xml",
            &[(E, 11, 5, "more than one kind of expiry: <ExpiryDate> and <TimeoutInSeconds>")],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/PO030-ExpirySettings/fail/Cache-Populate-No-Expiry.xml",
            &[(W, 1, 1, "no <ExpirySettings>: entries use the stage TTL")],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/PO030-ExpirySettings/fail/Cache-Populate-TimeoutInSec.xml",
            &[(W, 12, 5, DEPRECATED)],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/PO030-ExpirySettings/fail/Cache-Populate-Too-Long.xml",
            &[(W, 10, 5, "<TimeoutInSeconds> of 2678400 seconds is longer than 30 days")],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/PO029-policyTypes/positive/CP-1.xml",
            &[(W, 3, 3, "scope \"proxy\" is not spelt as Apigee spells it")],
        ),
        (
            "apigee+api-platform-samples/edge-ux/response-cache-simple/apiproxy/policies/ResponseCache.xml",
            &[(W, 8, 9, DEPRECATED)],
        ),
        (
            "apigee+api-platform-samples/learn-edge/extract-json-payload/apiproxy/policies/ResponseCache.xml",
            &[(W, 8, 9, DEPRECATED)],
        ),
        (
            "apigee+api-platform-samples/perf-proxies/perfproxy/apiproxy/policies/ResponseCache.xml",
            &[(W, 11, 9, DEPRECATED)],
        ),
        (
            "apigee+api-platform-samples/sample-proxies/outbound-oauth/apiproxy/policies/api-token-populate-cache.xml",
            &[(W, 10, 9, DEPRECATED)],
        ),
        (
            "apigee+api-platform-samples/sample-proxies/pagination/apiproxy/policies/ResponseCache-1.xml",
            &[(W, 14, 9, DEPRECATED)],
        ),
        (
            "apigee+api-platform-samples/sample-proxies/response-cache/apiproxy/policies/cacheforecast.xml",
            &[(W, 10, 9, DEPRECATED)],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/ST001-empty-steps/sharedflowbundle/policies/Cache-Populate-ABAC-Rules.xml",
            &[(W, 13, 5, DEPRECATED)],
        ),
        (
            "apigee+apigeelint/test/fixtures/resources/sample-proxy-with-issues/response-shaping/apiproxy/policies/Cache-Populate-Amadeus-Token.xml",
            &[(W, 13, 5, DEPRECATED)],
        ),
        (
            "apigee+devrel/references/gcp-sa-auth-shared-flow/sharedflowbundle/policies/PC.CacheAccessToken.xml",
            &[(W, 25, 9, DEPRECATED)],
        ),
        (
            "apigee+devrel/references/identity-facade/apiproxy/policies/PC-CacheJWKS.xml",
            &[(W, 23, 9, DEPRECATED)],
        ),
        (
            "apigee+devrel/tools/proxy-endpoint-unifier/test/api_bundles/test-proxy/apiproxy/policies/Populate-Cache-1.xml",
            &[(W, 24, 9, DEPRECATED)],
        ),
    ]
};

#[test]
fn every_real_apigee_policy_gives_exactly_the_expected_diagnostics() {
    let files = files_under(APIGEE, &["xml"]);
    assert!(files.len() >= 44, "fixtures missing: {}", files.len());
    let mut listed: BTreeSet<&str> = APIGEE_EXPECTED.iter().map(|(p, _)| *p).collect();
    for rel in &files {
        let under = rel
            .strip_prefix(APIGEE)
            .unwrap_or(rel)
            .to_string_lossy()
            .into_owned();
        let out = parse_rel(rel);
        let expected = APIGEE_EXPECTED
            .iter()
            .find(|(p, _)| *p == under)
            .map_or(&[][..], |(_, e)| *e);
        listed.remove(under.as_str());
        let is_fail = under.split('/').any(|c| c == "fail");
        if !is_fail {
            assert!(!out.has_errors(), "{under} should parse:\n{}", shown(&out));
        } else {
            assert!(
                !expected.is_empty(),
                "{under} is under fail/ but has no expectation"
            );
        }
        assert_eq!(out.policy.is_some(), !out.has_errors(), "{under}");
        assert_eq!(
            out.diagnostics.len(),
            expected.len(),
            "{under}:\n{}",
            shown(&out)
        );
        for (d, (sev, line, col, fragment)) in out.diagnostics.iter().zip(expected.iter()) {
            assert_eq!(d.severity, *sev, "{under}: {d}");
            assert_eq!(d.pos, Some(Pos::new(*line, *col)), "{under}: {d}");
            assert!(
                d.message.contains(fragment),
                "{under}: {d}\n  wanted: {fragment}"
            );
            assert_eq!(d.file, *rel, "diagnostics name the file as given");
            assert!(
                d.hint.is_some(),
                "{under}: every diagnostic here has a hint: {d}"
            );
        }
    }
    assert!(
        listed.is_empty(),
        "expectations for missing files: {listed:?}"
    );
}

fn policy_of(rel: &str) -> PolicyFile {
    let rel = PathBuf::from(APIGEE).join(rel);
    let out = parse_rel(&rel);
    let text = shown(&out);
    out.policy
        .unwrap_or_else(|| panic!("{}:\n{text}", rel.display()))
}

#[test]
fn key_fields_of_real_policies() {
    let p = policy_of(
        "GoogleCloudPlatform+apigee-samples/basic-caching/apiproxy/policies/RC-CacheVolumes.xml",
    );
    assert_eq!(p.name(), "RC-CacheVolumes");
    assert_eq!(p.pos, Pos::new(14, 1));
    assert_eq!(p.common.display_name.as_deref(), Some("RC-CacheVolumes"));
    assert!(p.common.enabled && !p.common.continue_on_error);
    let Policy::ResponseCache(rc) = p.policy else {
        panic!("not a ResponseCache")
    };
    assert!(rc.exclude_error_response);
    assert_eq!(rc.scope, Scope::Exclusive);
    let Some(Expiry::Timeout(t)) = rc.expiry.map(|e| e.expiry) else {
        panic!("no timeout")
    };
    assert_eq!(
        (t.literal, t.reference),
        (Some(300), None),
        "ref=\"\" is absent"
    );
    let skip = rc
        .skip_cache_lookup
        .unwrap_or_else(|| panic!("no SkipCacheLookup"));
    assert_eq!(
        skip.value,
        "NOT (request.verb JavaRegex \"(GET|HEAD)\") or request.header.x-bypass-cache = \"true\""
    );
    assert_eq!(skip.pos, Pos::new(24, 3));
    assert_eq!(rc.cache_key.fragments.len(), 1);
    assert_eq!(
        rc.cache_key.fragments[0].reference.as_deref(),
        Some("request.uri")
    );
    assert_eq!(rc.cache_key.fragments[0].type_.as_deref(), Some("string"));

    let p = policy_of("apigee+api-platform-samples/sample-proxies/pagination/apiproxy/policies/ResponseCache-1.xml");
    let Policy::ResponseCache(rc) = p.policy else {
        panic!("not a ResponseCache")
    };
    assert_eq!(rc.scope, Scope::Global);
    assert_eq!(
        rc.cache_resource.map(|c| c.value).as_deref(),
        Some("paginationCache")
    );
    assert_eq!(rc.cache_key.prefix, None, "<Prefix></Prefix> is absent");
    assert_eq!(
        rc.skip_cache_lookup, None,
        "empty <SkipCacheLookup> is absent"
    );
    let Some(Expiry::Timeout(t)) = rc.expiry.map(|e| e.expiry) else {
        panic!("no timeout")
    };
    assert_eq!(t.literal, Some(300));
    assert_eq!(t.pos, Pos::new(14, 9));

    let p = policy_of("apigee+devrel/references/identity-facade/apiproxy/policies/LC-GetJWKS.xml");
    let Policy::LookupCache(lc) = p.policy else {
        panic!("not a LookupCache")
    };
    assert_eq!(
        lc.cache_key.prefix.map(|p| p.value).as_deref(),
        Some("IDP_JWKS_CACHE")
    );
    let f = &lc.cache_key.fragments;
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[0].reference.as_deref(), f[0].literal.as_deref()),
        (Some("private.flow.idp.issuer"), None)
    );
    assert_eq!(
        (f[1].reference.as_deref(), f[1].literal.as_deref()),
        (None, Some("jwksPayload"))
    );
    assert_eq!(lc.assign_to.value, "jwks");
    assert_eq!(
        lc.cache_resource.map(|c| c.value).as_deref(),
        Some("IDP_JWKS_CACHE")
    );

    let p = policy_of("GoogleCloudPlatform+apigee-samples/llm-semantic-cache/semantic-cache-response-v1/sharedflowbundle/policies/PC-PopulateLLMCache.xml");
    assert!(p.common.continue_on_error);
    let Policy::PopulateCache(pc) = p.policy else {
        panic!("not a PopulateCache")
    };
    let Some(Expiry::Timeout(t)) = pc.expiry.map(|e| e.expiry) else {
        panic!("no timeout")
    };
    assert_eq!(t.literal, None);
    assert_eq!(
        t.reference.as_deref(),
        Some("propertyset.vertex_config.cache_entry_ttl_sec")
    );
    assert_eq!(pc.source.value, "response.content");

    let p = policy_of(
        "apigee+devrel/references/product-recommendations/apiproxy/policies/IC-spanner-session.xml",
    );
    let Policy::InvalidateCache(ic) = p.policy else {
        panic!("not an InvalidateCache")
    };
    assert_eq!(ic.scope, Scope::Application);
    assert!(!ic.purge_child_entries);
    assert_eq!(
        ic.cache_key.fragments[0].literal.as_deref(),
        Some("Spanner.session")
    );

    let p = policy_of("apigee+apigeelint/test/fixtures/resources/sampleFlow/24Solver/sharedflowbundle/policies/lookup.xml");
    let Policy::LookupCache(lc) = p.policy else {
        panic!("not a LookupCache")
    };
    assert!(
        lc.cache_resource.is_none() && lc.lookup_timeout_secs.is_none(),
        "empty elements are absent"
    );
}

const VALID: &str = "tests/fixtures/policies/valid";
const INVALID: &str = "tests/fixtures/policies/invalid";

/// The model's Debug text without positions and paths, to compare the XML and TOML forms.
fn without_positions(p: &PolicyFile) -> String {
    let text = format!(
        "{:#?}",
        PolicyFile {
            path: PathBuf::new(),
            pos: Pos::default(),
            ..p.clone()
        }
    );
    let pos = regex::Regex::new(r"(?s)pos: Pos \{.*?\}").unwrap_or_else(|e| panic!("{e}"));
    pos.replace_all(&text, "pos: _").into_owned()
}

#[test]
fn valid_fixtures_parse_cleanly_and_xml_equals_toml() {
    let files = files_under(VALID, &["xml", "toml"]);
    assert!(files.len() >= 10);
    for rel in &files {
        let out = load_policy_file(&manifest_dir().join(rel));
        assert!(
            out.diagnostics.is_empty(),
            "{}:\n{}",
            rel.display(),
            shown(&out)
        );
        assert!(out.policy.is_some());
    }
    let xml_files: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    for x in xml_files {
        let t = x.with_extension("toml");
        assert!(files.contains(&t), "{} has no TOML twin", x.display());
        let (px, pt) = (parse_rel(x).policy, parse_rel(&t).policy);
        let (Some(px), Some(pt)) = (px, pt) else {
            panic!("{}", x.display())
        };
        assert_eq!(
            without_positions(&px),
            without_positions(&pt),
            "{} vs TOML",
            x.display()
        );
    }
    // Every policy kind is covered.
    let kinds: BTreeSet<&str> = files
        .iter()
        .filter_map(|f| parse_rel(f).policy)
        .map(|p| p.policy.kind().as_str())
        .collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
}

#[test]
fn valid_assign_message_fields() {
    let out = parse_rel(&PathBuf::from(VALID).join("AssignMessage.xml"));
    let text = shown(&out);
    let Some(Policy::AssignMessage(am)) = out.policy.map(|p| p.policy) else {
        panic!("{text}")
    };
    let remove = am.remove.unwrap_or_default();
    assert_eq!(
        remove.headers.map(|h| h.len()),
        Some(1),
        "listed headers are removed"
    );
    assert_eq!(
        remove.query_params,
        Some(vec![]),
        "<QueryParams/> removes all"
    );
    assert!(!remove.payload);
    let set = am.set.unwrap_or_default();
    let payload = set.payload.unwrap_or_else(|| panic!("no payload"));
    assert_eq!(payload.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        payload.template,
        "            {\"tier\": \"{client.tier}\", \"cached\": true}"
    );
    assert_eq!(am.assign_variables.len(), 2);
}

/// Golden test: each invalid fixture's diagnostics equal `<file>.expected`.
#[test]
fn invalid_fixtures_match_expected_diagnostics() {
    let update = std::env::var_os("UPDATE_EXPECTED").is_some_and(|v| v == "1");
    let files = files_under(INVALID, &["xml", "toml"]);
    assert!(files.len() >= 20);
    let mut failures = Vec::new();
    for rel in &files {
        let out = parse_rel(rel);
        assert!(
            out.has_errors(),
            "{} should be rejected:\n{}",
            rel.display(),
            shown(&out)
        );
        assert!(out.policy.is_none());
        for d in &out.diagnostics {
            assert!(
                d.pos.is_some(),
                "{}: every diagnostic has a position: {d}",
                rel.display()
            );
        }
        let got = format!("{}\n", shown(&out));
        let expected_path = manifest_dir().join(format!("{}.expected", rel.display()));
        if update {
            std::fs::write(&expected_path, &got).unwrap_or_else(|e| panic!("{e}"));
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                rel.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "run `UPDATE_EXPECTED=1 cargo test --lib policy` to accept:\n{}",
        failures.join("\n")
    );
    // No stale .expected files.
    for e in files_under(INVALID, &["expected"]) {
        let source = e.with_extension("");
        assert!(files.contains(&source), "{} has no fixture", e.display());
    }
}

#[test]
fn load_policy_file_limits_and_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let big = dir.path().join("big.xml");
    std::fs::write(&big, vec![b' '; super::MAX_POLICY_FILE_BYTES + 1])
        .unwrap_or_else(|e| panic!("{e}"));
    let out = load_policy_file(&big);
    assert!(
        out.has_errors() && out.diagnostics[0].message.contains("byte limit"),
        "{}",
        shown(&out)
    );

    let missing = load_policy_file(&dir.path().join("missing.xml"));
    assert!(missing.has_errors() && missing.diagnostics[0].message.contains("cannot read"));

    let latin1 = dir.path().join("latin1.xml");
    std::fs::write(
        &latin1,
        b"<ResponseCache name=\"a\">\n  caf\xe9</ResponseCache>",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = load_policy_file(&latin1);
    assert_eq!(
        out.diagnostics[0].pos,
        Some(Pos::new(2, 6)),
        "{}",
        shown(&out)
    );

    let other = parse_policy(Path::new("p.json"), "{}");
    assert!(other.has_errors());
}

// ---------------------------------------------------------------------------------------------
// The XSD.
// ---------------------------------------------------------------------------------------------

/// Names declared by `xs:element name=…` and `xs:attribute name=…` in `schemas/policies.xsd`.
fn xsd_names() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = read(Path::new("schemas/policies.xsd"));
    let mut reader = quick_xml::Reader::from_str(&text);
    let (mut elements, mut attributes) = (BTreeSet::new(), BTreeSet::new());
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let event = reader.read_event().unwrap_or_else(|e| {
            panic!(
                "schemas/policies.xsd is not well-formed at byte {}: {e}",
                reader.error_position()
            )
        });
        let (start, is_empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        if depth == 0 {
            roots += 1;
            assert_eq!(start.name().as_ref(), b"xs:schema", "the root is xs:schema");
        }
        if !is_empty {
            depth += 1;
        }
        let set = match start.name().as_ref() {
            b"xs:element" => &mut elements,
            b"xs:attribute" => &mut attributes,
            _ => continue,
        };
        for a in start.attributes() {
            let a = a.unwrap_or_else(|e| panic!("{e}"));
            if a.key.as_ref() == b"name" {
                set.insert(String::from_utf8_lossy(&a.value).into_owned());
            }
        }
    }
    assert_eq!((roots, depth), (1, 0), "one xs:schema, all elements closed");
    (elements, attributes)
}

#[test]
fn xsd_declares_exactly_what_the_parser_accepts() {
    let (elements, attributes) = xsd_names();
    let known: BTreeSet<String> = xml::known_elements()
        .into_iter()
        .map(String::from)
        .collect();
    let only_xsd: Vec<&String> = elements.difference(&known).collect();
    let only_parser: Vec<&String> = known.difference(&elements).collect();
    assert!(
        only_xsd.is_empty() && only_parser.is_empty(),
        "elements only in the XSD: {only_xsd:?}; only in the parser: {only_parser:?}"
    );
    let known: BTreeSet<String> = xml::known_attributes()
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        attributes, known,
        "xs:attribute names vs xml::known_attributes()"
    );
}

// ---------------------------------------------------------------------------------------------
// No input makes a parser panic.
// ---------------------------------------------------------------------------------------------

fn check_outcome(out: &ParseOutcome) {
    assert_eq!(out.policy.is_some(), !out.has_errors());
    for d in &out.diagnostics {
        assert!(d.pos.is_some_and(|p| p.line >= 1 && p.col >= 1), "{d}");
        assert!(!d.message.is_empty() && !d.message.contains('\n'), "{d}");
    }
}

/// Fixture texts to mutate (valid and invalid ones, read once).
fn seeds(ext: &'static str) -> &'static [String] {
    static XML: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    static TOML: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let cell = if ext == "xml" { &XML } else { &TOML };
    cell.get_or_init(|| {
        let mut files = files_under(VALID, &[ext]);
        files.extend(files_under(INVALID, &[ext]));
        files.iter().map(|p| read(p)).collect()
    })
}

/// Applies `edits` (position fraction, kind, text) to `text`, on character boundaries.
fn mutate(text: &str, edits: &[(f64, u8, String)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, kind, s) in edits {
        let len = chars.len();
        let i = ((len as f64) * at) as usize;
        let i = i.min(len);
        match kind % 4 {
            0 => chars.splice(i..i, s.chars()).for_each(drop),
            1 => {
                let end = (i + s.chars().count().max(1)).min(len);
                chars.drain(i..end).for_each(drop);
            }
            2 => {
                let end = (i + 20).min(len);
                let copy: Vec<char> = chars.get(i..end).map(<[char]>::to_vec).unwrap_or_default();
                chars.splice(i..i, copy).for_each(drop);
            }
            _ => {
                let end = (i + s.chars().count()).min(len);
                chars.splice(i..end, s.chars()).for_each(drop);
            }
        }
    }
    chars.into_iter().collect()
}

fn edits() -> impl Strategy<Value = Vec<(f64, u8, String)>> {
    prop::collection::vec(
        (
            0.0f64..1.0,
            any::<u8>(),
            prop_oneof![
                "[<>/=\"'&;!\\[\\]{}a-zA-Z0-9 \n-]{0,8}",
                Just("<![CDATA[".to_string()),
                Just("<!DOCTYPE x>".to_string()),
                Just("&amp;".to_string()),
                Just("-1".to_string()),
                Just("'''".to_string()),
                Just("\u{feff}é".to_string()),
            ],
        ),
        1..6,
    )
}

proptest! {
    // Failures are not persisted to a proptest-regressions/ file; a found case becomes a unit test
    // (see `messages_are_one_line` in xml/tree.rs).
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn xml_never_panics_on_arbitrary_text(s in any::<String>()) {
        check_outcome(&xml::parse(Path::new("p.xml"), &s));
    }

    #[test]
    fn xml_never_panics_on_xmlish_text(s in "[<>/=\"' a-zA-Z?!\\[\\]&;-]{0,200}") {
        check_outcome(&xml::parse(Path::new("p.xml"), &s));
    }

    #[test]
    fn toml_never_panics_on_arbitrary_text(s in any::<String>()) {
        check_outcome(&super::toml::parse(Path::new("p.toml"), &s));
    }

    #[test]
    fn toml_never_panics_on_tomlish_text(s in "[\\[\\]{}=\"', a-zA-Z0-9_.\n-]{0,200}") {
        check_outcome(&super::toml::parse(Path::new("p.toml"), &s));
    }

    #[test]
    fn xml_never_panics_on_mutated_fixtures(seed in any::<prop::sample::Index>(), e in edits()) {
        let texts = seeds("xml");
        let text = mutate(seed.get::<String>(texts), &e);
        check_outcome(&xml::parse(Path::new("p.xml"), &text));
    }

    #[test]
    fn toml_never_panics_on_mutated_fixtures(seed in any::<prop::sample::Index>(), e in edits()) {
        let texts = seeds("toml");
        let text = mutate(seed.get::<String>(texts), &e);
        check_outcome(&super::toml::parse(Path::new("p.toml"), &text));
    }
}
