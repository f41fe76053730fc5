//! Apigee API proxy bundles (`policies/<stage>/apiproxy/`): the real samples under
//! `tests/fixtures/apigee-bundles/` load or are refused by name, run with their cache policies
//! in effect, and ProxyEndpoint / TargetEndpoint flows and RouteRules mean what Apigee means.

use serde_json::json;

use crate::harness::{client, get, origin, send, PolicyDir, TestGateway, ADMIN_TOKEN};

const BASIC: &str = "GoogleCloudPlatform+apigee-samples/basic-caching";
const RC2: &str = "apigee+api-platform-samples/learn-edge/response-cache-2";
const LLM: &str = "GoogleCloudPlatform+apigee-samples/llm-semantic-cache";

pub(crate) fn messages(d: &PolicyDir) -> (bool, String) {
    let out = cachegate::config::load(d.path());
    (out.config.is_some(), out.diagnostics.to_string())
}

#[tokio::test]
async fn basic_caching_runs_unchanged_with_its_cache_policies_in_effect() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.bundle("books", BASIC, "/echo/volumes");
    d.stage("books", "revision = 7\n");
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let url = gw.url("/v1/samples/basic-caching?q=rust");

    let first = get(&url).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.x_cache(), "MISS");
    // The TargetEndpoint URL's path, then the path suffix (none) and the query.
    assert_eq!(first.json()["path"], "/echo/volumes", "{}", first.body);
    assert_eq!(first.json()["query"], "q=rust");
    // AM-SetCacheHitHeader (ProxyEndpoint PostFlow response) reads the ResponseCache's result.
    assert_eq!(first.header("served-from-cache"), "false");
    assert_eq!(
        first.header("cached-on"),
        "",
        "only hits say when they were cached"
    );

    let second = get(&url).await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.json()["seq"], first.json()["seq"]);
    assert_eq!(second.header("served-from-cache"), "true");
    // PC-SetCachedOnDateTime stored `system.time` in the TargetEndpoint's PostFlow on the miss;
    // LC-LookupCachedOnDateTime read it back on the hit (the TargetEndpoint's response steps
    // run on hits too) and AM-SetCachedOnHeader set it.
    let cached_on = second.header("cached-on");
    assert!(
        cached_on.ends_with(" GMT") && cached_on.len() == 29,
        "{cached_on:?}"
    );

    // The bypass header skips the lookup (SkipCacheLookup) and repopulates.
    let bypass = send(client().get(&url).header("x-bypass-cache", "true")).await;
    assert_eq!(bypass.x_cache(), "REFRESH");
    assert_ne!(bypass.json()["seq"], first.json()["seq"]);

    // The key is Apigee's documented string for Exclusive scope on the ProxyEndpoint where the
    // lookup runs: org__env__proxy__revision__endpoint__fragment (request.uri includes the
    // base path).
    let r = send(
        client()
            .post(gw.admin("/stages/books/cache/invalidate"))
            .json(&json!({"path": "", "query": "q=rust"}))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["key"],
        "cachegate__books__basic-caching__7__default__/v1/samples/basic-caching?q=rust",
        "{}",
        r.body
    );
    assert_eq!(r.json()["invalidated"], 1, "{}", r.body);
    assert_eq!(get(&url).await.x_cache(), "MISS");
}

#[tokio::test]
async fn a_security_policy_is_refused_unless_skipping_it_is_acknowledged() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.bundle("weather", RC2, "/echo");
    let (ok, diags) = messages(&d);
    assert!(!ok);
    assert!(
        diags.contains("weather/apiproxy/policies/VerifyApiKey.xml:1:1: error: <VerifyAPIKey> `VerifyAPIKey` is a security policy cachegate does not run; used by the step(s) at ")
            && diags.contains("weather/apiproxy/proxies/default.xml:17:9"),
        "{diags}"
    );
    assert!(
        diags.contains(
            "skip_policies = [\"VerifyAPIKey\"] and acknowledge_unprotected = [\"VerifyAPIKey\"]"
        ),
        "{diags}"
    );

    // Listing it in skip_policies alone is not enough.
    d.stage("weather", "skip_policies = [\"VerifyAPIKey\"]\n");
    let (ok, diags) = messages(&d);
    assert!(!ok);
    assert!(
        diags.contains("is a security policy: skipping it removes the protection it gives")
            && diags.contains("acknowledge_unprotected = [\"VerifyAPIKey\"]"),
        "{diags}"
    );

    // With the acknowledgement it runs, with a loud warning, and without the key check.
    d.stage(
        "weather",
        "skip_policies = [\"VerifyAPIKey\"]\nacknowledge_unprotected = [\"VerifyAPIKey\"]\n",
    );
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    assert!(
        diags.contains("is SKIPPED: this API runs WITHOUT the protection it gives"),
        "{diags}"
    );
    let gw = TestGateway::start(d);
    let url = gw.url("/v1/learn-edge/forecastrss?w=12797282");
    let first = get(&url).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(get(&url).await.x_cache(), "HIT");
}

