//! The import on synthetic bundles written to temporary folders: what it writes, that it writes
//! the same thing every time, and each refusal with the file and line it names. (That the
//! imported stage answers as the bundle does, keys included, is shown end to end in
//! `tests/e2e/import.rs`.)

use std::path::{Path, PathBuf};

use super::{import_bundle, ImportError, Imported};

/// The synthetic bundle: named endpoints, a conditional flow with a step condition, a
/// Proxy-scoped ResponseCache, TargetEndpoint flows with an Exclusive-scoped LookupCache and
/// PopulateCache, and a Quota skipped by the stage.toml beside it.
const FILES: &[(&str, &str)] = &[
    ("apiproxy/shop.xml", r#"<APIProxy name="shop" revision="4"/>"#),
    (
        "apiproxy/proxies/edge.xml",
        r#"<ProxyEndpoint name="edge">
  <HTTPProxyConnection><BasePath>/shop/</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>Q-limit</Name></Step><Step><Name>AM-tag</Name></Step></Request></PreFlow>
  <Flows>
    <Flow name="items">
      <Condition>proxy.pathsuffix MatchesPath "/items/**"</Condition>
      <Request><Step><Name>RC-items</Name><Condition>request.header.x-no-cache != "1"</Condition></Step></Request>
      <Response><Step><Name>RC-items</Name></Step></Response>
    </Flow>
  </Flows>
  <PostFlow><Response><Step><Name>AM-tag</Name></Step></Response></PostFlow>
  <RouteRule name="to-backend"><TargetEndpoint>backend</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    ),
    (
        "apiproxy/targets/backend.xml",
        r#"<TargetEndpoint name="backend">
  <PreFlow><Request><Step><Name>LC-seen</Name></Step></Request></PreFlow>
  <Flows><Flow name="all"><Response><Step><Name>PC-seen</Name></Step></Response></Flow></Flows>
  <HTTPTargetConnection><URL> http://127.0.0.1:9/echo </URL></HTTPTargetConnection>
</TargetEndpoint>"#,
    ),
    (
        "apiproxy/policies/RC-items.xml",
        r#"<ResponseCache name="RC-items"><Scope>Proxy</Scope><CacheKey><KeyFragment ref="request.uri"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    ),
    (
        "apiproxy/policies/AM-tag.xml",
        r#"<AssignMessage name="AM-tag"><Set><Headers><Header name="x-tag">{proxy.name} {route.name} {target.name}</Header></Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    ),
    (
        "apiproxy/policies/LC-seen.xml",
        r#"<LookupCache name="LC-seen"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><AssignTo>seen</AssignTo></LookupCache>"#,
    ),
    (
        "apiproxy/policies/PC-seen.xml",
        r#"<PopulateCache name="PC-seen"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings><Source>request.verb</Source></PopulateCache>"#,
    ),
    (
        "apiproxy/policies/Q-limit.xml",
        r#"<Quota name="Q-limit"><Allow count="10"/><Interval>1</Interval><TimeUnit>minute</TimeUnit></Quota>"#,
    ),
    (
        "stage.toml",
        "# what Apigee keeps outside the bundle\nskip_policies = [\"Quota\"]\n[cache]\ncapacity = \"1MiB\"\n",
    ),
];

/// A temporary folder with the bundle stage `shop/` (FILES with `changes` applied: a file
/// replaced, added, or removed when its text is empty) and room for outputs.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(changes: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<(&str, &str)> = FILES.to_vec();
        for (name, text) in changes {
            files.retain(|(n, _)| n != name);
            if !text.is_empty() {
                files.push((name, text));
            }
        }
        for (name, text) in files {
            let path = dir.path().join("shop").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Self { dir }
    }

    fn stage(&self) -> PathBuf {
        self.dir.path().join("shop")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    fn import(&self) -> Result<Imported, ImportError> {
        import_bundle(&self.stage(), "shop", &self.out("shop"), false)
    }

    /// The refusal's diagnostics, as printed.
    fn refused(&self) -> String {
        match self.import() {
            Err(e) => format!(
                "{}\n{e}",
                e.diagnostics().map(ToString::to_string).unwrap_or_default()
            ),
            Ok(_) => panic!("imported"),
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_bundle_is_written_as_stage_toml_and_policies_that_load_as_the_same_stage() {
    let f = Fixture::new(&[]);
    let done = f
        .import()
        .unwrap_or_else(|e| panic!("{e}: {:?}", e.diagnostics()));
    let out = f.out("shop");
    let names: Vec<String> = done
        .written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "AM-tag.toml",
            "LC-seen.toml",
            "PC-seen.toml",
            "Q-limit.xml",
            "RC-items.toml",
            "stage.toml"
        ]
    );
    // The Quota is kept as the bundle's XML, byte for byte, and skipped as in the bundle.
    assert_eq!(
        read(&out.join("Q-limit.xml")),
        read(&f.stage().join("apiproxy/policies/Q-limit.xml"))
    );
    assert_eq!(done.kept_as_xml.len(), 1);
    let warnings = done.warnings.to_string();
    assert!(
        warnings.contains(
            "Q-limit.xml:1:1: warning: <Quota> `Q-limit` runs as a no-op (skip_policies)"
        ) && warnings.contains(&out.display().to_string()),
        "{warnings}"
    );

    let toml = read(&out.join("stage.toml"));
    for expected in [
        "# <APIProxy revision>, apiproxy/shop.xml:1:1\nrevision = 4\n",
        "api_name = \"shop\"\n",
        "# HTTPProxyConnection/BasePath, apiproxy/proxies/edge.xml:2:24\nbase_path = \"/shop\"\n",
        "target = \"http://127.0.0.1:9/echo\"\n",
        "proxy_endpoint = \"edge\"\n",
        "# <RouteRule name> (to TargetEndpoint `backend`), apiproxy/proxies/edge.xml:12:3\nroute_rule = \"to-backend\"\n",
        "# ---- stage.toml beside the bundle, unchanged ----\n# what Apigee keeps outside the bundle\nskip_policies = [\"Quota\"]\n[cache]\ncapacity = \"1MiB\"\n# ---- end of stage.toml beside the bundle ----\n",
        "[preflow]\nrequest = [\n  \"Q-limit\",  # apiproxy/proxies/edge.xml:3:27\n  \"AM-tag\",  # apiproxy/proxies/edge.xml:3:60\n]\n",
        "[[flows]]\n# <Flow>, apiproxy/proxies/edge.xml:5:5\nname = \"items\"\ncondition = 'proxy.pathsuffix MatchesPath \"/items/**\"'\nrequest = [\n  { policy = \"RC-items\", condition = 'request.header.x-no-cache != \"1\"' },",
        "[target_endpoint]\nname = \"backend\"\n\n[target_endpoint.preflow]\nrequest = [\n  \"LC-seen\",",
        "[[target_endpoint.flows]]\n# <Flow>, apiproxy/targets/backend.xml:3:10\nname = \"all\"\nresponse = [\n  \"PC-seen\",",
        "#   Q-limit.xml: <Quota>, a kind cachegate does not run",
    ] {
        assert!(toml.contains(expected), "{expected}\n---\n{toml}");
    }

    // `cachegate validate` on the folder holding it.
    let loaded = crate::config::load(&f.dir.path().join("out"));
    assert!(loaded.config.is_some(), "{}", loaded.diagnostics);
}

#[test]
fn the_output_is_the_same_every_time() {
    let f = Fixture::new(&[]);
    f.import().unwrap();
    import_bundle(&f.stage(), "shop", &f.out("again"), false).unwrap();
    for entry in std::fs::read_dir(f.out("shop")).unwrap() {
        let p = entry.unwrap().path();
        let other = f.out("again").join(p.file_name().unwrap());
        assert_eq!(read(&p), read(&other), "{}", p.display());
    }
}

#[test]
fn a_policy_toml_cannot_say_exactly_is_kept_as_xml() {
    let f = Fixture::new(&[(
        "apiproxy/policies/PC-seen.xml",
        r#"<PopulateCache name="PC-seen"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><ExpiryDate ref="flow.until"/></ExpirySettings><Source>request.verb</Source></PopulateCache>"#,
    )]);
    let done = f
        .import()
        .unwrap_or_else(|e| panic!("{e}: {:?}", e.diagnostics()));
    let kept: Vec<&str> = done.kept_as_xml.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(kept, ["PC-seen.xml", "Q-limit.xml"]);
    assert!(
        done.kept_as_xml[0].1.contains("no exact TOML form"),
        "{:?}",
        done.kept_as_xml
    );
    assert!(f.out("shop/PC-seen.xml").exists() && !f.out("shop/PC-seen.toml").exists());
}

#[test]
fn what_stage_toml_cannot_say_is_refused_at_its_file_and_line() {
    let proxy = |routes: &str, extra: &str| {
        format!(
            r#"<ProxyEndpoint name="edge">
  <HTTPProxyConnection><BasePath>/shop</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>Q-limit</Name></Step><Step><Name>AM-tag</Name></Step></Request></PreFlow>
{extra}
{routes}
</ProxyEndpoint>"#
        )
    };
    let default_route =
        r#"<RouteRule name="to-backend"><TargetEndpoint>backend</TargetEndpoint></RouteRule>"#;
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![(
                "apiproxy/targets/other.xml",
                r#"<TargetEndpoint name="other"><HTTPTargetConnection><URL>http://127.0.0.1:9</URL></HTTPTargetConnection></TargetEndpoint>"#.into(),
            )],
            "shop/apiproxy/targets/other.xml:1:1: error: a second TargetEndpoint (`other`; the bundle has backend, other): a stage.toml stage has one",
        ),
        (
            vec![(
                "apiproxy/proxies/edge.xml",
                proxy(r#"<RouteRule name="r"><Condition>request.header.x = "1"</Condition><TargetEndpoint>backend</TargetEndpoint></RouteRule>"#, ""),
            )],
            "shop/apiproxy/proxies/edge.xml:5:21: error: RouteRule `r` has a Condition",
        ),
        (
            vec![(
                "apiproxy/proxies/edge.xml",
                proxy(&format!("{default_route}\n<RouteRule name=\"late\"><TargetEndpoint>backend</TargetEndpoint></RouteRule>"), ""),
            )],
            "shop/apiproxy/proxies/edge.xml:6:1: error: a second RouteRule (`late`)",
        ),
        (
            vec![(
                "apiproxy/proxies/edge.xml",
                proxy(r#"<RouteRule name="direct"><URL>http://127.0.0.1:9/x</URL></RouteRule>"#, ""),
            )],
            "shop/apiproxy/proxies/edge.xml:5:26: error: RouteRule `direct` goes to a URL",
        ),
        (
            vec![(
                "apiproxy/proxies/edge.xml",
                proxy(r#"<RouteRule name="none"/>"#, ""),
            )],
            "shop/apiproxy/proxies/edge.xml:5:1: error: RouteRule `none` has no target (a null route)",
        ),
        (
            vec![(
                "apiproxy/proxies/edge.xml",
                proxy("", ""),
            )],
            "shop/apiproxy/proxies/edge.xml:1:1: error: no RouteRule",
        ),
        (
            vec![(
                "apiproxy/proxies/edge.xml",
                proxy(default_route, "<DefaultFaultRule name=\"dfr\"><Step><Name>AM-tag</Name></Step></DefaultFaultRule>"),
            )],
            "shop/apiproxy/proxies/edge.xml:4:1: error: the fault rules of ProxyEndpoint `edge` have steps",
        ),
        (
            vec![(
                "apiproxy/proxies/edge.xml",
                proxy(default_route, "<PostClientFlow><Response><Step><Name>AM-tag</Name></Step></Response></PostClientFlow>"),
            )],
            "shop/apiproxy/proxies/edge.xml:4:33: error: the PostClientFlow of ProxyEndpoint `edge` has steps",
        ),
        (
            vec![(
                "apiproxy/policies/AM-tag.xml",
                r#"<AssignMessage name="stage"><Set><Headers><Header name="x">y</Header></Headers></Set></AssignMessage>"#.into(),
            ), (
                "apiproxy/proxies/edge.xml",
                proxy(default_route, "").replace("AM-tag", "stage"),
            )],
            "shop/apiproxy/policies/AM-tag.xml:1:16: error: policy `stage` cannot be written as a file of a stage folder: `stage.toml` is the stage's own file",
        ),
    ];
    for (changes, expected) in cases {
        let changes: Vec<(&str, &str)> = changes.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let f = Fixture::new(&changes);
        let refused = f.refused();
        assert!(
            refused.contains(expected) && refused.contains("cachegate runs it as it is"),
            "{expected}\n---\n{refused}"
        );
        assert!(!f.out("shop").exists(), "nothing is written");
    }
}

#[test]
fn a_bundle_that_does_not_load_is_refused_with_its_diagnostics() {
    let f = Fixture::new(&[("stage.toml", "")]);
    let refused = f.refused();
    assert!(
        refused.contains("<Quota> `Q-limit` is of a kind cachegate does not run")
            && refused.contains("the bundle does not load (1 error(s))"),
        "{refused}"
    );
}

#[test]
fn the_output_folder_is_replaced_only_with_force() {
    let f = Fixture::new(&[]);
    let out = f.out("shop");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("Old-policy.toml"), "stale").unwrap();
    std::fs::write(out.join("README.txt"), "mine").unwrap();
    assert!(matches!(f.import(), Err(ImportError::OutNotEmpty(_))));
    assert_eq!(read(&out.join("Old-policy.toml")), "stale");

    let done = import_bundle(&f.stage(), "shop", &out, true).unwrap();
    assert_eq!(done.removed, [out.join("Old-policy.toml")]);
    assert!(!out.join("Old-policy.toml").exists());
    assert_eq!(
        read(&out.join("README.txt")),
        "mine",
        "other files are left alone"
    );

    // Never over a bundle (the loader would run it instead), not even with --force.
    let err = import_bundle(&f.stage(), "shop", &f.stage(), true).unwrap_err();
    assert!(matches!(err, ImportError::OutHoldsBundle(_)), "{err}");
    // The apiproxy/ folder itself is a bundle too; a folder that holds none is not.
    assert!(import_bundle(&f.stage().join("apiproxy"), "shop", &f.out("b"), false).is_ok());
    let err = import_bundle(f.dir.path(), "shop", &f.out("c"), false).unwrap_err();
    assert!(matches!(err, ImportError::NotABundle(_)), "{err}");
    let err = import_bundle(&f.stage(), "sh op", &f.out("d"), false).unwrap_err();
    assert!(matches!(err, ImportError::StageName(_)), "{err}");
}

#[test]
fn a_policy_run_in_both_endpoints_imports_with_the_same_variant_per_endpoint() {
    // LC-seen (Exclusive) also runs in the ProxyEndpoint `edge`: the bundle compiles
    // `LC-seen@edge` and `LC-seen@backend`; stage.toml keeps the plain step names, and the
    // imported stage compiles the same two variants (the verification compares them).
    let edge = FILES
        .iter()
        .find(|(n, _)| *n == "apiproxy/proxies/edge.xml")
        .map(|(_, t)| {
            t.replace(
                "<Step><Name>AM-tag</Name></Step></Request>",
                "<Step><Name>AM-tag</Name></Step><Step><Name>LC-seen</Name></Step></Request>",
            )
        })
        .unwrap();
    let f = Fixture::new(&[("apiproxy/proxies/edge.xml", &edge)]);
    f.import()
        .unwrap_or_else(|e| panic!("{e}: {:?}", e.diagnostics()));
    let loaded = crate::config::load(&f.dir.path().join("out"));
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("{}", loaded.diagnostics));
    let names = config.stages[0].policy_names();
    assert!(names.contains(&"LC-seen@edge"), "{names:?}");
    assert!(names.contains(&"LC-seen@backend"), "{names:?}");
    assert!(!read(&f.out("shop").join("stage.toml")).contains('@'));
}
