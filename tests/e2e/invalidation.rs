//! Invalidation (client, InvalidateCache, admin), LookupCache/PopulateCache and AssignMessage.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::{client, eventually, get, origin, send, PolicyDir, TestGateway, ADMIN_TOKEN};

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn invalidation_stage(d: &PolicyDir, name: &str, strategy: &str) {
    d.stage(
        name,
        &format!(
            r#"target = "http://{{{{ORIGIN}}}}"
[cache]
enabled = true
[cache.invalidation]
unauthorized = "{strategy}"
[[cache.invalidation.grants]]
name = "ops"
token_sha256 = "{}"
resources = ["GET/items/*", "GET/echo/*"]
[[cache.invalidation.grants]]
name = "other"
token_sha256 = "{}"
resources = ["GET/other/*"]
"#,
            sha("good-token"),
            sha("other-token")
        ),
    );
}

#[tokio::test]
async fn authorized_client_refresh_replaces_the_entry_for_everyone() {
    let o = origin();
    let d = PolicyDir::new(&o);
    invalidation_stage(&d, "prod", "FAIL_WITH_403");
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/1")).await;
    assert_eq!(get(&gw.url("/prod/items/1")).await.x_cache(), "HIT");
    let refresh = send(
        client()
            .get(gw.url("/prod/items/1"))
            .header("cache-control", "max-age=0")
            .bearer_auth("good-token"),
    )
    .await;
    assert_eq!(refresh.status, 200);
    assert_eq!(refresh.x_cache(), "REFRESH");
    assert_eq!(o.count("/items/1"), 2);
    let next = get(&gw.url("/prod/items/1")).await;
    assert_eq!(next.x_cache(), "HIT");
    assert_eq!(next.body, refresh.body);
    assert_ne!(next.body, first.body);
    // Pragma: no-cache and Cache-Control: no-cache are invalidation requests too.
    let r = send(
        client()
            .get(gw.url("/prod/items/1"))
            .header("cache-control", "no-cache")
            .bearer_auth("good-token"),
    )
    .await;
    assert_eq!(r.x_cache(), "REFRESH");
}

#[tokio::test]
async fn unauthorized_invalidation_fails_with_403_and_fetches_nothing() {
    let o = origin();
    let d = PolicyDir::new(&o);
    invalidation_stage(&d, "prod", "FAIL_WITH_403");
    let gw = TestGateway::start(d);
    get(&gw.url("/prod/items/1")).await;
    let cases: [(&str, Option<&str>); 3] = [
        ("wrong token", Some("bad-token")),
        ("no token", None),
        ("other resource", Some("other-token")),
    ];
    for (what, token) in cases {
        let mut req = client()
            .get(gw.url("/prod/items/1"))
            .header("cache-control", "max-age=0");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = send(req).await;
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.json()["error"], "forbidden", "{what}");
    }
    assert_eq!(
        o.count("/items/1"),
        1,
        "an unauthorized invalidation reached the target"
    );
}

#[tokio::test]
async fn unauthorized_invalidation_can_succeed_with_or_without_a_warning() {
    let o = origin();
    let d = PolicyDir::new(&o);
    invalidation_stage(&d, "warn", "SUCCEED_WITH_RESPONSE_HEADER");
    invalidation_stage(&d, "quiet", "SUCCEED_WITHOUT_RESPONSE_HEADER");
    let gw = TestGateway::start(d);
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("wrong token", Some("bad-token"), "wrong_token"),
        ("no token", None, "missing_token"),
        ("other resource", Some("other-token"), "not_granted"),
    ];
    for (stage, warned) in [("warn", true), ("quiet", false)] {
        get(&gw.url(&format!("/{stage}/items/1"))).await;
        for (what, token, reason) in cases {
            let mut req = client()
                .get(gw.url(&format!("/{stage}/items/1")))
                .header("cache-control", "max-age=0");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = send(req).await;
            assert_eq!((r.status, r.x_cache()), (200, "HIT"), "{stage}: {what}");
            assert_eq!(r.headers.contains_key("warning"), warned, "{stage}: {what}");
            if warned {
                assert_eq!(
                    r.header("warning"),
                    format!("199 cachegate \"cache invalidation ignored: {reason}\"")
                );
            }
        }
        // The granted token refreshes under every strategy.
        let r = send(
            client()
                .get(gw.url(&format!("/{stage}/items/1")))
                .header("cache-control", "max-age=0")
                .bearer_auth("good-token"),
        )
        .await;
        assert_eq!(r.x_cache(), "REFRESH", "{stage}");
    }
    assert_eq!(o.count("/items/1"), 4);
}

