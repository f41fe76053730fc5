//! The TOML writer against the parsers: every real Apigee policy of the fixtures that parses is
//! written as TOML and read back, and both compile to the same runtime policy; what TOML cannot
//! say is refused with the reason.

use std::path::{Path, PathBuf};

use super::{policy, string};
use crate::config::policies::Conditions;
use crate::diag::Diagnostics;
use crate::policy::model::{Policy, PolicyFile};
use crate::policy::{parse_policy, toml as toml_syntax, xml};
use crate::runtime::key::ScopeContext;

/// Every `.xml` file under the fixture folders.
fn fixture_xml() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut stack = vec![root];
    let mut out = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "xml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What a policy compiles to (everything requests see), plus the common attributes that do
/// not compile into it.
fn compiled(p: &PolicyFile) -> String {
    let scope = ScopeContext {
        organization: "org",
        environment: None,
        stage: "s",
        api_name: "api",
        revision: 1,
        proxy_endpoint: "default",
        target_endpoint: "default",
        on_target: false,
    };
    let mut conditions = Conditions::default();
    let mut diags = Diagnostics::new();
    let runtime = match &p.policy {
        Policy::ResponseCache(rc) => format!(
            "{:?}",
            crate::config::policies::response_cache(p, rc, &scope, &mut conditions, &mut diags)
        ),
        Policy::LookupCache(lc) => {
            format!("{:?}", crate::config::policies::lookup_cache(p, lc, &scope))
        }
        Policy::PopulateCache(pc) => {
            format!(
                "{:?}",
                crate::config::policies::populate_cache(p, pc, &scope)
            )
        }
        Policy::InvalidateCache(ic) => {
            format!(
                "{:?}",
                crate::config::policies::invalidate_cache(p, ic, &scope)
            )
        }
        Policy::AssignMessage(am)
        | Policy::RaiseFault(crate::policy::model::RaiseFault { fault_response: am }) => {
            format!("{:?}", crate::config::assign::compile(am))
        }
        Policy::FlowCallout(fc) => format!(
            "{} {:?}",
            fc.shared_flow_bundle.value,
            fc.parameters
                .iter()
                .map(|x| (&x.name.value, &x.reference, &x.literal))
                .collect::<Vec<_>>()
        ),
    };
    let c = &p.common;
    format!(
        "{runtime}\n{:?} {:?} {} {}",
        c.name.value, c.display_name, c.enabled, c.continue_on_error
    )
}

#[test]
fn every_fixture_policy_reads_back_from_its_toml_as_it_compiled_from_xml() {
    let (mut written, mut refused) = (0, Vec::new());
    for path in fixture_xml() {
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(from_xml) = xml::parse(&path, &text).policy else {
            continue; // invalid fixtures, endpoints, descriptors, other kinds
        };
        let toml_text = match policy(&from_xml) {
            Ok(t) => t,
            Err(why) => {
                refused.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        let back = toml_syntax::parse(Path::new("p.toml"), &toml_text);
        let errors: Vec<String> = back
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(
            errors.is_empty(),
            "{}:\n{toml_text}\n{errors:?}",
            path.display()
        );
        let from_toml = back.policy.unwrap();
        assert_eq!(
            compiled(&from_xml),
            compiled(&from_toml),
            "{}:\n{toml_text}",
            path.display()
        );
        written += 1;
    }
    // The real policies that parse (86 when this was written: cache policies from public
    // repositories and the sample bundles' AssignMessages) all have a TOML form.
    assert!(written >= 80, "only {written} written");
    assert!(refused.is_empty(), "{refused:#?}");
}

#[test]
fn strings_read_back_exactly() {
    for s in [
        "",
        "plain",
        r#"proxy.pathsuffix MatchesPath "/items/**""#,
        r"C:\path",
        "it's \"both\"",
        "line\nbreaks\n",
        "\nleading break",
        "ends with quote'",
        "three '''quotes'''\nand a break",
        "cr\r\nlf",
        "tab\tand \u{7f} del and \u{1} soh",
        "unicode é ✓",
    ] {
        let doc = format!("v = {}\n", string(s));
        let back: toml::Value = toml::from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert_eq!(back["v"].as_str(), Some(s), "{doc}");
    }
}

#[test]
fn what_toml_cannot_say_is_refused_with_the_reason() {
    let refusal = |xml_text: &str| {
        let p = xml::parse(Path::new("p.xml"), xml_text)
            .policy
            .expect("valid XML");
        policy(&p).err().map(|e| e.to_string())
    };
    let date_by_ref = r#"<PopulateCache name="p"><CacheKey><KeyFragment>k</KeyFragment></CacheKey><ExpirySettings><ExpiryDate ref="flow.date"/></ExpirySettings><Source>x</Source></PopulateCache>"#;
    assert!(refusal(date_by_ref).is_some_and(|w| w.contains("date")));
    let remove_value = r#"<AssignMessage name="a"><Remove><Headers><Header name="x">only-this</Header></Headers></Remove></AssignMessage>"#;
    assert!(refusal(remove_value).is_some_and(|w| w.contains("<Remove>")));
    let deprecated = r#"<LookupCache name="l" async="true"><CacheKey><KeyFragment>k</KeyFragment></CacheKey><AssignTo>v</AssignTo></LookupCache>"#;
    assert!(refusal(deprecated).is_some_and(|w| w.contains("async")));
    let fine = r#"<LookupCache name="l"><CacheKey><KeyFragment ref=" request.header.tenant "/></CacheKey><AssignTo>v</AssignTo></LookupCache>"#;
    assert_eq!(
        refusal(fine),
        None,
        "a ref is trimmed as compilation trims it"
    );
}

#[test]
fn the_output_is_readable_toml() {
    let p = parse_policy(
        Path::new("rc.xml"),
        r#"<ResponseCache name="RC" continueOnError="true">
  <CacheKey><Prefix>p</Prefix><KeyFragment ref="request.uri" type="string"/><KeyFragment>v1</KeyFragment></CacheKey>
  <Scope>Proxy</Scope>
  <ExpirySettings><TimeoutInSeconds ref="flow.ttl">300</TimeoutInSeconds></ExpirySettings>
  <SkipCacheLookup>request.header.x-bypass = "true"</SkipCacheLookup>
</ResponseCache>"#,
    )
    .policy
    .unwrap();
    assert_eq!(
        policy(&p).unwrap(),
        r#"[ResponseCache]
name = "RC"
continue_on_error = true
scope = "Proxy"
expiry = { timeout_secs = 300, ref = "flow.ttl" }
skip_cache_lookup = 'request.header.x-bypass = "true"'
[ResponseCache.cache_key]
prefix = "p"
fragments = [
  { ref = "request.uri", type = "string" },
  { literal = "v1" },
]
"#
    );
}