#[test]
fn every_sample_bundle_loads_or_is_refused_by_name() {
    let o = origin();
    // (fixture, loads, a text every refusal must contain)
    let cases = [
        (BASIC, true, ""),
        (
            "apigee+api-platform-samples/edge-ux/response-cache-simple",
            true,
            "",
        ),
        (
            "apigee+api-platform-samples/sample-proxies/response-cache",
            true,
            "",
        ),
        (
            RC2,
            false,
            "<VerifyAPIKey> `VerifyAPIKey` is a security policy",
        ),
        (
            "apigee+api-platform-samples/sample-proxies/outbound-oauth",
            false,
            "<Javascript> `api-config` runs code or calls a service cachegate cannot run, and may check callers",
        ),
        // Its LocalTargetConnection runs (see chaining.rs, where it loads with these two
        // kinds skipped and chains to a restaurant_locator stage).
        (
            "apigee+api-platform-samples/sample-proxies/pagination",
            false,
            "<XSL> `XSLT-Paginate` is of a kind cachegate does not run",
        ),
        (
            "apigee+api-platform-samples/perf-proxies/perfproxy",
            false,
            "FlowCallout `FlowCallout` calls shared flow `sfassignmessage`, which is not loaded",
        ),
        (
            LLM,
            false,
            "<AssertCondition> `semantic-cache-request-v1/Assert-NearestNeighborHit` is of a kind cachegate does not run",
        ),
        (
            "apigee+devrel/references/product-recommendations",
            false,
            "HTTPTargetConnection/Authentication is not supported",
        ),
    ];
    let mut loaded = 0;
    for (fixture, loads, refusal) in cases {
        let d = PolicyDir::new(&o);
        d.bundle("s", fixture, "/echo");
        // Its shared flows, in the environment's sharedflows/ folder.
        if fixture == LLM {
            for flow in ["semantic-cache-request-v1", "semantic-cache-response-v1"] {
                d.shared_flow_fixture(flow, &format!("{LLM}/{flow}"));
            }
        }
        let (ok, diags) = messages(&d);
        assert_eq!(ok, loads, "{fixture}: {diags}");
        assert!(diags.contains(refusal), "{fixture}: {diags}");
        loaded += usize::from(ok);
        if fixture == LLM {
            // Everything its shared flows need that cachegate does not run, skipped on purpose.
            d.write("s/stage.toml", "skip_policies = [\"ExtractVariables\", \"AssertCondition\", \"ServiceCallout\", \"Javascript\"]\nacknowledge_unprotected = [\"ServiceCallout\", \"Javascript\"]\n");
            let (ok, diags) = messages(&d);
            assert!(ok, "{diags}");
            assert!(
                diags.contains("`semantic-cache-request-v1/SC-GenerateEmbeddings` is SKIPPED"),
                "{diags}"
            );
        }
    }
    assert_eq!(loaded, 3);
}

