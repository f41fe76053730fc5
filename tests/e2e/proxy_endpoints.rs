//! Several ProxyEndpoints in one Apigee bundle (apigee-bundles.md §2.3, §2.4): each is an entry
//! point with its own base path, flows and RouteRules, sharing the bundle's policies and
//! TargetEndpoints; the longest base path wins on whole segments, and Proxy/Exclusive-scope keys
//! name the ProxyEndpoint the request came through.

use crate::bundles::messages;
use crate::harness::{client, get, origin, send, PolicyDir, TestGateway};

/// Bundle `shop` (API `shop`, revision 2): ProxyEndpoints `default` at `/v1`, `admin` at
/// `/v1/admin` (nested) and `v2` at `/v2`, over TargetEndpoints `main` and `ops`. `RC-items`
/// (Exclusive scope) is attached in `default` and `admin`; `AM-who` reports in all three.
fn shop_bundle(d: &PolicyDir) {
    d.write(
        "shop/apiproxy/shop.xml",
        r#"<APIProxy name="shop" revision="2"/>"#,
    );
    let cached = |name: &str, base: &str, flows: &str, routes: &str| {
        format!(
            r#"<ProxyEndpoint name="{name}">
  <HTTPProxyConnection><BasePath>{base}</BasePath></HTTPProxyConnection>
  <PreFlow><Request><Step><Name>RC-items</Name></Step></Request></PreFlow>
  <Flows>{flows}</Flows>
  <PostFlow><Response><Step><Name>RC-items</Name></Step><Step><Name>AM-who</Name></Step></Response></PostFlow>
  {routes}
</ProxyEndpoint>"#
        )
    };
    d.write(
        "shop/apiproxy/proxies/default.xml",
        &cached(
            "default",
            "/v1",
            r#"<Flow name="v1-items"><Condition>proxy.pathsuffix MatchesPath "/items/**"</Condition></Flow>"#,
            r#"<RouteRule name="to-main"><TargetEndpoint>main</TargetEndpoint></RouteRule>"#,
        ),
    );
    d.write(
        "shop/apiproxy/proxies/admin.xml",
        &cached(
            "admin",
            "/v1/admin",
            r#"<Flow name="admin-items"><Condition>proxy.pathsuffix MatchesPath "/items/**"</Condition></Flow>"#,
            r#"<RouteRule name="to-ops"><TargetEndpoint>ops</TargetEndpoint></RouteRule>"#,
        ),
    );
    d.write(
        "shop/apiproxy/proxies/v2.xml",
        r#"<ProxyEndpoint name="v2">
  <HTTPProxyConnection><BasePath>/v2</BasePath></HTTPProxyConnection>
  <Flows><Flow name="v2-all"><Condition>request.verb = "GET"</Condition></Flow></Flows>
  <PostFlow><Response><Step><Name>AM-who</Name></Step></Response></PostFlow>
  <RouteRule name="ops-header"><Condition>request.header.x-ops = "1"</Condition><TargetEndpoint>ops</TargetEndpoint></RouteRule>
  <RouteRule name="v2-main"><TargetEndpoint>main</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    for t in ["main", "ops"] {
        d.write(
            &format!("shop/apiproxy/targets/{t}.xml"),
            &format!(r#"<TargetEndpoint name="{t}"><HTTPTargetConnection><URL>http://{{{{ORIGIN}}}}/echo/{t}</URL></HTTPTargetConnection></TargetEndpoint>"#),
        );
    }
    d.write(
        "shop/apiproxy/policies/RC-items.xml",
        r#"<ResponseCache name="RC-items"><Scope>Exclusive</Scope><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    d.write(
        "shop/apiproxy/policies/AM-who.xml",
        r#"<AssignMessage name="AM-who"><Set><Headers>
  <Header name="x-proxy">{proxy.name} {proxy.basepath} {proxy.pathsuffix}</Header>
  <Header name="x-flow">{current.flow.name} {route.name} {target.name}</Header>
  <Header name="x-key">{responsecache.RC-items.cachekey}</Header>
  <Header name="x-hit">{responsecache.RC-items.cachehit}</Header>
  <Header name="x-env">{environment.name} {apiproxy.name}</Header>
</Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    );
}

#[tokio::test]
async fn each_proxy_endpoint_has_its_base_path_flows_routes_and_exclusive_keys() {
    let o = origin();
    let d = PolicyDir::new(&o);
    shop_bundle(&d);
    let (ok, diags) = messages(&d);
    assert!(ok, "{diags}");
    let gw = TestGateway::start(d);

    // `/v1`: the `default` ProxyEndpoint, its flow and RouteRule.
    let v1 = get(&gw.url("/v1/items/1")).await;
    assert_eq!(v1.json()["path"], "/echo/main/items/1", "{}", v1.body);
    assert_eq!(v1.header("x-proxy"), "default /v1 /items/1");
    assert_eq!(v1.header("x-flow"), "v1-items to-main main");
    assert_eq!(
        v1.header("x-key"),
        "cachegate__shop__shop__2__default__/items/1"
    );
    assert_eq!(v1.header("x-hit"), "false");
    assert_eq!(v1.x_cache(), "MISS");

    // `/v1/admin` is nested in `/v1`: the longer base path wins, with its own flow, RouteRule
    // and key — the entry stored through `default` for the same suffix does not answer it.
    let admin = get(&gw.url("/v1/admin/items/1")).await;
    assert_eq!(admin.json()["path"], "/echo/ops/items/1", "{}", admin.body);
    assert_eq!(admin.header("x-proxy"), "admin /v1/admin /items/1");
    assert_eq!(admin.header("x-flow"), "admin-items to-ops ops");
    assert_eq!(
        admin.header("x-key"),
        "cachegate__shop__shop__2__admin__/items/1"
    );
    assert_eq!(admin.header("x-hit"), "false");
    assert_eq!(admin.header("x-env"), "shop shop");
    assert_eq!(admin.x_cache(), "MISS");

    // Each endpoint's entry is then a hit on its own key.
    let before = o.total();
    let v1_hit = get(&gw.url("/v1/items/1")).await;
    assert_eq!(v1_hit.x_cache(), "HIT");
    assert_eq!(v1_hit.header("x-hit"), "true");
    assert_eq!(v1_hit.json()["path"], "/echo/main/items/1");
    let admin_hit = get(&gw.url("/v1/admin/items/1")).await;
    assert_eq!(admin_hit.x_cache(), "HIT");
    assert_eq!(admin_hit.header("x-proxy"), "admin /v1/admin /items/1");
    assert_eq!(admin_hit.json()["path"], "/echo/ops/items/1");
    assert_eq!(o.total(), before, "a hit reached the origin");

    // Base paths match whole segments: `/v1/adminx` is `default`'s.
    let adminx = get(&gw.url("/v1/adminx")).await;
    assert_eq!(adminx.header("x-proxy"), "default /v1 /adminx");
    assert_eq!(adminx.json()["path"], "/echo/main/adminx");

    // `/v2`: its own conditional RouteRules to the same TargetEndpoints; no ResponseCache.
    let v2 = get(&gw.url("/v2/items/1")).await;
    assert_eq!(v2.header("x-proxy"), "v2 /v2 /items/1");
    assert_eq!(v2.header("x-flow"), "v2-all v2-main main");
    assert_eq!(v2.json()["path"], "/echo/main/items/1");
    assert_eq!(v2.header("x-key"), "");
    let ops = send(client().get(gw.url("/v2/items/1")).header("x-ops", "1")).await;
    assert_eq!(ops.header("x-flow"), "v2-all ops-header ops");
    assert_eq!(ops.json()["path"], "/echo/ops/items/1");

    // Admin `/config` lists each ProxyEndpoint's stage.
    let cfg = gw.admin_json("/config").await;
    let stages: Vec<(String, String, String)> = cfg["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (text("name"), text("base_path"), s["flows"].to_string())
        })
        .collect();
    for (name, base, flow) in [
        ("shop", "/v1", "v1-items"),
        ("shop.admin", "/v1/admin", "admin-items"),
        ("shop.v2", "/v2", "v2-all"),
    ] {
        assert!(
            stages
                .iter()
                .any(|(n, b, f)| n == name && b == base && f.contains(flow)),
            "{name} {base} {flow} not in {stages:?}"
        );
    }
}

#[test]
fn a_base_path_claimed_twice_is_refused_naming_both_files() {
    let o = origin();
    let d = PolicyDir::new(&o);
    shop_bundle(&d);
    // Within the bundle: `v2` now claims `/v1/admin` too.
    let v2 = std::fs::read_to_string(d.path().join("shop/apiproxy/proxies/v2.xml"))
        .expect("v2.xml")
        .replace("<BasePath>/v2<", "<BasePath>/v1/admin/<");
    d.write("shop/apiproxy/proxies/v2.xml", &v2);
    let (ok, diags) = messages(&d);
    assert!(!ok, "{diags}");
    assert!(
        diags.contains("has the same base_path `/v1/admin` as stage `shop.admin`")
            || diags.contains("has the same base_path `/v1/admin` as stage `shop.v2`"),
        "{diags}"
    );
    for file in [
        "shop/apiproxy/proxies/admin.xml",
        "shop/apiproxy/proxies/v2.xml",
    ] {
        assert!(diags.contains(file), "{file} not named:\n{diags}");
    }

    // Across stages: a stage.toml stage at a bundle ProxyEndpoint's base path.
    let d = PolicyDir::new(&o);
    shop_bundle(&d);
    d.stage(
        "legacy",
        "base_path = \"/v2\"\ntarget = \"http://{{ORIGIN}}\"\n",
    );
    let (ok, diags) = messages(&d);
    assert!(!ok, "{diags}");
    assert!(diags.contains("base_path `/v2`"), "{diags}");
    for file in ["legacy/stage.toml", "shop/apiproxy/proxies/v2.xml"] {
        assert!(diags.contains(file), "{file} not named:\n{diags}");
    }
}

#[test]
fn two_proxy_endpoints_of_one_name_are_refused() {
    let o = origin();
    let d = PolicyDir::new(&o);
    shop_bundle(&d);
    let v2 = std::fs::read_to_string(d.path().join("shop/apiproxy/proxies/v2.xml"))
        .expect("v2.xml")
        .replace(r#"name="v2""#, r#"name="admin""#);
    d.write("shop/apiproxy/proxies/v2.xml", &v2);
    let (ok, diags) = messages(&d);
    assert!(!ok, "{diags}");
    assert!(
        diags.contains("shop/apiproxy/proxies/v2.xml:1:")
            && diags.contains("a second ProxyEndpoint named `admin`")
            && diags.contains("shop/apiproxy/proxies/admin.xml"),
        "{diags}"
    );
}