#[tokio::test]
async fn refresh_forwards_only_key_inputs_and_no_authorization_needed_when_disabled() {
    let o = origin();
    let d = PolicyDir::new(&o);
    invalidation_stage(&d, "prod", "FAIL_WITH_403");
    d.stage("open", "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n[cache.invalidation]\nrequire_authorization = false\n");
    let gw = TestGateway::start(d);
    let r = send(
        client()
            .get(gw.url("/prod/echo/x"))
            .header("cache-control", "max-age=0")
            .header("x-evil", "1")
            .bearer_auth("good-token"),
    )
    .await;
    assert_eq!(r.x_cache(), "REFRESH");
    let h = &r.json()["headers"];
    assert!(
        h.get("x-evil").is_none(),
        "an unkeyed header reached the refresh: {h}"
    );
    assert!(
        h.get("authorization").is_none(),
        "the invalidation token was forwarded: {h}"
    );
    get(&gw.url("/open/items/2")).await;
    let r = send(
        client()
            .get(gw.url("/open/items/2"))
            .header("cache-control", "max-age=0"),
    )
    .await;
    assert_eq!(r.x_cache(), "REFRESH");
}

#[tokio::test]
async fn invalidate_cache_policy_purges_an_item_and_its_children() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
resources = ["/items", "/items/{id}"]
[[cache.method]]
resource = "/items/*"
method = "PUT"
caching = false
[[flows]]
name = "read"
condition = 'request.verb = "GET"'
request = ["RC"]
response = ["RC"]
[[flows]]
name = "write"
condition = 'request.verb = "PUT"'
request = ["IC-item", "IC-list"]
"#,
    );
    d.write("prod/RC.xml", r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/><KeyFragment ref="request.queryparam.format"/></CacheKey></ResponseCache>"#);
    d.write(
        "prod/IC-item.xml",
        r#"<InvalidateCache name="IC-item"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><PurgeChildEntries>true</PurgeChildEntries></InvalidateCache>"#,
    );
    d.write(
        "prod/IC-list.xml",
        r#"<InvalidateCache name="IC-list"><CacheKey><KeyFragment>/items</KeyFragment><KeyFragment ref="request.queryparam.format"/></CacheKey><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></InvalidateCache>"#,
    );
    let gw = TestGateway::start(d);
    for path in [
        "/prod/items/7",
        "/prod/items/7?format=xml",
        "/prod/items/8",
        "/prod/items",
    ] {
        get(&gw.url(path)).await;
        assert_eq!(get(&gw.url(path)).await.x_cache(), "HIT", "{path}");
    }
    let w = send(client().put(gw.url("/prod/items/7")).body("{}")).await;
    assert_eq!(w.status, 200);
    assert_eq!(get(&gw.url("/prod/items/7")).await.x_cache(), "MISS");
    assert_eq!(
        get(&gw.url("/prod/items/7?format=xml")).await.x_cache(),
        "MISS"
    );
    assert_eq!(get(&gw.url("/prod/items/8")).await.x_cache(), "HIT");
    assert_eq!(get(&gw.url("/prod/items")).await.x_cache(), "MISS");
    let text = gw.metrics().await;
    assert!(text.contains("cachegate_cache_invalidations_total{outcome=\"done\",source=\"policy\",stage=\"prod\"}"), "{text}");
}

#[tokio::test]
async fn lookup_and_populate_cache_a_value_for_assign_message() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[[flows]]
name = "all"
request = ["LC-tier"]
response = [
  { policy = "PC-tier", condition = 'lookupcache.LC-tier.cachehit = false' },
  { policy = "AM-tier", condition = 'lookupcache.LC-tier.cachehit is true' },
]
"#,
    );
    d.write(
        "prod/LC-tier.xml",
        r#"<LookupCache name="LC-tier"><CacheKey><Prefix>tier</Prefix><KeyFragment ref="request.header.x-client"/></CacheKey><AssignTo>client.tier</AssignTo></LookupCache>"#,
    );
    d.write(
        "prod/PC-tier.toml",
        r#"[PopulateCache]
name = "PC-tier"
source = "response.header.x-origin-seq"
expiry = { timeout_secs = 1 }
[PopulateCache.cache_key]
prefix = "tier"
fragments = [{ ref = "request.header.x-client" }]
"#,
    );
    d.write(
        "prod/AM-tier.xml",
        r#"<AssignMessage name="AM-tier"><Set><Headers><Header name="X-Tier">{client.tier}</Header></Headers></Set></AssignMessage>"#,
    );
    let gw = TestGateway::start(d);
    let as_client =
        |c: &'static str| send(client().get(gw.url("/prod/items/1")).header("x-client", c));
    let first = as_client("a").await;
    assert!(!first.headers.contains_key("x-tier"));
    let seq = first.header("x-origin-seq").to_owned();
    let second = as_client("a").await;
    assert_eq!(
        second.header("x-tier"),
        seq,
        "the looked-up value is not in the header"
    );
    // Another client has its own value.
    assert!(!as_client("b").await.headers.contains_key("x-tier"));
    // The value expires after its 1 s TTL.
    eventually(
        "the cached value expires",
        Duration::from_secs(5),
        || async { !as_client("a").await.headers.contains_key("x-tier") },
    )
    .await;
}