/// A bundle with two TargetEndpoints, conditional RouteRules (one to a URL, one null) and
/// TargetEndpoint flows.
fn routed_bundle(d: &PolicyDir) {
    d.write(
        "api/apiproxy/api.xml",
        r#"<APIProxy name="routed" revision="3"/>"#,
    );
    d.write(
        "api/apiproxy/proxies/default.xml",
        r#"<ProxyEndpoint name="edge">
  <HTTPProxyConnection><BasePath>/routed</BasePath></HTTPProxyConnection>
  <PostFlow><Response><Step><Name>AM-tag</Name></Step></Response></PostFlow>
  <RouteRule name="none"><Condition>request.header.x-route = "none"</Condition></RouteRule>
  <RouteRule name="direct"><Condition>request.header.x-route = "direct"</Condition><URL>http://{{ORIGIN}}/echo/direct</URL></RouteRule>
  <RouteRule name="to-b"><Condition>request.header.x-route = "b"</Condition><TargetEndpoint>b</TargetEndpoint></RouteRule>
  <RouteRule name="default"><TargetEndpoint>a</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    d.write(
        "api/apiproxy/targets/a.xml",
        r#"<TargetEndpoint name="a"><HTTPTargetConnection><URL>http://{{ORIGIN}}/echo/a</URL></HTTPTargetConnection></TargetEndpoint>"#,
    );
    d.write(
        "api/apiproxy/targets/b.xml",
        r#"<TargetEndpoint name="b">
  <Flows>
    <Flow name="items"><Condition>proxy.pathsuffix MatchesPath "/items/**"</Condition>
      <Request><Step><Name>LC-b</Name></Step></Request>
      <Response><Step><Name>PC-b</Name></Step><Step><Name>AM-b</Name></Step></Response>
    </Flow>
  </Flows>
  <HTTPTargetConnection><URL>http://{{ORIGIN}}/echo/b</URL></HTTPTargetConnection>
</TargetEndpoint>"#,
    );
    d.write(
        "api/apiproxy/policies/AM-tag.xml",
        r#"<AssignMessage name="AM-tag"><Set><Headers><Header name="x-proxy">{apiproxy.name} {apiproxy.revision}</Header><Header name="x-route">{proxy.name} {route.name} {target.name}</Header></Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    );
    d.write(
        "api/apiproxy/policies/AM-b.xml",
        r#"<AssignMessage name="AM-b"><Set><Headers><Header name="x-target-flow">b/items</Header><Header name="x-key">{lookupcache.LC-b.cachekey}</Header><Header name="x-hit">{lookupcache.LC-b.cachehit}</Header></Headers></Set></AssignMessage>"#,
    );
    d.write(
        "api/apiproxy/policies/LC-b.xml",
        r#"<LookupCache name="LC-b"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><AssignTo>seen</AssignTo></LookupCache>"#,
    );
    d.write(
        "api/apiproxy/policies/PC-b.xml",
        r#"<PopulateCache name="PC-b"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings><Source>request.verb</Source></PopulateCache>"#,
    );
}

#[tokio::test]
async fn route_rules_pick_the_target_and_its_flows_in_order() {
    let o = origin();
    let d = PolicyDir::new(&o);
    routed_bundle(&d);
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let with_route = |route: &'static str| {
        let url = gw.url("/routed/items/1?x=1");
        async move { send(client().get(url).header("x-route", route)).await }
    };

    // The unconditional rule, last: TargetEndpoint a, no TargetEndpoint steps.
    let a = with_route("other").await;
    assert_eq!(a.json()["path"], "/echo/a/items/1", "{}", a.body);
    assert_eq!(a.json()["query"], "x=1");
    assert_eq!(a.header("x-target-flow"), "");
    assert_eq!(a.header("x-proxy"), "routed 3");
    assert_eq!(a.header("x-route"), "edge default a");

    // TargetEndpoint b: its flow's request and response steps run, and its Exclusive-scoped
    // LookupCache names the TargetEndpoint it is attached on.
    let b = with_route("b").await;
    assert_eq!(b.json()["path"], "/echo/b/items/1", "{}", b.body);
    assert_eq!(b.header("x-target-flow"), "b/items");
    assert_eq!(b.header("x-route"), "edge to-b b");
    assert_eq!(b.header("x-key"), "cachegate__api__routed__3__b__/items/1");
    assert_eq!(b.header("x-hit"), "false");
    assert_eq!(with_route("b").await.header("x-hit"), "true");

    // A RouteRule URL bypasses every TargetEndpoint.
    let direct = with_route("direct").await;
    assert_eq!(
        direct.json()["path"],
        "/echo/direct/items/1",
        "{}",
        direct.body
    );
    assert_eq!(direct.header("x-target-flow"), "");

    // A null route forwards nothing: the response is what the policies make.
    let before = o.total();
    let none = with_route("none").await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body, "");
    assert_eq!(none.x_cache(), "BYPASS");
    assert_eq!(
        none.header("cache-status"),
        "cachegate; fwd=bypass; detail=null_route"
    );
    assert_eq!(none.header("x-proxy"), "routed 3");
    assert_eq!(o.total(), before, "a null route reached the target");
}

