//! Synthetic bundles in temporary folders: every layout rule, tolerance, error and limit.

use super::*;

const PROXY: &str = r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/v1/x</BasePath></HTTPProxyConnection>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>
"#;

const TARGET: &str = r#"<TargetEndpoint name="default">
  <HTTPTargetConnection><URL>http://backend.example</URL></HTTPTargetConnection>
</TargetEndpoint>
"#;

/// A bundle at `<tmp>/sample/apiproxy` holding `files` (relative path, content).
fn write_bundle(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sample").join("apiproxy");
    std::fs::create_dir_all(&root).unwrap();
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    (tmp, root)
}

/// The usual three files, with `proxy` as proxies/default.xml.
fn with_proxy(proxy: &str) -> (tempfile::TempDir, PathBuf) {
    write_bundle(&[
        ("sample.xml", r#"<APIProxy name="sample"/>"#),
        ("proxies/default.xml", proxy),
        ("targets/default.xml", TARGET),
    ])
}

/// The usual three files, with `target` as targets/default.xml.
fn with_target(target: &str) -> (tempfile::TempDir, PathBuf) {
    write_bundle(&[
        ("sample.xml", r#"<APIProxy name="sample"/>"#),
        ("proxies/default.xml", PROXY),
        ("targets/default.xml", target),
    ])
}

/// Diagnostics as `file-relative-to-bundle:line:col: level: message` (hints dropped).
fn messages(root: &Path, diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| {
            let rel = d.file.strip_prefix(root).unwrap_or(&d.file);
            let mut d = d.clone();
            d.file = rel.to_path_buf();
            d.hint = None;
            d.to_string()
        })
        .collect()
}

fn load(root: &Path) -> (Option<Bundle>, Vec<String>) {
    let (b, diags) = load_bundle(root);
    (b, messages(root, &diags))
}

fn has(msgs: &[String], want: &str) -> bool {
    msgs.iter().any(|m| m.contains(want))
}

#[test]
fn a_minimal_bundle_is_clean() {
    let (_tmp, root) = with_proxy(PROXY);
    let (b, m) = load(&root);
    assert!(m.is_empty(), "{m:#?}");
    let b = b.unwrap();
    assert_eq!(b.root, root);
    assert_eq!(b.descriptor, Some(root.join("sample.xml")));
    assert_eq!(b.proxies[0].path, root.join("proxies/default.xml"));
    assert_eq!(b.targets[0].endpoint.name.value, "default");
}

#[test]
fn missing_proxies_folder_is_an_error() {
    let (_tmp, root) = write_bundle(&[
        ("sample.xml", r#"<APIProxy name="sample"/>"#),
        ("targets/default.xml", TARGET),
    ]);
    let (b, m) = load(&root);
    assert_eq!(m, [": error: the bundle has no proxies/ folder"], "{m:#?}");
    assert!(b.is_some_and(|b| b.proxies.is_empty() && b.targets.len() == 1));

    let (_tmp, root) = write_bundle(&[
        ("sample.xml", r#"<APIProxy name="sample"/>"#),
        ("proxies/readme.txt", "x"),
    ]);
    let (_, m) = load(&root);
    assert_eq!(
        m,
        [
            "proxies: error: no ProxyEndpoint: proxies/ holds no .xml file",
            "proxies/readme.txt: warning: not an .xml file; ignored",
        ],
        "{m:#?}"
    );
}

#[test]
fn root_descriptor_count() {
    let (_tmp, root) = write_bundle(&[
        ("a.xml", r#"<APIProxy name="a"/>"#),
        ("b.xml", r#"<APIProxy name="b"/>"#),
        ("proxies/default.xml", PROXY),
    ]);
    let (b, m) = load(&root);
    assert_eq!(
        m,
        [": error: 2 .xml files at the bundle root (a.xml, b.xml): a bundle has exactly one, its <APIProxy> descriptor"],
        "{m:#?}"
    );
    let b = b.unwrap();
    assert!(b.descriptor.is_none());
    assert_eq!(b.name.unwrap().value, "sample");

    // None: a warning, and the name of the folder holding apiproxy/.
    let (_tmp, root) = write_bundle(&[("proxies/default.xml", PROXY)]);
    let (b, m) = load(&root);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(
        m[0].starts_with(": warning: no root .xml descriptor"),
        "{m:#?}"
    );
    assert!(m[0].ends_with("named after its folder: sample"), "{m:#?}");
    assert_eq!(b.unwrap().name.unwrap().value, "sample");
}

#[test]
fn shared_flow_bundle_is_refused() {
    let (_tmp, root) = write_bundle(&[
        (
            "sf.xml",
            "<?xml version=\"1.0\"?>\n<SharedFlowBundle name=\"sf\" revision=\"1\"/>\n",
        ),
        ("sharedflows/default.xml", "<SharedFlow name=\"default\"/>"),
    ]);
    let (b, m) = load(&root);
    assert!(b.is_none());
    assert_eq!(m.len(), 1, "{m:#?}");
    assert_eq!(
        m[0],
        "sf.xml:2:1: error: this is a shared flow bundle (sharedflowbundle/ with sharedflows/), not an API proxy bundle (apiproxy/ with proxies/)"
    );
    let (_, diags) = load_bundle(&root);
    assert!(diags[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("policies/sharedflows/")));
}

#[test]
fn descriptor_name_revision_and_wrong_root() {
    let (_tmp, root) = write_bundle(&[
        (
            "x.xml",
            "<?xml version=\"1.0\"?>\r\n<!-- licence -->\r\n<APIProxy revision=\"\" name=\"my-proxy\">\r\n<Policies><Policy>Nope</Policy></Policies></APIProxy>",
        ),
        ("proxies/default.xml", PROXY),
    ]);
    let (b, m) = load(&root);
    assert!(m.is_empty(), "{m:#?}");
    let b = b.unwrap();
    let name = b.name.unwrap();
    assert_eq!(
        (name.value.as_str(), name.pos),
        ("my-proxy", Pos::new(3, 1))
    );
    assert!(b.revision.is_none());

    let (_tmp, root) = write_bundle(&[("x.xml", PROXY), ("proxies/default.xml", PROXY)]);
    let (b, m) = load(&root);
    assert!(b.is_some());
    assert!(has(&m, "x.xml:1:1: error: expected <APIProxy> as the root element of the bundle descriptor, found <ProxyEndpoint>"), "{m:#?}");
}

#[test]
fn doctype_is_refused() {
    let (_tmp, root) =
        with_proxy("<!DOCTYPE ProxyEndpoint [<!ENTITY e 'x'>]>\n<ProxyEndpoint name=\"&e;\"/>");
    let (b, m) = load(&root);
    assert!(
        has(&m, "proxies/default.xml:1:1: error: DOCTYPE is not allowed"),
        "{m:#?}"
    );
    assert!(b.unwrap().proxies.is_empty());
}

#[test]
fn step_without_name_is_an_error_at_the_step() {
    let (_tmp, root) = with_proxy(
        r#"<ProxyEndpoint name="default">
  <PreFlow>
    <Request>
      <Step><Condition>a = b</Condition></Step>
      <Step><Name>  </Name></Step>
      <Step><Name>ok</Name></Step>
    </Request>
  </PreFlow>
  <HTTPProxyConnection><BasePath>/v1/x</BasePath></HTTPProxyConnection>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    let (b, m) = load(&root);
    assert_eq!(
        m,
        [
            "proxies/default.xml:4:7: error: missing <Name> in <Step>",
            "proxies/default.xml:5:7: error: empty <Name> in <Step>",
        ]
    );
    // The bundle is still returned, without the bad steps; the caller refuses it on errors.
    let b = b.unwrap();
    assert_eq!(names(&b.proxies[0].endpoint.preflow.request), ["ok"]);
}

#[test]
fn route_rule_destinations() {
    let (_tmp, root) = with_proxy(
        r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/v1/x</BasePath></HTTPProxyConnection>
  <RouteRule name="both"><TargetEndpoint>default</TargetEndpoint><URL>http://x</URL></RouteRule>
  <RouteRule name="url"><Condition> a = b </Condition><URL>http://direct.example</URL></RouteRule>
  <RouteRule name="empty"><TargetEndpoint/></RouteRule>
  <RouteRule name="null"><Condition/></RouteRule>
  <RouteRule><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    let (b, m) = load(&root);
    assert_eq!(
        m,
        [
            "proxies/default.xml:3:3: error: a <RouteRule> with both <TargetEndpoint> and <URL>",
            "proxies/default.xml:5:27: error: empty <TargetEndpoint> in <RouteRule>",
            "proxies/default.xml:7:3: error: missing name attribute on <RouteRule>",
        ]
    );
    let b = b.unwrap();
    let rules = &b.proxies[0].endpoint.route_rules;
    assert_eq!(rules.len(), 2);
    assert!(matches!(&rules[0].to, RouteTarget::Url(u) if u.value == "http://direct.example"));
    assert_eq!(rules[0].condition.as_ref().unwrap().value, "a = b");
    assert!(matches!(rules[1].to, RouteTarget::Null));
    assert!(rules[1].condition.is_none());
}

#[test]
fn proxy_endpoint_requirements() {
    let (_tmp, root) = with_proxy("<ProxyEndpoint>\n<PreFlow/>\n</ProxyEndpoint>");
    let (b, m) = load(&root);
    assert_eq!(
        m,
        [
            "proxies/default.xml:1:1: error: missing name attribute on <ProxyEndpoint>",
            "proxies/default.xml:1:1: error: missing <HTTPProxyConnection> in <ProxyEndpoint>: it holds the BasePath that selects this endpoint",
        ]
    );
    assert!(b.unwrap().proxies.is_empty());

    let (_tmp, root) = with_proxy(
        "<ProxyEndpoint name=\"p\"><HTTPProxyConnection><BasePath/><VirtualHost>secure</VirtualHost></HTTPProxyConnection></ProxyEndpoint>",
    );
    let (_, m) = load(&root);
    assert_eq!(
        m,
        ["proxies/default.xml:1:46: error: empty <BasePath> in <HTTPProxyConnection>"]
    );

    let (_tmp, root) = with_proxy(TARGET);
    let (_, m) = load(&root);
    assert_eq!(
        m,
        ["proxies/default.xml:1:1: error: expected <ProxyEndpoint> as the root element, found <TargetEndpoint>"]
    );
}

#[test]
fn tolerated_and_warned() {
    let (_tmp, root) = with_proxy(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n<!-- c -->\r\n\
<ProxyEndpoint name=\"default\">\r\n\
  <Description>d</Description>\r\n\
  <RouteRule name=\"default\"><TargetEndpoint>default</TargetEndpoint></RouteRule>\r\n\
  <Flows/>\r\n\
  <PreFlow name=\"PreFlow\"><Request/><Response><Step><FaultRules/><Name>a</Name><Condition>\r\n  x &lt; 3 </Condition></Step></Response></PreFlow>\r\n\
  <HTTPProxyConnection><Properties/><BasePath>/v1/*/x</BasePath><Properties><Property name=\"a\">1</Property></Properties></HTTPProxyConnection>\r\n\
  <PreFlw/>\r\n\
  <PostClientFlow><Response><Step><Name>log</Name></Step></Response></PostClientFlow>\r\n\
  <EventFlow content-type=\"text/event-stream\"><Response/></EventFlow>\r\n\
  <Flows><Flow name=\"f\"><Step><Name>x</Name></Step></Flow></Flows>\r\n\
</ProxyEndpoint>\r\n",
    );
    let (b, m) = load(&root);
    assert_eq!(
        m,
        [
            "proxies/default.xml:10:1: warning: unknown element <PreFlw> in <ProxyEndpoint> is ignored",
            "proxies/default.xml:13:1: error: duplicate <Flows> in <ProxyEndpoint>",
        ]
    );
    let b = b.unwrap();
    let pe = &b.proxies[0].endpoint;
    assert_eq!(pe.pos, Pos::new(3, 1));
    let step = &pe.preflow.response[0];
    assert_eq!(step.condition.as_ref().unwrap().value, "x < 3");
    assert_eq!(names(&pe.post_client_flow.response), ["log"]);
    let unsupported: Vec<(&str, Pos)> = pe
        .unsupported
        .iter()
        .map(|u| (u.value.as_str(), u.pos))
        .collect();
    assert_eq!(
        unsupported,
        [
            ("EventFlow", Pos::new(12, 1)),
            ("BasePath with *", Pos::new(9, 35))
        ]
    );

    // Unknown elements deeper down are warnings with a did-you-mean hint.
    let (_tmp, root) = with_proxy(
        r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/v1/x</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>a</Name><Conditon>x</Conditon></Step></Request></PreFlow>
  <Flows><Flow name="f"><Step><Name>x</Name></Step></Flow></Flows>
  <RouteRule name="default"/>
</ProxyEndpoint>"#,
    );
    let (_, diags) = load_bundle(&root);
    let m = messages(&root, &diags);
    assert_eq!(
        m,
        [
            "proxies/default.xml:3:41: warning: unknown element <Conditon> in <Step> is ignored",
            "proxies/default.xml:4:25: warning: unknown element <Step> in <Flow> is ignored",
        ]
    );
    assert!(diags[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.starts_with("did you mean <Condition>?")));
}

#[test]
fn step_fault_rules_and_fault_rules() {
    let (_tmp, root) = with_target(
        r#"<TargetEndpoint name="default">
  <PreFlow><Request><Step><Name>a</Name><FaultRules><FaultRule name="r"/></FaultRules></Step></Request></PreFlow>
  <FaultRules>
    <FaultRule name="one"><Condition>fault.name = "x"</Condition><Step><Name>s1</Name></Step><Step><Name>s2</Name></Step></FaultRule>
    <FaultRule><Step><Name>s3</Name></Step><AlwaysEnforce>true</AlwaysEnforce></FaultRule>
  </FaultRules>
  <DefaultFaultRule><AlwaysEnforce>maybe</AlwaysEnforce><Step><Name>d</Name></Step></DefaultFaultRule>
  <HTTPTargetConnection><URL>http://b</URL></HTTPTargetConnection>
</TargetEndpoint>"#,
    );
    let (b, m) = load(&root);
    assert_eq!(
        m,
        [
            "targets/default.xml:5:44: warning: unknown element <AlwaysEnforce> in <FaultRule> is ignored",
            "targets/default.xml:7:21: error: invalid boolean \"maybe\" in <AlwaysEnforce>",
        ]
    );
    let b = b.unwrap();
    let te = &b.targets[0].endpoint;
    assert_eq!(te.unsupported[0].value, "Step/FaultRules");
    assert_eq!(te.unsupported[0].pos, Pos::new(2, 41));
    assert_eq!(te.fault_rules.len(), 2);
    assert_eq!(names(&te.fault_rules[0].steps), ["s1", "s2"]);
    assert!(te.fault_rules[1].name.is_none() && !te.fault_rules[1].always_enforce);
    let d = te.default_fault_rule.as_ref().unwrap();
    assert!(d.name.is_none() && !d.always_enforce);
    assert_eq!(names(&d.steps), ["d"]);
}

#[test]
fn target_connections() {
    let cases: &[(&str, &[&str])] = &[
        (
            "<TargetEndpoint name=\"t\"><Flows/></TargetEndpoint>",
            &["targets/default.xml:1:1: error: missing <HTTPTargetConnection> in <TargetEndpoint>"],
        ),
        (
            "<TargetEndpoint name=\"t\"><HTTPTargetConnection><URL> </URL></HTTPTargetConnection></TargetEndpoint>",
            &["targets/default.xml:1:48: error: empty <URL> in <HTTPTargetConnection>"],
        ),
        (
            "<TargetEndpoint name=\"t\"><HTTPTargetConnection><URL>http://a</URL><LoadBalancer><Server name=\"s\"/></LoadBalancer></HTTPTargetConnection></TargetEndpoint>",
            &["targets/default.xml:1:67: error: both <URL> and <LoadBalancer> in <HTTPTargetConnection>"],
        ),
        (
            "<TargetEndpoint name=\"t\"><HTTPTargetConnection/></TargetEndpoint>",
            &["targets/default.xml:1:26: error: missing <URL> in <HTTPTargetConnection>"],
        ),
        (
            "<TargetEndpoint name=\"t\"><HTTPTargetConnection><URL>http://a</URL></HTTPTargetConnection><LocalTargetConnection><Path>/x</Path></LocalTargetConnection></TargetEndpoint>",
            &["targets/default.xml:1:90: error: a <TargetEndpoint> with both <HTTPTargetConnection> and <LocalTargetConnection>"],
        ),
        (
            "<TargetEndpoint name=\"t\"><HTTPTargetConnection><LoadBalancer/></HTTPTargetConnection></TargetEndpoint>",
            &["targets/default.xml:1:48: error: a <LoadBalancer> without a <Server>"],
        ),
        (
            "<TargetEndpoint name=\"t\"><RouteRule name=\"r\"/><HTTPTargetConnection><URL>http://a</URL></HTTPTargetConnection></TargetEndpoint>",
            &["targets/default.xml:1:26: error: <RouteRule> belongs in a <ProxyEndpoint>, not in a <TargetEndpoint>"],
        ),
    ];
    for (target, want) in cases {
        let (_tmp, root) = with_target(target);
        let (_, m) = load(&root);
        assert_eq!(&m, want, "{target}");
    }

    let (_tmp, root) = with_target(
        r#"<TargetEndpoint name="lb">
  <HTTPTargetConnection>
    <SSLInfo><Enabled>true</Enabled></SSLInfo>
    <LoadBalancer>
      <Algorithm>RoundRobin</Algorithm>
      <Server name="one"/>
      <Server name="two"><IsFallback>true</IsFallback></Server>
    </LoadBalancer>
    <Path>/v1</Path>
    <HealthMonitor/>
  </HTTPTargetConnection>
</TargetEndpoint>"#,
    );
    let (b, m) = load(&root);
    assert!(m.is_empty(), "{m:#?}");
    let b = b.unwrap();
    let te = &b.targets[0].endpoint;
    let Some(Connection::LoadBalancer(lb)) = &te.connection else {
        panic!("{:?}", te.connection)
    };
    let servers: Vec<&str> = lb.servers.iter().map(|s| s.name.value.as_str()).collect();
    assert_eq!(servers, ["one", "two"]);
    assert!(!lb.servers[0].fallback && lb.servers[1].fallback);
    assert_eq!(lb.path.as_ref().unwrap().value, "/v1");
    assert_eq!(lb.algorithm, crate::runtime::balance::Algorithm::RoundRobin);
    assert!(lb.retry, "RetryEnabled defaults to true");
    assert_eq!(lb.max_failures, 0);
    assert!(
        lb.monitor.is_none(),
        "a HealthMonitor is off unless IsEnabled"
    );
    assert!(te.unsupported.is_empty(), "{:?}", te.unsupported);
    assert_eq!(te.ssl.as_ref().and_then(|s| s.enabled), Some(true));
}

#[test]
fn load_balancer_settings_are_read_with_apigee_defaults() {
    use crate::runtime::balance::{Algorithm, Check};
    let (_tmp, root) = with_target(
        r#"<TargetEndpoint name="lb">
  <HTTPTargetConnection>
    <LoadBalancer>
      <Algorithm>Weighted</Algorithm>
      <Server name="a"><Weight>1</Weight></Server>
      <Server name="b"><Weight>3</Weight><IsEnabled>false</IsEnabled></Server>
      <Server name="c"><IsFallback>true</IsFallback><Weight>1</Weight></Server>
      <MaxFailures>2</MaxFailures>
      <RetryEnabled>false</RetryEnabled>
      <TargetDisableSecs>60</TargetDisableSecs>
      <ServerUnhealthyResponse><ResponseCode>500</ResponseCode><ResponseCode>503</ResponseCode></ServerUnhealthyResponse>
    </LoadBalancer>
    <Path>/t/{request.header.tenant}</Path>
    <HealthMonitor>
      <IsEnabled>true</IsEnabled>
      <IntervalInSec>5</IntervalInSec>
      <HTTPMonitor>
        <Request><Verb>GET</Verb><Path>/health</Path><Header name="X-Check">1</Header></Request>
        <SuccessResponse><ResponseCode>200</ResponseCode><Header name="ImOK">YourOK</Header></SuccessResponse>
      </HTTPMonitor>
    </HealthMonitor>
  </HTTPTargetConnection>
</TargetEndpoint>"#,
    );
    let (b, m) = load(&root);
    assert!(m.is_empty(), "{m:#?}");
    let b = b.unwrap();
    let Some(Connection::LoadBalancer(lb)) = &b.targets[0].endpoint.connection else {
        panic!()
    };
    assert_eq!(lb.algorithm, Algorithm::Weighted);
    let weights: Vec<Option<u32>> = lb.servers.iter().map(|s| s.weight).collect();
    assert_eq!(weights, [Some(1), Some(3), Some(1)]);
    assert!(!lb.servers[1].enabled && lb.servers[2].fallback);
    assert_eq!((lb.max_failures, lb.retry), (2, false));
    assert_eq!(lb.target_disable_secs, Some(60));
    assert_eq!(lb.unhealthy, [500, 503]);
    assert_eq!(
        lb.path.as_ref().unwrap().value,
        "/t/{request.header.tenant}"
    );
    let monitor = lb.monitor.as_ref().unwrap();
    assert_eq!(monitor.interval_secs, 5);
    let Check::Http(h) = &monitor.check else {
        panic!()
    };
    assert_eq!((h.verb.as_str(), h.path.as_str()), ("GET", "/health"));
    assert_eq!(h.headers, [("x-check".to_owned(), "1".to_owned())]);
    assert_eq!(h.codes, [200]);
    assert_eq!(h.expect_headers, [("imok".to_owned(), "YourOK".to_owned())]);
}

#[test]
fn load_balancer_and_local_connection_mistakes_are_named() {
    let lb = |inner: &str| {
        format!("<TargetEndpoint name=\"t\"><HTTPTargetConnection><LoadBalancer>{inner}</LoadBalancer></HTTPTargetConnection></TargetEndpoint>")
    };
    let cases: Vec<(String, &str)> = vec![
        (lb("<Algorithm>RoundRobbin</Algorithm><Server name=\"a\"/>"), "error: unknown load balancing algorithm \"RoundRobbin\""),
        (lb("<Server name=\"a\"/><Server name=\"a\"/>"), "error: <Server name=\"a\"> is listed twice"),
        (lb("<Server name=\"a\"><IsFallback>true</IsFallback></Server><Server name=\"b\"><IsFallback>true</IsFallback></Server>"), "error: a second fallback server (`a` is one already)"),
        (lb("<Server name=\"a\"/><ServerUnhealthyResponse><ResponseCode>5xx</ResponseCode></ServerUnhealthyResponse>"), "error: invalid status code \"5xx\" in <ResponseCode>"),
        (lb("<Server name=\"a\"/><MaxFailures>-1</MaxFailures>"), "error: <MaxFailures> must be a whole number, not \"-1\""),
        (lb("<Server name=\"a\"><Weight>2</Weight></Server>"), "warning: <Weight> is used only by the Weighted algorithm; it is ignored"),
        (lb("<Server/>"), "error: missing name attribute on <Server>"),
        ("<TargetEndpoint name=\"t\"><HTTPTargetConnection><LoadBalancer><Server name=\"a\"/></LoadBalancer><HealthMonitor><IsEnabled>true</IsEnabled><IntervalInSec>5</IntervalInSec></HealthMonitor></HTTPTargetConnection></TargetEndpoint>".to_owned(), "error: a <HealthMonitor> needs exactly one of <TCPMonitor> and <HTTPMonitor>"),
        ("<TargetEndpoint name=\"t\"><LocalTargetConnection/></TargetEndpoint>".to_owned(), "error: a <LocalTargetConnection> names no proxy"),
        ("<TargetEndpoint name=\"t\"><LocalTargetConnection><APIProxy>x</APIProxy><Path>/x</Path></LocalTargetConnection></TargetEndpoint>".to_owned(), "error: a <LocalTargetConnection> with both <APIProxy> and <Path>"),
    ];
    for (target, want) in &cases {
        let (_tmp, root) = with_target(target);
        let (_, m) = load(&root);
        assert!(has(&m, want), "{target}: {m:#?}");
    }
}

#[test]
fn layout_warnings_and_limits() {
    let (_tmp, root) = write_bundle(&[
        ("sample.xml", r#"<APIProxy name="sample"/>"#),
        ("proxies/default.xml", PROXY),
        ("proxies/.DS_Store", "x"),
        ("policies/a.xml", "<Whatever name=\"a\"/>"),
        ("policies/notes.md", "x"),
        ("policies/sub/b.xml", "x"),
        ("resources/jsc/x.js", "x"),
        ("polices/c.xml", "x"),
        ("README", "x"),
    ]);
    let (b, m) = load(&root);
    assert_eq!(
        m,
        [
            "README: warning: unexpected file at the bundle root; ignored",
            "polices: warning: unknown folder polices/ in the bundle; ignored",
            "policies/notes.md: warning: not an .xml file; ignored",
            "policies/sub: warning: folder ignored: bundle files are not read from subfolders here",
        ]
    );
    let b = b.unwrap();
    // Policies are listed, not parsed.
    assert_eq!(b.policy_files, [root.join("policies/a.xml")]);
    assert!(b.targets.is_empty());

    let mut files: Vec<(String, String)> = (0..=MAX_FILES_PER_FOLDER)
        .map(|i| (format!("policies/p{i:03}.xml"), String::new()))
        .collect();
    files.push(("proxies/default.xml".into(), PROXY.into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (_tmp, root) = write_bundle(&refs);
    let (b, m) = load(&root);
    assert!(
        has(&m, "policies: error: more than 100 entries in the folder"),
        "{m:#?}"
    );
    assert!(b.unwrap().policy_files.is_empty());

    let big = format!(
        "<ProxyEndpoint name=\"p\"><!--{}--></ProxyEndpoint>",
        "x".repeat(1 << 20)
    );
    let (_tmp, root) = with_proxy(&big);
    let (_, m) = load(&root);
    let want = format!(
        "proxies/default.xml: error: file is {} bytes, more than the 1048576 byte limit",
        big.len()
    );
    assert_eq!(m, [want]);

    let (_tmp, root) = with_proxy("<ProxyEndpoint name=\"p\">");
    let (_, m) = load(&root);
    assert!(
        has(
            &m,
            "proxies/default.xml:1:1: error: malformed XML: <ProxyEndpoint> is never closed"
        ),
        "{m:#?}"
    );

    let (b, diags) = load_bundle(Path::new("/nonexistent/apiproxy"));
    assert!(b.is_none());
    assert!(
        diags[0].message.starts_with("cannot read the folder"),
        "{diags:?}"
    );
}

#[test]
fn policy_header_errors_and_flags() {
    let (_tmp, root) = write_bundle(&[
        ("policies/a.xml", "<Javascript name=\"JS-1\" enabled=\"false\" continueOnError=\"true\"><ResourceURL>jsc://a.js</ResourceURL></Javascript>"),
        ("policies/b.xml", "<Javascript enabled=\"nope\"/>"),
        ("policies/c.xml", "<!DOCTYPE x><Javascript/>"),
        ("policies/d.xml", "<!-- nothing -->"),
    ]);
    let h = policy_header(&root.join("policies/a.xml")).unwrap();
    assert_eq!(h.kind.value, "Javascript");
    assert_eq!(h.name.unwrap().value, "JS-1");
    assert!(!h.enabled && h.continue_on_error);

    let e = policy_header(&root.join("policies/b.xml")).unwrap_err();
    assert_eq!(e.pos, Some(Pos::new(1, 13)));
    assert!(e.message.contains("invalid boolean \"nope\""), "{e}");
    let e = policy_header(&root.join("policies/c.xml")).unwrap_err();
    assert!(e.message.starts_with("DOCTYPE is not allowed"), "{e}");
    let e = policy_header(&root.join("policies/d.xml")).unwrap_err();
    assert!(e.message.contains("no root element"), "{e}");
    let e = policy_header(&root.join("policies/missing.xml")).unwrap_err();
    assert!(e.message.starts_with("cannot read"), "{e}");
}