#[tokio::test]
async fn assign_message_changes_requests_and_response_bodies() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[[flows]]
name = "all"
request = ["AM-req"]
response = ["AM-resp", "PC-body"]
[[flows.request]]
"#,
    );
    // (The stray table above is invalid TOML for a step and must be rejected.)
    let outcome = cachegate::config::load(d.path());
    assert!(outcome.config.is_none());
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[[flows]]
name = "all"
request = ["AM-req"]
response = ["PC-body", "AM-resp"]
"#,
    );
    d.write(
        "prod/AM-req.xml",
        r#"<AssignMessage name="AM-req"><AssignTo type="request">request</AssignTo>
  <Remove><Headers><Header name="x-secret"/></Headers></Remove>
  <Add><Headers><Header name="x-added">from {request.header.x-in}</Header></Headers><QueryParams><QueryParam name="q">1</QueryParam></QueryParams></Add>
</AssignMessage>"#,
    );
    d.write(
        "prod/PC-body.xml",
        r#"<PopulateCache name="PC-body"><CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey><ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings><Source>response.content</Source></PopulateCache>"#,
    );
    d.write(
        "prod/AM-resp.xml",
        r#"<AssignMessage name="AM-resp"><AssignTo type="response"/>
  <Set><Payload contentType="application/json">{"wrapped": true, "stage": "{environment.name}"}</Payload></Set>
</AssignMessage>"#,
    );
    let gw = TestGateway::start(d);
    // The request change is visible at the target (echo), the response body is replaced.
    let r = send(
        client()
            .get(gw.url("/prod/echo/a"))
            .header("x-in", "client")
            .header("x-secret", "s"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"wrapped": true, "stage": "prod"})
    );
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("content-length"), r.body.len().to_string());
    // The original body was cached by PopulateCache (response.content) before the replacement:
    // the origin's echo shows what it received.
    let _ = o;
}

#[tokio::test]
async fn admin_flush_and_invalidate_need_the_token() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[cache]
enabled = true
key_parameters = ["method.request.querystring.type"]
[[flows]]
name = "rc"
condition = 'proxy.pathsuffix ~/ "/rc/**"'
request = ["RC"]
response = ["RC"]
"#,
    );
    d.write("prod/RC.xml", r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="proxy.pathsuffix"/><KeyFragment ref="request.queryparam.v"/></CacheKey></ResponseCache>"#);
    let gw = TestGateway::start(d);
    let post = |path: &str, body: Value| client().post(gw.admin(path)).json(&body);
    for path in [
        "/items/1?type=a",
        "/items/2",
        "/rc/x?v=1",
        "/rc/x?v=2",
        "/rc/y?v=1",
    ] {
        get(&gw.url(&format!("/prod{path}"))).await;
    }
    let r = send(post("/stages/prod/cache/flush", Value::Null)).await;
    assert_eq!(r.status, 401);
    let r = send(
        post(
            "/stages/prod/cache/invalidate",
            serde_json::json!({"path": "/items/1"}),
        )
        .bearer_auth("nope"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(get(&gw.url("/prod/items/1?type=a")).await.x_cache(), "HIT");

    // Invalidate the entry a request would be served from.
    let r = send(
        post(
            "/stages/prod/cache/invalidate",
            serde_json::json!({"path": "/items/1", "query": "type=a"}),
        )
        .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["invalidated"], 1);
    assert_eq!(get(&gw.url("/prod/items/1?type=a")).await.x_cache(), "MISS");
    // Invalidate by policy fragments, with children.
    let r = send(
        post(
            "/stages/prod/cache/invalidate",
            serde_json::json!({"policy": "RC", "fragments": ["/rc/x"], "children": true}),
        )
        .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["invalidated"], 2, "{}", r.body);
    assert_eq!(get(&gw.url("/prod/rc/x?v=1")).await.x_cache(), "MISS");
    assert_eq!(get(&gw.url("/prod/rc/x?v=2")).await.x_cache(), "MISS");
    assert_eq!(get(&gw.url("/prod/rc/y?v=1")).await.x_cache(), "HIT");
    // Flush the stage.
    let r = send(post("/stages/prod/cache/flush", Value::Null).bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["flushed_entries"].as_u64().expect("count") >= 3,
        "{}",
        r.body
    );
    assert_eq!(get(&gw.url("/prod/items/2")).await.x_cache(), "MISS");
    assert_eq!(get(&gw.url("/prod/rc/y?v=1")).await.x_cache(), "MISS");
    // Unknown stage, bad body.
    assert_eq!(
        send(post("/stages/nope/cache/flush", Value::Null).bearer_auth(ADMIN_TOKEN))
            .await
            .status,
        404
    );
    assert_eq!(
        send(
            post(
                "/stages/prod/cache/invalidate",
                serde_json::json!({"oops": 1})
            )
            .bearer_auth(ADMIN_TOKEN)
        )
        .await
        .status,
        400
    );
}
