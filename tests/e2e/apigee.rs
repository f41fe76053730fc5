//! Apigee fidelity (issue "Apigee API proxies run unchanged", first part): long Apigee TTLs
//! load (and say how long they are kept), `messageid` and `message.*`, and `ref` names with
//! spaces.

use crate::harness::{client, get, origin, send, PolicyDir, TestGateway};

fn flow_stage(d: &PolicyDir, request: &str, response: &str) {
    d.stage(
        "prod",
        &format!(
            "target = \"http://{{{{ORIGIN}}}}\"\n[[flows]]\nname = \"all\"\nrequest = [{request}]\nresponse = [{response}]\n"
        ),
    );
}

#[tokio::test]
async fn a_cache_keyed_on_messageid_gives_every_request_its_own_entry() {
    // A session cache keyed on `messageid` used to put every user under one key.
    let o = origin();
    let d = PolicyDir::new(&o);
    flow_stage(&d, "\"RC\"", "\"RC\"");
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="messageid"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    let outcome = cachegate::config::load(d.path());
    assert!(
        outcome.diagnostics.is_empty(),
        "messageid is a built-in: {}",
        outcome.diagnostics
    );
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/1")).await;
    let second = get(&gw.url("/prod/items/1")).await;
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(second.x_cache(), "MISS", "another request read the entry");
    assert_ne!(first.header("x-origin-seq"), second.header("x-origin-seq"));
}

#[tokio::test]
async fn message_variables_are_the_request_then_the_response() {
    let o = origin();
    let d = PolicyDir::new(&o);
    flow_stage(&d, "\"AM-req\", \"LC-body\"", "\"AM-resp\", \"PC-body\"");
    // `message.content` on the response side is the response body.
    d.write(
        "prod/PC-body.xml",
        r#"<PopulateCache name="PC-body"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings><Source>message.content</Source></PopulateCache>"#,
    );
    d.write(
        "prod/LC-body.xml",
        r#"<LookupCache name="LC-body"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><AssignTo>cached.body</AssignTo></LookupCache>"#,
    );
    d.write(
        "prod/AM-req.xml",
        r#"<AssignMessage name="AM-req"><AssignTo type="request">request</AssignTo><Set><Headers><Header name="x-seen">{message.verb} {message.header.x-in}</Header></Headers></Set></AssignMessage>"#,
    );
    d.write(
        "prod/AM-resp.xml",
        r#"<AssignMessage name="AM-resp"><Set><Headers><Header name="X-Status">{message.status.code}</Header><Header name="X-Id">{messageid}</Header><Header name="X-Had">{lookupcache.LC-body.cachehit}</Header></Headers></Set></AssignMessage>"#,
    );
    let gw = TestGateway::start(d);
    let r = send(client().get(gw.url("/prod/echo/a")).header("x-in", "hello")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-seen"], "GET hello", "{}", r.body);
    assert_eq!(r.header("x-status"), "200");
    assert_eq!(r.header("x-id").len(), 36, "{:?}", r.header("x-id"));
    assert_eq!(r.header("x-had"), "false");
    let again = send(client().get(gw.url("/prod/echo/a")).header("x-in", "again")).await;
    assert_ne!(again.header("x-id"), r.header("x-id"));
    // The first response's body was stored through `message.content`.
    assert_eq!(again.header("x-had"), "true");
}

#[tokio::test]
async fn a_ref_with_spaces_resolves_and_is_warned_about() {
    let o = origin();
    let d = PolicyDir::new(&o);
    flow_stage(&d, "\"RC\"", "\"RC\"");
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.header.tenant "/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    let text = cachegate::config::load(d.path()).diagnostics.to_string();
    assert!(
        text.contains("warning: ref `request.header.tenant ` has spaces around the variable name"),
        "{text}"
    );
    let gw = TestGateway::start(d);
    let as_tenant =
        |t: &'static str| send(client().get(gw.url("/prod/items/1")).header("tenant", t));
    assert_eq!(as_tenant("a").await.x_cache(), "MISS");
    assert_eq!(as_tenant("a").await.x_cache(), "HIT");
    // The fragment resolves: another tenant has its own entry.
    assert_eq!(as_tenant("b").await.x_cache(), "MISS");
}

#[tokio::test]
async fn long_apigee_ttls_are_kept_as_long_as_apigee_keeps_them() {
    let o = origin();
    let d = PolicyDir::new(&o);
    flow_stage(&d, "\"RC\"", "\"RC\"");
    // A one-day token cache and a 30-day JWKS cache: Apigee accepts them (they used to be
    // refused with "exceeds the stage maximum", then cut to an hour). They load without a
    // word and their entries live as long as they ask.
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><TimeoutInSeconds>86400</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    d.write(
        "prod/PC.xml",
        r#"<PopulateCache name="PC"><CacheKey><KeyFragment>jwks</KeyFragment></CacheKey><ExpirySettings><TimeoutInSeconds>2592000</TimeoutInSeconds></ExpirySettings><Source>response.content</Source></PopulateCache>"#,
    );
    d.write(
        "prod/PC-past.xml",
        r#"<PopulateCache name="PC-past"><CacheKey><KeyFragment>x</KeyFragment></CacheKey><ExpirySettings><ExpiryDate>01-31-2020</ExpiryDate></ExpirySettings><Source>response.content</Source></PopulateCache>"#,
    );
    let outcome = cachegate::config::load(d.path());
    let text = outcome.diagnostics.to_string();
    assert!(outcome.config.is_some(), "{text}");
    assert!(!text.contains("can be longer than"), "{text}");
    assert!(
        text.contains("PC-past.xml:1:") && text.contains("the ExpiryDate 01-31-2020 has passed"),
        "{text}"
    );
    let gw = TestGateway::start(d);
    assert_eq!(get(&gw.url("/prod/items/1")).await.x_cache(), "MISS");
    let hit = get(&gw.url("/prod/items/1")).await;
    assert_eq!(hit.x_cache(), "HIT");
    let ttl = hit.status_ttl();
    assert!((86_390..=86_400).contains(&ttl), "ttl={ttl}");

    // Over 30 days loads, as in Apigee, with apigeelint's warning too.
    let d = PolicyDir::new(&o);
    flow_stage(&d, "\"RC\"", "\"RC\"");
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><TimeoutInSeconds>2592001</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    let outcome = cachegate::config::load(d.path());
    let text = outcome.diagnostics.to_string();
    assert!(outcome.config.is_some(), "{text}");
    assert!(
        text.contains("warning: <TimeoutInSeconds> of 2592001 seconds is longer than 30 days"),
        "{text}"
    );
    // Stage caching keeps AWS's 3600 s, as an error.
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\nttl = 7200\n",
    );
    let text = cachegate::config::load(d.path()).diagnostics.to_string();
    assert!(
        text.contains("ttl = 7200 exceeds the maximum of 3600 seconds"),
        "{text}"
    );
}

