//! Proxy chaining (`LocalTargetConnection`): a stage whose TargetEndpoint is another stage runs
//! that stage completely — its flows and its cache policies — as Apigee runs a chained proxy;
//! loops are refused, a missing proxy is a warning and a 502 that names it. Also `{variable}`
//! templates in a TargetEndpoint URL's path.

use crate::harness::{client, get, origin, send, PolicyDir, TestGateway};

const PAGINATION: &str = "apigee+api-platform-samples/sample-proxies/pagination";

/// A bundle stage `stage` (API `api`) at `base` whose only TargetEndpoint is `target` (the XML
/// inside `<TargetEndpoint>`), with a ResponseCache keyed on the path suffix when `cached`.
fn stage_bundle(d: &PolicyDir, stage: &str, api: &str, base: &str, target: &str, cached: bool) {
    d.write(
        &format!("{stage}/apiproxy/{api}.xml"),
        &format!(r#"<APIProxy name="{api}"/>"#),
    );
    let steps = if cached {
        "<Request><Step><Name>RC</Name></Step></Request><Response><Step><Name>RC</Name></Step></Response>"
    } else {
        ""
    };
    d.write(
        &format!("{stage}/apiproxy/proxies/default.xml"),
        &format!(
            r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>{base}</BasePath></HTTPProxyConnection>
  <PreFlow>{steps}</PreFlow>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#
        ),
    );
    d.write(
        &format!("{stage}/apiproxy/targets/default.xml"),
        &format!(r#"<TargetEndpoint name="default">{target}</TargetEndpoint>"#),
    );
    if cached {
        d.write(
            &format!("{stage}/apiproxy/policies/RC.xml"),
            r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey>
  <ExpirySettings><TimeoutInSec>60</TimeoutInSec></ExpirySettings></ResponseCache>"#,
        );
    }
}

fn to_origin(path: &str) -> String {
    format!("<HTTPTargetConnection><URL>http://{{{{ORIGIN}}}}{path}</URL></HTTPTargetConnection>")
}

fn chained(api: &str) -> String {
    format!("<LocalTargetConnection><APIProxy>{api}</APIProxy><ProxyEndpoint>default</ProxyEndpoint></LocalTargetConnection>")
}

#[tokio::test]
async fn a_chained_proxy_runs_with_its_own_cache_policies() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage_bundle(&d, "back", "back", "/back", &to_origin("/echo"), true);
    stage_bundle(&d, "front", "front", "/front", &chained("back"), true);
    let gw = TestGateway::start(d);

    // Cached through `back` directly, then asked for through `front`: back's cache answers.
    let direct = get(&gw.url("/back/items/1")).await;
    assert_eq!((direct.status, direct.x_cache()), (200, "MISS"));
    let through = get(&gw.url("/front/items/1")).await;
    assert_eq!(through.status, 200, "{}", through.body);
    assert_eq!(through.x_cache(), "MISS", "front's own cache had nothing");
    assert_eq!(through.json()["seq"], direct.json()["seq"], "back's entry");
    assert_eq!(o.count("/echo/items/1"), 1);

    // Asked for through `front` first: the chained request reached `back` (and the origin
    // under back's target path), and both stages stored it.
    let first = get(&gw.url("/front/items/2?q=1")).await;
    assert_eq!(first.json()["path"], "/echo/items/2");
    assert_eq!(first.json()["query"], "q=1");
    // `back` sees the chained call coming from the gateway itself (Apigee: a local address).
    let xff = first.json()["headers"]["x-forwarded-for"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(xff.ends_with("127.0.0.1"), "{xff}");
    assert_eq!(get(&gw.url("/front/items/2?q=1")).await.x_cache(), "HIT");
    assert_eq!(get(&gw.url("/back/items/2?q=1")).await.x_cache(), "HIT");
    assert_eq!(o.count("/echo/items/2"), 1);
}

#[tokio::test]
async fn a_chain_by_path_reaches_the_stage_serving_it() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage_bundle(&d, "back", "back", "/back", &to_origin("/echo"), false);
    stage_bundle(
        &d,
        "front",
        "front",
        "/front",
        "<LocalTargetConnection><Path>/back/v2</Path></LocalTargetConnection>",
        false,
    );
    let gw = TestGateway::start(d);
    let r = get(&gw.url("/front/x")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["path"], "/echo/v2/x");
}

#[test]
fn a_chain_leading_back_to_its_own_stage_is_refused() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage_bundle(&d, "selfie", "selfie", "/selfie", &chained("selfie"), false);
    stage_bundle(&d, "ping", "ping", "/ping", &chained("pong"), false);
    stage_bundle(&d, "pong", "pong", "/pong", &chained("ping"), false);
    let out = cachegate::config::load(d.path());
    let diags = out.diagnostics.to_string();
    assert!(out.config.is_none());
    for want in [
        "selfie/apiproxy/targets/default.xml:1:32: error: proxy chaining loop: stage selfie → selfie calls itself again",
        "ping/apiproxy/targets/default.xml:1:32: error: proxy chaining loop: stage ping → pong → ping",
        "pong/apiproxy/targets/default.xml:1:32: error: proxy chaining loop: stage pong → ping → pong",
    ] {
        assert!(diags.contains(want), "{want}\n{diags}");
    }
}