#[test]
fn bundle_mistakes_are_named_with_file_and_line() {
    let o = origin();
    let d = PolicyDir::new(&o);
    routed_bundle(&d);
    // A RouteRule to a TargetEndpoint that does not exist, a step naming a missing policy, and
    // stage.toml settings the bundle owns.
    d.write(
        "api/apiproxy/proxies/default.xml",
        r#"<ProxyEndpoint name="edge">
  <HTTPProxyConnection><BasePath>/routed</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>AM-tags</Name></Step></Request></PreFlow>
  <RouteRule name="default"><TargetEndpoint>c</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    d.stage("api", "target = \"http://{{ORIGIN}}\"\n");
    let (ok, diags) = messages(&d);
    assert!(!ok);
    for expected in [
        "api/apiproxy/proxies/default.xml:4:3: error: RouteRule `default` names TargetEndpoint `c`, which does not exist",
        "api/apiproxy/proxies/default.xml:3:27: error: step names policy `AM-tags`, which does not exist in this stage",
        "did you mean `AM-tag`?",
        "error: `target` cannot be set beside an Apigee bundle",
        "api/apiproxy/policies/AM-tag.xml:1:1: warning: policy `AM-tag` is not attached to any step",
    ] {
        assert!(diags.contains(expected), "{expected}\n{diags}");
    }
}

#[tokio::test]
async fn a_response_cache_hit_skips_the_rest_of_the_request_path_and_resumes_after_its_response_attachment(
) {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.write("hc/apiproxy/hc.xml", r#"<APIProxy name="hc"/>"#);
    d.write(
        "hc/apiproxy/proxies/default.xml",
        r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/hc</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>AM-tier</Name></Step><Step><Name>RC</Name></Step></Request></PreFlow>
  <Flows>
    <Flow name="gold"><Condition>tier = "gold"</Condition><Request><Step><Name>AM-after</Name></Step></Request></Flow>
  </Flows>
  <PostFlow><Response><Step><Name>AM-report</Name></Step></Response></PostFlow>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    d.write(
        "hc/apiproxy/targets/default.xml",
        r#"<TargetEndpoint name="default">
  <PreFlow><Response><Step><Name>AM-te-pre</Name></Step></Response></PreFlow>
  <PostFlow><Response><Step><Name>RC</Name></Step></Response></PostFlow>
  <HTTPTargetConnection><URL>http://{{ORIGIN}}/echo</URL></HTTPTargetConnection>
</TargetEndpoint>"#,
    );
    d.write(
        "hc/apiproxy/policies/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    d.write(
        "hc/apiproxy/policies/AM-tier.xml",
        r#"<AssignMessage name="AM-tier"><AssignVariable><Name>tier</Name><Value>gold</Value></AssignVariable></AssignMessage>"#,
    );
    d.write(
        "hc/apiproxy/policies/AM-after.xml",
        r#"<AssignMessage name="AM-after"><AssignVariable><Name>after</Name><Value>ran</Value></AssignVariable></AssignMessage>"#,
    );
    d.write(
        "hc/apiproxy/policies/AM-te-pre.xml",
        r#"<AssignMessage name="AM-te-pre"><Set><Headers><Header name="x-te-pre">ran</Header></Headers></Set></AssignMessage>"#,
    );
    d.write(
        "hc/apiproxy/policies/AM-report.xml",
        r#"<AssignMessage name="AM-report"><Set><Headers><Header name="x-after">{after}</Header><Header name="x-hit">{responsecache.RC.cachehit}</Header><Header name="x-flow">{current.flow.name}</Header></Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    );
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let url = gw.url("/hc/items/1");

    let miss = get(&url).await;
    assert_eq!(miss.x_cache(), "MISS", "{}", miss.body);
    // The flow is chosen after PreFlow, so its condition sees `tier`.
    assert_eq!(miss.header("x-flow"), "gold");
    assert_eq!(miss.header("x-after"), "ran");
    assert_eq!(miss.header("x-te-pre"), "ran");
    assert_eq!(miss.header("x-hit"), "false");

    let hit = get(&url).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("x-hit"), "true");
    // The request steps after the lookup did not run, and neither did the TargetEndpoint
    // response steps before the ResponseCache's response attachment.
    assert_eq!(hit.header("x-after"), "");
    assert_eq!(hit.header("x-te-pre"), "");
    assert_eq!(hit.header("x-flow"), "gold");
}

/// A bundle stage `stage` at `/stage` whose ProxyEndpoint runs `request` and `response` steps
/// (policy names) and forwards to the origin's echo.
pub(crate) fn small_bundle(
    d: &PolicyDir,
    stage: &str,
    api: &str,
    request: &[&str],
    response: &[&str],
) {
    let steps = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("<Step><Name>{n}</Name></Step>"))
            .collect::<String>()
    };
    d.write(
        &format!("{stage}/apiproxy/{api}.xml"),
        &format!(r#"<APIProxy name="{api}" revision="1"/>"#),
    );
    d.write(
        &format!("{stage}/apiproxy/proxies/default.xml"),
        &format!(
            r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/{stage}</BasePath></HTTPProxyConnection>
  <PreFlow><Request>{}</Request><Response>{}</Response></PreFlow>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
            steps(request),
            steps(response)
        ),
    );
    d.write(
        &format!("{stage}/apiproxy/targets/default.xml"),
        r#"<TargetEndpoint name="default"><HTTPTargetConnection><URL>http://{{ORIGIN}}/echo</URL></HTTPTargetConnection></TargetEndpoint>"#,
    );
}

fn token_policy(kind: &str, name: &str, scope: &str, extra: &str) -> String {
    format!(
        r#"<{kind} name="{name}"><CacheResource>tokens</CacheResource><Scope>{scope}</Scope><CacheKey><KeyFragment>gcp-token</KeyFragment></CacheKey>{extra}</{kind}>"#
    )
}

#[tokio::test]
async fn a_global_token_cached_through_one_proxy_is_read_through_another() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.write(
        "gateway.toml",
        &format!(
            "environment = \"test\"\n[[caches]]\nname = \"tokens\"\ncapacity = \"1MiB\"\n[server]\nlisten = \"127.0.0.1:{}\"\nthreads = 1\nwork_stealing = true\ngrace_period_secs = 0\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            d.proxy_port, d.admin_port
        ),
    );
    // The issuer stores the token with Global scope (and a copy with Exclusive scope).
    small_bundle(&d, "issuer", "token-issuer", &["PC-global", "PC-own"], &[]);
    let source = "<ExpirySettings><TimeoutInSeconds>300</TimeoutInSeconds></ExpirySettings><Source>request.header.x-token</Source>";
    d.write(
        "issuer/apiproxy/policies/PC-global.xml",
        &token_policy("PopulateCache", "PC-global", "Global", source),
    );
    d.write(
        "issuer/apiproxy/policies/PC-own.xml",
        &token_policy("PopulateCache", "PC-own", "Exclusive", source),
    );
    // Another API proxy of the environment looks both up.
    small_bundle(
        &d,
        "consumer",
        "consumer",
        &["LC-global", "LC-own"],
        &["AM-show"],
    );
    d.write(
        "consumer/apiproxy/policies/LC-global.xml",
        &token_policy(
            "LookupCache",
            "LC-global",
            "Global",
            "<AssignTo>token</AssignTo>",
        ),
    );
    d.write(
        "consumer/apiproxy/policies/LC-own.xml",
        &token_policy(
            "LookupCache",
            "LC-own",
            "Exclusive",
            "<AssignTo>own</AssignTo>",
        ),
    );
    d.write(
        "consumer/apiproxy/policies/AM-show.xml",
        r#"<AssignMessage name="AM-show"><Set><Headers><Header name="x-token">{token}</Header><Header name="x-own">{own}</Header><Header name="x-key">{lookupcache.LC-global.cachekey}</Header><Header name="x-env">{environment.name}</Header></Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    );
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);

    let before = get(&gw.url("/consumer/x")).await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(before.header("x-token"), "");
    assert_eq!(before.header("x-env"), "test");
    // Apigee's Global prefix: org__env__ — no proxy, no revision, no endpoint.
    assert_eq!(before.header("x-key"), "cachegate__test__gcp-token");

    let issued = send(
        client()
            .get(gw.url("/issuer/x"))
            .header("x-token", "secret-1"),
    )
    .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    let after = get(&gw.url("/consumer/x")).await;
    assert_eq!(after.header("x-token"), "secret-1");
    // The Exclusive entry belongs to the issuer's proxy only.
    assert_eq!(after.header("x-own"), "");

    // The admin API empties the environment's cache, for every stage.
    let flushed = send(
        client()
            .post(gw.admin("/environment/caches/tokens/flush"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(flushed.status, 200, "{}", flushed.body);
    assert_eq!(flushed.json()["flushed_entries"], 2, "{}", flushed.body);
    assert_eq!(get(&gw.url("/consumer/x")).await.header("x-token"), "");
    let unknown = send(
        client()
            .post(gw.admin("/environment/caches/nope/flush"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_cache_resource_must_name_a_cache_of_the_environment() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.write(
        "gateway.toml",
        &format!(
            "environment = \"test\"\n[[caches]]\nname = \"tokens\"\n[server]\nlisten = \"127.0.0.1:{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            d.proxy_port, d.admin_port
        ),
    );
    small_bundle(&d, "api", "api", &["LC"], &[]);
    d.write(
        "api/apiproxy/policies/LC.xml",
        r#"<LookupCache name="LC">
  <CacheResource>tokenz</CacheResource>
  <CacheKey><KeyFragment>k</KeyFragment></CacheKey><AssignTo>v</AssignTo></LookupCache>"#,
    );
    let (ok, diags) = messages(&d);
    assert!(!ok);
    assert!(
        diags.contains("api/apiproxy/policies/LC.xml:2:3: error: CacheResource `tokenz` is not a cache of environment `test`")
            && diags.contains("the caches of environment `test` are: tokens"),
        "{diags}"
    );
}

/// The response part of a conditional flow is chosen again when the response path reaches it
/// (apigee-bundles.md §4.2): a flow whose condition reads the response runs its response steps
/// although the request chose another flow, in the ProxyEndpoint and the TargetEndpoint.
#[tokio::test]
async fn response_flows_are_chosen_again_with_the_response() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.write("s/apiproxy/s.xml", r#"<APIProxy name="s" revision="1"/>"#);
    let flows = |side: &str| {
        format!(
            r#"<Flows>
    <Flow name="failed"><Condition>response.status.code >= 400</Condition>
      <Request><Step><Name>AM-{side}-req-failed</Name></Step></Request>
      <Response><Step><Name>AM-{side}-failed</Name></Step></Response></Flow>
    <Flow name="any"><Request><Step><Name>AM-{side}-req-any</Name></Step></Request>
      <Response><Step><Name>AM-{side}-any</Name></Step></Response></Flow>
  </Flows>"#
        )
    };
    d.write(
        "s/apiproxy/proxies/default.xml",
        &format!(
            r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/s</BasePath></HTTPProxyConnection>
  {}
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
            flows("pe")
        ),
    );
    d.write(
        "s/apiproxy/targets/default.xml",
        &format!(
            r#"<TargetEndpoint name="default">
  {}
  <HTTPTargetConnection><URL>http://{{{{ORIGIN}}}}/echo</URL></HTTPTargetConnection>
</TargetEndpoint>"#,
            flows("te")
        ),
    );
    for side in ["pe", "te"] {
        for flow in ["failed", "any"] {
            d.write(
                &format!("s/apiproxy/policies/AM-{side}-{flow}.xml"),
                &format!(
                    r#"<AssignMessage name="AM-{side}-{flow}"><Add><Headers><Header name="x-{side}-response">{flow}</Header></Headers></Add></AssignMessage>"#
                ),
            );
            d.write(
                &format!("s/apiproxy/policies/AM-{side}-req-{flow}.xml"),
                &format!(
                    r#"<AssignMessage name="AM-{side}-req-{flow}"><AssignVariable><Name>{side}.request.flow</Name><Value>{flow}</Value></AssignVariable></AssignMessage>"#
                ),
            );
        }
    }
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);
    let fine = get(&gw.url("/s/items")).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    assert_eq!(fine.header("x-pe-response"), "any");
    assert_eq!(fine.header("x-te-response"), "any");
    let failed = get(&gw.url("/s/items?status=404")).await;
    assert_eq!(failed.status, 404, "{}", failed.body);
    // The request chose `any` (no response yet); the response chose `failed`.
    assert_eq!(failed.header("x-pe-response"), "failed");
    assert_eq!(failed.header("x-te-response"), "failed");
}
