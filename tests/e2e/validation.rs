//! Validation: every problem reported with file:line:col and a hint, nothing loaded on error.

use cachegate::config;

use crate::harness::{origin, repo, PolicyDir};

/// Loads `d` and returns the diagnostics as text, relative to the directory.
pub(crate) fn diagnostics(d: &PolicyDir) -> (bool, String) {
    let outcome = config::load(d.path());
    let text = outcome
        .diagnostics
        .to_string()
        .replace(&format!("{}/", d.path().display()), "");
    (outcome.config.is_some(), text)
}

fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected `{needle}` in:\n{text}");
}

#[test]
fn stage_toml_errors_have_positions_and_hints() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
base_path = "prod/"
[cache]
enabled = true
ttl = 7200
capacity = "12 parsecs"
"#,
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    // A TOML type error stops at the first problem in the file.
    assert_has(&text, "prod/stage.toml:6:12: error:");
    assert_has(&text, "unknown unit `parsecs`");

    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
base_path = "prod/"
[cache]
ttl = 7200
key_parameters = ["method.request.querystring.type", "request.header.x", "method.request.path.id"]
[[cache.method]]
resource = "items/*"
method = "FETCH"
caching = true
[cache.invalidation]
unauthorized = "FAIL_WITH_401"
[[cache.invalidation.grants]]
name = "ops"
token_sha256 = "abc"
resources = ["GET/items/*"]
"#,
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    assert_has(&text, "prod/stage.toml:2:13: error: base_path `prod/` must start with `/`\n    hint: write base_path = \"/prod\"");
    assert_has(
        &text,
        "prod/stage.toml:4:7: error: ttl = 7200 exceeds the maximum of 3600 seconds",
    );
    assert_has(
        &text,
        "prod/stage.toml:5:54: error: `request.header.x` is not a request parameter",
    );
    assert_has(
        &text,
        "prod/stage.toml:5:74: error: path parameter `id` is not declared by any resource template",
    );
    assert_has(
        &text,
        "prod/stage.toml:7:12: error: resource pattern `items/*` must start with `/`",
    );
    assert_has(
        &text,
        "prod/stage.toml:8:10: error: `FETCH` is not an HTTP method",
    );
    assert_has(
        &text,
        "prod/stage.toml:11:16: error: `FAIL_WITH_401` is not an unauthorized strategy",
    );
    assert_has(
        &text,
        "prod/stage.toml:14:16: error: token_sha256 must be 64 hexadecimal characters",
    );
}

#[test]
fn misspelt_keys_get_a_did_you_mean() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabeld = true\n",
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    assert_has(&text, "prod/stage.toml:3:1: error: unknown field `enabeld`");
    assert_has(&text, "hint: did you mean `enabled`?");
    d.write("gateway.toml", "[server]\nlisten = \"localhost\"\n");
    let (_, text) = diagnostics(&d);
    assert_has(
        &text,
        "gateway.toml:2:10: error: `listen = \"localhost\"` is not an IP address and port",
    );
}

#[test]
fn request_limits_out_of_range_name_the_range() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    d.write(
        "gateway.toml",
        "[server]\nmax_request_headers = 300\nmax_request_header_bytes = 2000000\nmax_uri_bytes = 10\n",
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    assert_has(
        &text,
        "gateway.toml:2:23: error: max_request_headers = 300 is out of range",
    );
    assert_has(&text, "hint: write a number from 1 to 256");
    assert_has(
        &text,
        "gateway.toml:3:28: error: max_request_header_bytes = 2000000 is out of range",
    );
    assert_has(&text, "hint: write a number from 1024 to 1048575");
    assert_has(
        &text,
        "gateway.toml:4:17: error: max_uri_bytes = 10 is out of range",
    );
}

#[test]
fn an_upgrade_socket_that_cannot_be_bound_is_named() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    d.write(
        "gateway.toml",
        "[server]\nupgrade_socket = \"relative.sock\"\n",
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    assert_has(
        &text,
        "gateway.toml:2:18: error: upgrade_socket = \"relative.sock\" cannot be a Unix socket path",
    );
    assert_has(&text, "hint: write an absolute path of at most 100 bytes");
}