#[tokio::test]
async fn an_apigee_bundle_is_a_stage_not_a_policies_directory() {
    // `cachegate validate apiproxy/` used to exit 0 having loaded nothing.
    let o = origin();
    let d = PolicyDir::new(&o);
    d.write(
        "shop/apiproxy/proxies/default.xml",
        "<ProxyEndpoint name=\"default\"><HTTPProxyConnection><BasePath>/shop</BasePath></HTTPProxyConnection></ProxyEndpoint>",
    );
    d.write(
        "shop/apiproxy/policies/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey></ResponseCache>"#,
    );
    d.write("shop/apiproxy/shop.xml", "<APIProxy name=\"shop\"/>");
    // In a stage folder it is a stage (here one that routes nowhere and attaches nothing).
    let outcome = cachegate::config::load(d.path());
    let text = outcome.diagnostics.to_string();
    let config = outcome.config.expect("the bundle stage loads");
    assert_eq!(config.stage("shop").expect("stage shop").base_path, "/shop");
    assert!(
        text.contains("warning: policy `RC` is not attached to any step"),
        "{text}"
    );
    assert!(
        text.contains("the ProxyEndpoint has no RouteRule"),
        "{text}"
    );
    // Given as the policies directory itself, it is refused by name.
    for dir in [d.path().join("shop"), d.path().join("shop/apiproxy")] {
        let outcome = cachegate::config::load(&dir);
        let text = outcome.diagnostics.to_string();
        assert!(outcome.config.is_none(), "{}: {text}", dir.display());
        assert!(
            text.contains("error: this is an Apigee API proxy bundle, not a policies directory")
                && text.contains("policies/<stage>/apiproxy/"),
            "{}: {text}",
            dir.display()
        );
    }
}

#[tokio::test]
async fn a_key_over_apigees_two_kilobytes_is_neither_looked_up_nor_stored() {
    let o = origin();
    let d = PolicyDir::new(&o);
    flow_stage(&d, "\"LC\", \"RC\"", "\"RC\", \"PC\", \"AM\"");
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    d.write(
        "prod/LC.xml",
        r#"<LookupCache name="LC"><CacheKey><KeyFragment ref="request.querystring"/></CacheKey><AssignTo>seen</AssignTo></LookupCache>"#,
    );
    d.write(
        "prod/PC.xml",
        r#"<PopulateCache name="PC"><CacheKey><KeyFragment ref="request.querystring"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings><Source>request.verb</Source></PopulateCache>"#,
    );
    d.write(
        "prod/AM.xml",
        r#"<AssignMessage name="AM"><Set><Headers><Header name="x-seen">{lookupcache.LC.cachehit}</Header></Headers></Set></AssignMessage>"#,
    );
    let gw = TestGateway::start(d);
    // Just under the limit: cached as usual.
    let short = gw.url(&format!("/prod/echo?q={}", "a".repeat(1900)));
    assert_eq!(get(&short).await.x_cache(), "MISS");
    let again = get(&short).await;
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(again.header("x-seen"), "true");
    // Over it: answered, never from the cache, and no value stored under the long key.
    let long = gw.url(&format!("/prod/echo?q={}", "b".repeat(2100)));
    for _ in 0..2 {
        let r = get(&long).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), "BYPASS");
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=bypass; detail=key_too_long"
        );
        assert_eq!(r.header("x-seen"), "false");
    }
}

#[test]
fn a_response_cache_whose_key_is_the_same_for_every_request_is_warned_about() {
    let o = origin();
    let d = PolicyDir::new(&o);
    flow_stage(&d, "\"RC\"", "\"RC\"");
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC">
  <CacheKey><KeyFragment>profile</KeyFragment><KeyFragment ref="apiproxy.name"/></CacheKey>
</ResponseCache>"#,
    );
    let outcome = cachegate::config::load(d.path());
    let text = outcome.diagnostics.to_string();
    assert!(outcome.config.is_some(), "{text}");
    assert!(
        text.contains("prod/RC.xml:2:3: warning: every request gets the same cache key"),
        "{text}"
    );
    // A fragment read from the request tells requests apart.
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment>profile</KeyFragment><KeyFragment ref="request.header.x-user"/></CacheKey></ResponseCache>"#,
    );
    let text = cachegate::config::load(d.path()).diagnostics.to_string();
    assert!(!text.contains("same cache key"), "{text}");
}
