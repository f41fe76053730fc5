//! The request engine: the proxy and the admin API decide what a request means the same way
//! (issue "One request engine"), and one TTL rule holds for every policy.

use serde_json::{json, Value};

use crate::harness::{client, get, origin, send, PolicyDir, TestGateway, ADMIN_TOKEN};

/// Sends `POST /stages/{stage}/cache/invalidate` with the admin token.
async fn invalidate(gw: &TestGateway, stage: &str, body: Value) -> crate::harness::Resp {
    send(
        client()
            .post(gw.admin(&format!("/stages/{stage}/cache/invalidate")))
            .json(&body)
            .bearer_auth(ADMIN_TOKEN),
    )
    .await
}

async fn get_with_host(gw: &TestGateway, path: &str, host: &str) -> crate::harness::Resp {
    send(client().get(gw.url(path)).header("host", host)).await
}

#[tokio::test]
async fn admin_invalidation_by_request_finds_entries_of_a_preserve_host_stage() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "vhost",
        "target = \"http://{{ORIGIN}}\"\npreserve_host = true\n[cache]\nenabled = true\n",
    );
    let gw = TestGateway::start(d);
    for host in ["a.test", "b.test"] {
        assert_eq!(
            get_with_host(&gw, "/vhost/items/1", host).await.x_cache(),
            "MISS"
        );
        assert_eq!(
            get_with_host(&gw, "/vhost/items/1", host).await.x_cache(),
            "HIT"
        );
    }

    // Without a Host the request names no entry of this stage: a clear 400, nothing removed.
    let r = invalidate(&gw, "vhost", json!({"path": "/items/1"})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("preserve_host"), "{}", r.body);
    assert_eq!(
        get_with_host(&gw, "/vhost/items/1", "a.test")
            .await
            .x_cache(),
        "HIT"
    );

    // With the Host clients send, the entry the proxy stored is the one removed.
    let r = invalidate(
        &gw,
        "vhost",
        json!({"path": "/items/1", "headers": {"host": "a.test"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["invalidated"], 1, "{}", r.body);
    assert_eq!(
        get_with_host(&gw, "/vhost/items/1", "a.test")
            .await
            .x_cache(),
        "MISS"
    );
    // The other host's entry is another entry.
    assert_eq!(
        get_with_host(&gw, "/vhost/items/1", "b.test")
            .await
            .x_cache(),
        "HIT"
    );

    // A HEAD is answered from the GET's entry, so invalidating "HEAD" removes that entry too.
    let r = invalidate(
        &gw,
        "vhost",
        json!({"path": "/items/1", "method": "HEAD", "headers": {"host": "b.test"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["invalidated"], 1, "{}", r.body);
    assert_eq!(
        get_with_host(&gw, "/vhost/items/1", "b.test")
            .await
            .x_cache(),
        "MISS"
    );
}

#[tokio::test]
async fn admin_invalidation_by_request_runs_the_request_steps() {
    // The key reads a variable an AssignMessage sets from a header: the admin API must run the
    // step (as the proxy does) to name the entry, but must not store or purge on the way.
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[[flows]]
name = "all"
request = ["AM-tenant", "RC"]
response = ["RC"]
"#,
    );
    d.write(
        "prod/AM-tenant.xml",
        r#"<AssignMessage name="AM-tenant"><AssignVariable><Name>tenant</Name><Template>t-{request.header.x-tenant}</Template></AssignVariable></AssignMessage>"#,
    );
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/><KeyFragment ref="tenant"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings></ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    let as_tenant =
        |t: &'static str| send(client().get(gw.url("/prod/items/1")).header("x-tenant", t));
    assert_eq!(as_tenant("acme").await.x_cache(), "MISS");
    assert_eq!(as_tenant("acme").await.x_cache(), "HIT");
    assert_eq!(as_tenant("other").await.x_cache(), "MISS");

    let r = invalidate(
        &gw,
        "prod",
        json!({"path": "/items/1", "headers": {"x-tenant": "acme"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["invalidated"], 1, "{}", r.body);
    let key = r.json()["key"].as_str().unwrap_or_default().to_owned();
    assert!(key.ends_with("__/items/1__t-acme"), "{key}");
    assert_eq!(as_tenant("acme").await.x_cache(), "MISS");
    assert_eq!(as_tenant("other").await.x_cache(), "HIT");
}

#[tokio::test]
async fn a_stage_ttl_of_zero_leaves_policies_without_expiry_the_default_ttl() {
    // One rule everywhere (engine::plan::ttl_for): ExpirySettings, else the stage TTL, else —
    // the stage TTL being 0, which turns stage caching off — 300 s, for ResponseCache and
    // PopulateCache alike.
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[cache]
enabled = true
ttl = 0
[[flows]]
name = "rc"
condition = 'proxy.pathsuffix MatchesPath "/rc/**"'
request = ["RC"]
response = ["RC"]
[[flows]]
name = "kv"
condition = 'proxy.pathsuffix MatchesPath "/kv/**"'
request = ["LC"]
response = [
  { policy = "PC", condition = 'lookupcache.LC.cachehit = false' },
  { policy = "AM", condition = 'lookupcache.LC.cachehit is true' },
]
"#,
    );
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey></ResponseCache>"#,
    );
    d.write(
        "prod/LC.xml",
        r#"<LookupCache name="LC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><AssignTo>seen</AssignTo></LookupCache>"#,
    );
    d.write(
        "prod/PC.xml",
        r#"<PopulateCache name="PC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><Source>response.header.x-origin-seq</Source></PopulateCache>"#,
    );
    d.write(
        "prod/AM.xml",
        r#"<AssignMessage name="AM"><Set><Headers><Header name="X-Seen">{seen}</Header></Headers></Set></AssignMessage>"#,
    );
    let gw = TestGateway::start(d);

    // Stage caching is off.
    assert_eq!(get(&gw.url("/prod/items/1")).await.x_cache(), "BYPASS");
    assert_eq!(get(&gw.url("/prod/items/1")).await.x_cache(), "BYPASS");

    // The ResponseCache stores for 300 s.
    assert_eq!(get(&gw.url("/prod/rc/1")).await.x_cache(), "MISS");
    let hit = get(&gw.url("/prod/rc/1")).await;
    assert_eq!(hit.x_cache(), "HIT");
    let ttl = hit.status_ttl();
    assert!((290..=300).contains(&ttl), "ttl={ttl}");

    // The PopulateCache stores its value too (it used to follow another rule).
    let first = get(&gw.url("/prod/kv/1")).await;
    assert!(!first.headers.contains_key("x-seen"));
    let second = get(&gw.url("/prod/kv/1")).await;
    assert_eq!(second.header("x-seen"), first.header("x-origin-seq"));
}

#[tokio::test]
async fn a_policy_condition_that_does_not_parse_is_reported_once_and_other_checks_still_run() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\nbase_path = \"/api\"\n[[flows]]\nname = \"all\"\nrequest = [\"RC\"]\nresponse = [\"RC\"]\n",
    );
    d.stage(
        "dev",
        "target = \"http://{{ORIGIN}}\"\nbase_path = \"/api\"\n",
    );
    d.write(
        "prod/RC.xml",
        "<ResponseCache name=\"RC\">\n  <CacheKey><KeyFragment ref=\"proxy.pathsuffix\"/></CacheKey>\n  <SkipCacheLookup>request.verb = </SkipCacheLookup>\n</ResponseCache>",
    );
    let outcome = cachegate::config::load(d.path());
    assert!(outcome.config.is_none());
    let text = outcome.diagnostics.to_string();
    assert_eq!(
        text.matches("invalid condition").count(),
        1,
        "reported once:\n{text}"
    );
    assert!(text.contains("prod/RC.xml:3:"), "{text}");
    // The stage with the broken policy still takes part in the checks across stages.
    assert!(text.contains("same base_path"), "{text}");
}