#[test]
fn cross_file_problems_are_reported_together() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[[flows]]
name = "items"
condition = 'proxy.pathsuffix MatchesPath "/items/**" and'
request = ["RC-items", "RC-itmes"]
response = ["RC-items"]
[[flows]]
name = "items"
request = [{ policy = "PC", condition = 'request.verbb = "GET"' }]
"#,
    );
    d.write(
        "prod/RC-items.xml",
        r#"<ResponseCache name="RC-items">
  <CacheKey><KeyFragment ref="request.uri"/><KeyFragment ref="request.querparam.x"/></CacheKey>
  <ExpirySettings><TimeoutInSeconds>3000000</TimeoutInSeconds></ExpirySettings>
  <SkipCacheLookup>responsecache.RC-other.cachehit = true</SkipCacheLookup>
</ResponseCache>
"#,
    );
    d.write(
        "prod/Z.toml",
        r#"[PopulateCache]
name = "RC-items"
source = "response.content"
expiry = { timeout_secs = 60 }
[PopulateCache.cache_key]
fragments = [{ literal = "k" }]
"#,
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    assert_has(&text, "prod/stage.toml:4:13: error: invalid condition");
    assert_has(&text, "prod/stage.toml:5:24: error: step names policy `RC-itmes`, which does not exist in this stage\n    hint: did you mean `RC-items`?");
    assert_has(
        &text,
        "prod/stage.toml:8:8: error: a second flow named `items`",
    );
    assert_has(&text, "prod/stage.toml:9:12: error: step names policy `PC`");
    assert_has(
        &text,
        "warning: variable `request.verbb` does not exist, so it is always null\n    hint: did you mean `request.verb`?",
    );
    assert_has(
        &text,
        "prod/RC-items.xml:2:45: warning: variable `request.querparam.x` does not exist, so it is always null",
    );
    assert_has(
        &text,
        "prod/RC-items.xml:3:19: warning: <TimeoutInSeconds> of 3000000 seconds is longer than 30 days",
    );
    assert_has(&text, "warning: `responsecache.RC-other.cachehit` refers to ResponseCache `RC-other`, which this stage does not have, so it is always null");
    assert_has(
        &text,
        "prod/Z.toml:2:8: error: a second policy named `RC-items` (the first is ",
    );
}

#[test]
fn policy_attachment_rules() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
preflow = { request = ["RC"] }
[[flows]]
name = "a"
request = ["RC"]
response = ["RC"]
"#,
    );
    d.write("prod/RC.xml", "<ResponseCache name=\"RC\"><CacheKey><KeyFragment ref=\"request.uri\"/></CacheKey></ResponseCache>");
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    assert_has(&text, "prod/stage.toml:5:12: error: ResponseCache `RC` is attached more than once in the request path");
}

#[test]
fn unresolvable_targets_and_duplicate_base_paths() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "a",
        "base_path = \"/x\"\ntarget = \"http://no-such-host.invalid:9\"\n",
    );
    d.stage("b", "base_path = \"/x\"\ntarget = \"ftp://{{ORIGIN}}\"\n");
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    assert_has(
        &text,
        "a/stage.toml:2:10: error: cannot resolve target host `no-such-host.invalid`",
    );
    assert_has(&text, "is not an http:// or https:// URL");
}

#[test]
fn warnings_do_not_reject() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[[cache.invalidation.grants]]
name = "ops"
token_env = "CACHEGATE_TEST_UNSET_TOKEN_VARIABLE"
resources = ["GET/items/*"]
"#,
    );
    let (ok, text) = diagnostics(&d);
    assert!(ok, "{text}");
    assert_has(&text, "warning: grant `ops` is disabled: environment variable CACHEGATE_TEST_UNSET_TOKEN_VARIABLE is not set");
}