#[tokio::test]
async fn a_chain_to_a_proxy_not_deployed_loads_with_a_warning_and_answers_502_naming_it() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage_bundle(&d, "front", "front", "/front", &chained("nowhere"), false);
    let out = cachegate::config::load(d.path());
    assert!(out.config.is_some(), "{}", out.diagnostics);
    assert!(out.diagnostics.to_string().contains(
        "front/apiproxy/targets/default.xml:1:32: warning: the chained API proxy `nowhere` is not deployed in this environment"
    ));
    let gw = TestGateway::start(d);
    let r = get(&gw.url("/front/x")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_gateway");
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("`nowhere` is not deployed")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_pagination_sample_chains_to_its_restaurant_locator_and_caches() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.bundle("pagination", PAGINATION, "/echo");
    // The sample's XSL and ExtractVariables have no engine here: run as no-ops, its body is then
    // the empty result of the skipped transformation, but its ResponseCache works.
    d.stage(
        "pagination",
        "skip_policies = [\"XSL\", \"ExtractVariables\"]\n",
    );
    stage_bundle(
        &d,
        "restaurants",
        "restaurant_locator",
        "/restaurants",
        &to_origin("/echo"),
        false,
    );
    let gw = TestGateway::start(d);
    let url = gw.url("/pagination?session_id=s1&offset=0&limit=5");
    let first = get(&url).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(first.header("content-type"), "text/xml");
    assert_eq!(
        o.count("/echo"),
        1,
        "restaurant_locator's target was called"
    );
    assert_eq!(get(&url).await.x_cache(), "HIT");
    assert_eq!(o.count("/echo"), 1);
}

#[tokio::test]
async fn a_url_template_fills_the_target_path_with_encoded_variables() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage_bundle(
        &d,
        "t",
        "t",
        "/t",
        &to_origin("/echo/{request.header.x-tenant}"),
        false,
    );
    let gw = TestGateway::start(d);
    let tenant = |v: &'static str| send(client().get(gw.url("/t/x")).header("x-tenant", v));
    let r = tenant("acme").await;
    assert_eq!(r.json()["path"], "/echo/acme/x", "{}", r.body);
    let r = tenant("a b?c").await;
    assert_eq!(r.json()["path"], "/echo/a%20b%3Fc/x", "{}", r.body);
    // A value cannot climb out of the target's path.
    let r = tenant("..").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(o.count("/echo/x"), 0);
}

#[test]
fn a_variable_in_a_target_host_is_refused() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage_bundle(
        &d,
        "t",
        "t",
        "/t",
        "<HTTPTargetConnection><URL>http://{region}.example/v1</URL></HTTPTargetConnection>",
        false,
    );
    let diags = cachegate::config::load(d.path()).diagnostics.to_string();
    assert!(
        diags.contains(
            "has a `{variable}` in its host or port: cachegate resolves target hosts once"
        ),
        "{diags}"
    );
}

#[test]
fn a_template_in_a_local_target_connection_is_refused() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage_bundle(
        &d,
        "front",
        "front",
        "/front",
        &chained("{request.header.to}"),
        false,
    );
    let diags = cachegate::config::load(d.path()).diagnostics.to_string();
    assert!(
        diags.contains("front/apiproxy/targets/default.xml:1:55: error: `{request.header.to}` in a <LocalTargetConnection> is a {variable} template"),
        "{diags}"
    );
}