/// Every real Apigee policy file shipped as a fixture loads into a stage unchanged, except the
/// linter's deliberately broken ones, which are rejected or warned about.
#[test]
fn real_apigee_policies_load_in_a_stage() {
    let root = repo().join("tests/fixtures/apigee");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("fixtures") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "xml") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 40,
        "expected the Apigee fixtures, found {}",
        files.len()
    );
    let o = origin();
    let mut loaded = 0;
    for f in &files {
        let rel = f.strip_prefix(&root).expect("rel").display().to_string();
        // One stage per file: names repeat across fixtures.
        let d = PolicyDir::new(&o);
        d.stage("s", "target = \"http://{{ORIGIN}}\"\n");
        d.write(
            &format!("s/{}", f.file_name().expect("name").to_string_lossy()),
            &std::fs::read_to_string(f).expect("read"),
        );
        let outcome = config::load(d.path());
        let broken = rel.contains("/fail/");
        if rel.ends_with("PO030-ExpirySettings/pass/Cache-Populate-2.xml") {
            // Valid for Apigee with its one-day TTL: Apigee policies keep Apigee's limit (30
            // days), not AWS stage caching's 3600 s.
            assert!(outcome.config.is_some(), "{rel}: {}", outcome.diagnostics);
            loaded += 1;
        } else if broken {
            assert!(
                !outcome.diagnostics.is_empty(),
                "{rel}: a broken fixture produced no diagnostic"
            );
            for diag in outcome.diagnostics.iter() {
                assert!(
                    diag.pos.is_some(),
                    "{rel}: diagnostic without a position: {diag}"
                );
            }
        } else {
            assert!(
                outcome.config.is_some(),
                "{rel} did not load:\n{}",
                outcome.diagnostics
            );
            loaded += 1;
        }
    }
    assert!(loaded >= 30, "only {loaded} fixtures loaded");
}

#[test]
fn a_stage_toml_stage_names_its_endpoints_and_treats_apigee_kinds_it_does_not_run_as_a_bundle_does()
{
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "api",
        r#"target = "http://{{ORIGIN}}"
proxy_endpoint = ""
[preflow]
request = ["Q-limit", "KVM-config"]
[target_endpoint]
name = "backend"
[target_endpoint.postflow]
response = ["AM-missing"]
"#,
    );
    d.write(
        "api/Q-limit.xml",
        r#"<Quota name="Q-limit"><Allow count="5"/></Quota>"#,
    );
    d.write(
        "api/KVM-config.xml",
        r#"<KeyValueMapOperations name="KVM-config" mapIdentifier="m"/>"#,
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok);
    assert_has(
        &text,
        "api/stage.toml:2:18: error: proxy_endpoint `` must be 1 to 255 printable characters",
    );
    // Refused by name with the steps that use them, as in a bundle.
    assert_has(&text, "api/Q-limit.xml:1:1: error: <Quota> `Q-limit` is of a kind cachegate does not run; used by the step(s) at ");
    assert_has(&text, "write skip_policies = [\"Quota\"] in stage.toml");
    assert_has(&text, "api/KVM-config.xml:1:1: error: <KeyValueMapOperations> `KVM-config` runs code or calls a service cachegate cannot run");
    // TargetEndpoint steps are checked like any other.
    assert_has(
        &text,
        "error: step names policy `AM-missing`, which does not exist in this stage",
    );

    d.stage(
        "api",
        r#"target = "http://{{ORIGIN}}"
proxy_endpoint = "edge"
skip_policies = ["Quota", "KeyValueMapOperations"]
acknowledge_unprotected = ["KeyValueMapOperations"]
[preflow]
request = ["Q-limit", "KVM-config"]
[target_endpoint]
name = "backend"
"#,
    );
    let (ok, text) = diagnostics(&d);
    assert!(ok, "{text}");
    assert_has(&text, "<Quota> `Q-limit` runs as a no-op (skip_policies)");
    assert_has(&text, "<KeyValueMapOperations> `KVM-config` is SKIPPED");

    // Beside a bundle the bundle names its endpoints.
    let b = PolicyDir::new(&o);
    b.write("api/apiproxy/api.xml", r#"<APIProxy name="api"/>"#);
    b.write(
        "api/apiproxy/proxies/default.xml",
        r#"<ProxyEndpoint name="default"><HTTPProxyConnection><BasePath>/api</BasePath></HTTPProxyConnection><RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule></ProxyEndpoint>"#,
    );
    b.write(
        "api/apiproxy/targets/default.xml",
        r#"<TargetEndpoint name="default"><HTTPTargetConnection><URL>http://{{ORIGIN}}</URL></HTTPTargetConnection></TargetEndpoint>"#,
    );
    b.stage(
        "api",
        "route_rule = \"main\"\n[target_endpoint]\nname = \"x\"\n",
    );
    let (ok, text) = diagnostics(&b);
    assert!(!ok);
    assert_has(
        &text,
        "api/stage.toml:1:14: error: `route_rule` cannot be set beside an Apigee bundle",
    );
    assert_has(
        &text,
        "api/stage.toml:3:8: error: `target_endpoint` cannot be set beside an Apigee bundle",
    );
}
