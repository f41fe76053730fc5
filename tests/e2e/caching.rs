//! Response caching through real HTTP: stage caching (AWS) and ResponseCache (Apigee).

use std::time::Duration;

use crate::harness::{
    assert_same_answer, client, eventually, get, metric_sum, origin, send, PolicyDir, TestGateway,
};

fn stage(d: &PolicyDir, toml: &str) {
    d.stage(
        "prod",
        &format!("target = \"http://{{{{ORIGIN}}}}\"\n{toml}"),
    );
}

#[tokio::test]
async fn stage_caching_miss_then_hit() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\n");
    let gw = TestGateway::start(d);

    let first = get(&gw.url("/prod/items/1")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(
        first.header("cache-status"),
        "cachegate; fwd=uri-miss; stored"
    );
    let second = get(&gw.url("/prod/items/1")).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.x_cache(), "HIT");
    assert!(
        second
            .header("cache-status")
            .starts_with("cachegate; hit; ttl="),
        "{}",
        second.header("cache-status")
    );
    assert!(second.headers.contains_key("age"));
    assert_eq!(second.body, first.body);
    assert_eq!(o.count("/items/1"), 1);
    // Another path is another entry.
    assert_eq!(get(&gw.url("/prod/items/2")).await.x_cache(), "MISS");
    assert_eq!(o.count("/items/2"), 1);
}

#[tokio::test]
async fn dev_stage_without_caching_bypasses() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = false\n");
    let gw = TestGateway::start(d);
    for _ in 0..2 {
        let r = get(&gw.url("/prod/items/1")).await;
        assert_eq!(r.x_cache(), "BYPASS");
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=bypass; detail=off"
        );
    }
    assert_eq!(o.count("/items/1"), 2);
}

#[tokio::test]
async fn only_declared_key_parameters_split_the_cache() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.type\", \"method.request.header.x-tenant\"]\n",
    );
    let gw = TestGateway::start(d);

    assert_eq!(
        get(&gw.url("/prod/items/1?type=a&noise=1")).await.x_cache(),
        "MISS"
    );
    // Undeclared parameter: same entry (AWS semantics).
    assert_eq!(
        get(&gw.url("/prod/items/1?type=a&noise=2")).await.x_cache(),
        "HIT"
    );
    // Declared parameter: another entry.
    assert_eq!(get(&gw.url("/prod/items/1?type=b")).await.x_cache(), "MISS");
    // Absent is not the same as present-but-empty.
    assert_eq!(get(&gw.url("/prod/items/1")).await.x_cache(), "MISS");
    assert_eq!(get(&gw.url("/prod/items/1?type=")).await.x_cache(), "MISS");
    // Declared header splits; undeclared headers do not.
    let with = |t: &'static str| {
        send(
            client()
                .get(gw.url("/prod/items/1?type=a"))
                .header("x-tenant", t)
                .header("x-noise", "z"),
        )
    };
    assert_eq!(with("acme").await.x_cache(), "MISS");
    assert_eq!(with("acme").await.x_cache(), "HIT");
    assert_eq!(with("other").await.x_cache(), "MISS");
    assert_eq!(o.count("/items/1"), 6);
}

#[tokio::test]
async fn post_is_cached_only_with_an_override() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\n[[cache.method]]\nresource = \"/echo/cached/*\"\nmethod = \"POST\"\ncaching = true\n",
    );
    let gw = TestGateway::start(d);

    for _ in 0..2 {
        let r = send(client().post(gw.url("/prod/echo/plain/1")).body("x")).await;
        assert_eq!(r.x_cache(), "BYPASS");
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=bypass; detail=method"
        );
    }
    assert_eq!(o.count("/echo/plain/1"), 2);
    assert_eq!(
        send(client().post(gw.url("/prod/echo/cached/1")))
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(
        send(client().post(gw.url("/prod/echo/cached/1")))
            .await
            .x_cache(),
        "HIT"
    );
    assert_eq!(o.count("/echo/cached/1"), 1);
    // A body the stage key does not read is never keyed: every body would share the entry.
    let r = send(client().post(gw.url("/prod/echo/cached/1")).body("x")).await;
    assert_eq!(
        (r.x_cache(), r.header("cache-status")),
        ("BYPASS", "cachegate; fwd=bypass; detail=body")
    );
    assert_eq!(o.count("/echo/cached/1"), 2);
    // GET and POST are different entries in the stage key.
    assert_eq!(get(&gw.url("/prod/echo/cached/1")).await.x_cache(), "MISS");
}

#[tokio::test]
async fn errors_are_not_stored_by_stage_caching() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.status\"]\n",
    );
    let gw = TestGateway::start(d);
    for _ in 0..2 {
        let r = get(&gw.url("/prod/items/9?status=500")).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.x_cache(), "MISS");
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=uri-miss; detail=status"
        );
    }
    assert_eq!(o.count("/items/9"), 2);
}

#[tokio::test]
async fn unsafe_responses_are_never_stored() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.cookie\", \"method.request.querystring.cache_control\"]\n",
    );
    let gw = TestGateway::start(d);

    for (query, detail) in [
        ("cookie=1", "cookie"),
        ("cache_control=private", "private"),
        ("cache_control=no-store", "no_store"),
    ] {
        for _ in 0..2 {
            let r = get(&gw.url(&format!("/prod/items/u?{query}"))).await;
            assert_eq!(r.x_cache(), "MISS", "{query}");
            assert_eq!(
                r.header("cache-status"),
                format!("cachegate; fwd=uri-miss; detail={detail}")
            );
        }
    }
    // A request with credentials bypasses the cache entirely.
    get(&gw.url("/prod/items/auth")).await;
    let r = send(
        client()
            .get(gw.url("/prod/items/auth"))
            .header("authorization", "Bearer secret"),
    )
    .await;
    assert_eq!(r.x_cache(), "BYPASS");
    assert_eq!(
        r.header("cache-status"),
        "cachegate; fwd=bypass; detail=authorization"
    );
    assert_eq!(o.count("/items/auth"), 2);
}

#[tokio::test]
async fn ttl_expiry_goes_back_to_the_target() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\nttl = 1\n");
    let gw = TestGateway::start(d);
    assert_eq!(get(&gw.url("/prod/items/t")).await.x_cache(), "MISS");
    assert_eq!(get(&gw.url("/prod/items/t")).await.x_cache(), "HIT");
    eventually(
        "the entry expires after 1 s",
        Duration::from_secs(5),
        || async { get(&gw.url("/prod/items/t")).await.x_cache() == "MISS" },
    )
    .await;
    assert_eq!(o.count("/items/t"), 2);
}

#[tokio::test]
async fn method_override_ttl_and_caching_off() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nttl = 3600\n[[cache.method]]\nresource = \"/items/*\"\nmethod = \"GET\"\nttl = 1\n[[cache.method]]\nresource = \"/items/private\"\ncaching = false\n",
    );
    let gw = TestGateway::start(d);
    assert_eq!(
        get(&gw.url("/prod/items/private")).await.x_cache(),
        "BYPASS"
    );
    get(&gw.url("/prod/items/short")).await;
    let hit = get(&gw.url("/prod/items/short")).await;
    assert_eq!(hit.x_cache(), "HIT");
    let ttl: i64 = hit
        .header("cache-status")
        .rsplit("ttl=")
        .next()
        .and_then(|t| t.parse().ok())
        .expect("ttl");
    assert!(
        ttl <= 1,
        "override TTL not applied: {}",
        hit.header("cache-status")
    );
}

/// An origin that waits `delay` before every answer.
fn slow_origin(delay: Duration) -> cachegate_origin::Origin {
    cachegate_origin::Origin::start_background(
        "127.0.0.1:0",
        cachegate_origin::OriginConfig {
            delay,
            ..Default::default()
        },
    )
    .expect("origin")
}

#[tokio::test]
async fn concurrent_cold_requests_collapse_into_one_upstream_request() {
    let o = slow_origin(Duration::from_millis(300));
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\n");
    let gw = TestGateway::start(d);
    let c = client();
    let url = gw.url("/prod/items/cold");
    let tasks: Vec<_> = (0..100).map(|_| tokio::spawn(send(c.get(&url)))).collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        statuses.push((r.status, r.json()["id"].clone()));
    }
    assert!(
        statuses.iter().all(|(s, id)| *s == 200 && id == "cold"),
        "{statuses:?}"
    );
    assert_eq!(
        o.count("/items/cold"),
        1,
        "100 concurrent cold requests must reach the target once"
    );
}

/// Concurrent requests whose response turns out uncacheable (`Set-Cookie`, `private`) each get
/// their own origin response — never another client's cookie — and the burst is not serialised
/// behind the cache lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_responses_under_collapsing_are_not_shared_or_serialised() {
    let o = slow_origin(Duration::from_millis(300));
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.cookie\", \"method.request.querystring.cache_control\"]\n",
    );
    let gw = TestGateway::start(d);
    let c = client();
    for (case, query) in [("cookie", "cookie=1"), ("private", "cache_control=private")] {
        let url = gw.url(&format!("/prod/items/burst-{case}?{query}"));
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(send(c.get(&url)))).collect();
        let mut seen = std::collections::HashSet::new();
        let mut cookies = std::collections::HashSet::new();
        for t in tasks {
            let r = t.await.expect("task");
            assert_eq!(r.status, 200, "{case}");
            assert!(
                seen.insert(r.json()["request_count"].clone()),
                "{case}: two clients got the same origin response"
            );
            if case == "cookie" {
                assert!(
                    cookies.insert(r.header("set-cookie").to_owned()),
                    "{case}: a session cookie was handed to two clients"
                );
            }
        }
        assert_eq!(o.count(&format!("/items/burst-{case}")), 20, "{case}");
        // Serialised, 20 origin round trips of 300 ms would take 6 s.
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{case}: the burst took {took:?}"
        );
    }
}

#[tokio::test]
async fn conditional_requests_get_304_from_the_cache() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.etag\"]\n",
    );
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/e")).await;
    let etag = first.header("etag").to_owned();
    assert!(!etag.is_empty());
    let r = send(
        client()
            .get(gw.url("/prod/items/e"))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(r.status, 304);
    assert_eq!(r.x_cache(), "HIT");
    assert!(r.body.is_empty());
    assert_eq!(o.count("/items/e"), 1);

    // No ETag from the target: a weak one is synthesized and honoured.
    let first = get(&gw.url("/prod/items/w?etag=0")).await;
    let etag = first.header("etag").to_owned();
    assert!(
        etag.starts_with("W/\""),
        "no synthesized ETag: {:?}",
        first.headers
    );
    let r = send(
        client()
            .get(gw.url("/prod/items/w?etag=0"))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(r.status, 304);
    assert_eq!(o.count("/items/w"), 1);
}

#[tokio::test]
async fn head_is_served_from_a_cached_get() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\n");
    let gw = TestGateway::start(d);
    get(&gw.url("/prod/items/h")).await;
    let r = send(client().head(gw.url("/prod/items/h"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(r.header("content-length"), "1024");
    assert_eq!(o.count("/items/h"), 1);
}

#[tokio::test]
async fn large_responses_stream_through_uncached() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nmax_object_size = 4096\nkey_parameters = [\"method.request.querystring.bytes\", \"method.request.querystring.chunked\"]\n",
    );
    let gw = TestGateway::start(d);
    for _ in 0..2 {
        let r = get(&gw.url("/prod/big?bytes=10000")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 10000);
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=uri-miss; detail=size"
        );
    }
    // Without Content-Length the size is only known while streaming: still not stored.
    for _ in 0..2 {
        let r = get(&gw.url("/prod/big?bytes=10000&chunked=1")).await;
        assert_eq!(r.body.len(), 10000);
        assert_ne!(r.x_cache(), "HIT");
    }
    assert_eq!(o.count("/big"), 4);
}

#[tokio::test]
async fn stale_if_error_serves_the_stored_copy_when_the_target_is_down() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nttl = 1\nstale_if_error = 60\n",
    );
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/s")).await;
    assert_eq!(first.x_cache(), "MISS");
    o.shutdown();
    // Once the entry is stale, the target's failure is answered with the stale copy.
    eventually("a stale copy is served", Duration::from_secs(5), || async {
        let r = get(&gw.url("/prod/items/s")).await;
        r.x_cache() == "STALE" && r.status == 200 && r.body == first.body
    })
    .await;
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nttl = 1\nstale_while_revalidate = 60\n",
    );
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/r")).await;
    assert_eq!(first.x_cache(), "MISS");
    eventually(
        "a stale copy is served while refreshing",
        Duration::from_secs(5),
        || async {
            let r = get(&gw.url("/prod/items/r")).await;
            r.x_cache() == "STALE" && r.body == first.body
        },
    )
    .await;
    // The background refresh revalidates with the stored ETag (the target answers 304), which
    // makes the entry fresh again without a client waiting for it.
    eventually(
        "the background refresh reaches the target",
        Duration::from_secs(5),
        || async { o.count("/items/r") >= 2 },
    )
    .await;
    let after = get(&gw.url("/prod/items/r")).await;
    assert!(
        matches!(after.x_cache(), "HIT" | "STALE"),
        "{}",
        after.x_cache()
    );
    assert_eq!(after.status, 200);
}

/// A stage whose `items` flow runs the ResponseCache policy `RC` written as `xml`.
fn rc_stage(d: &PolicyDir, stage_extra: &str, xml: &str) {
    stage(
        d,
        &format!(
            "{stage_extra}\n[[flows]]\nname = \"items\"\ncondition = 'proxy.pathsuffix MatchesPath \"/items/**\"'\nrequest = [\"RC\"]\nresponse = [\"RC\"]\n"
        ),
    );
    d.write("prod/RC.xml", xml);
}

#[tokio::test]
async fn response_cache_key_fragments_decide_what_splits() {
    let o = origin();
    let d = PolicyDir::new(&o);
    rc_stage(
        &d,
        "",
        r#"<ResponseCache name="RC">
  <CacheKey><Prefix>items</Prefix><KeyFragment ref="proxy.pathsuffix"/><KeyFragment ref="request.header.x-tenant"/></CacheKey>
  <ExpirySettings><TimeoutInSeconds>60</TimeoutInSeconds></ExpirySettings>
</ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    let req = |tenant: &'static str, q: &'static str| {
        send(
            client()
                .get(gw.url(&format!("/prod/items/1{q}")))
                .header("x-tenant", tenant),
        )
    };
    // The stage has caching off: the policy alone caches.
    assert_eq!(req("a", "").await.x_cache(), "MISS");
    assert_eq!(req("a", "").await.x_cache(), "HIT");
    // The query string is not a fragment, so it does not split the cache…
    assert_eq!(req("a", "?x=1").await.x_cache(), "HIT");
    // …but the tenant header is.
    assert_eq!(req("b", "").await.x_cache(), "MISS");
    assert_eq!(o.count("/items/1"), 2);
    // Outside the flow the policy does not apply.
    assert_eq!(get(&gw.url("/prod/echo/x")).await.x_cache(), "BYPASS");
}

/// A keyed query parameter sent twice is not cached: the key would hold the first value while the
/// target, which gets the whole query, may use the last (parameter cloaking). Other parameters
/// may repeat freely.
#[tokio::test]
async fn repeated_keyed_query_parameters_bypass_a_response_cache() {
    let o = origin();
    let d = PolicyDir::new(&o);
    rc_stage(
        &d,
        "",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.queryparam.v"/></CacheKey></ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    let req = |q: &str| {
        let url = gw.url(&format!("/prod/items/1?{q}"));
        async move { get(&url).await }
    };
    assert_eq!(req("v=1").await.x_cache(), "MISS");
    assert_eq!(req("v=1").await.x_cache(), "HIT");
    for cloaked in ["v=1&v=2", "v=2&v=1", "v=1&%76=2", "v=1&x=0&v=1"] {
        let r = req(cloaked).await;
        assert_eq!(r.x_cache(), "BYPASS", "{cloaked}");
        assert!(
            r.header("cache-status").contains("repeated_parameter"),
            "{cloaked}: {}",
            r.header("cache-status")
        );
    }
    // Nothing the cloaked requests fetched was stored.
    assert_eq!(req("v=1").await.x_cache(), "HIT");
    assert_eq!(req("v=2").await.x_cache(), "MISS");
    // An unkeyed parameter may repeat.
    assert_eq!(req("v=1&x=1&x=2").await.x_cache(), "HIT");
    assert_eq!(o.count("/items/1"), 6);
}

#[tokio::test]
async fn response_cache_stores_errors_unless_exclude_error_response() {
    let o = origin();
    let d = PolicyDir::new(&o);
    rc_stage(
        &d,
        "",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey></ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    // Apigee's default: any status is cached.
    assert_eq!(
        get(&gw.url("/prod/items/e?status=404")).await.x_cache(),
        "MISS"
    );
    let r = get(&gw.url("/prod/items/e?status=404")).await;
    assert_eq!((r.status, r.x_cache()), (404, "HIT"));

    let o = origin();
    let d = PolicyDir::new(&o);
    rc_stage(
        &d,
        "",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey><ExcludeErrorResponse>true</ExcludeErrorResponse></ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    for _ in 0..2 {
        let r = get(&gw.url("/prod/items/e?status=404")).await;
        assert_eq!(
            (r.status, r.header("cache-status")),
            (404, "cachegate; fwd=uri-miss; detail=status")
        );
    }
    // 200–205 are stored.
    get(&gw.url("/prod/items/e?status=203")).await;
    assert_eq!(
        get(&gw.url("/prod/items/e?status=203")).await.x_cache(),
        "HIT"
    );
}

#[tokio::test]
async fn skip_cache_lookup_refreshes_and_skip_population_does_not_store() {
    let o = origin();
    let d = PolicyDir::new(&o);
    rc_stage(
        &d,
        "",
        r#"<ResponseCache name="RC">
  <CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey>
  <SkipCacheLookup>request.header.x-bypass-cache = "true"</SkipCacheLookup>
  <SkipCachePopulation>response.header.x-origin-seq = "2" or request.header.x-no-store = "true"</SkipCachePopulation>
</ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/k")).await;
    assert_eq!(first.x_cache(), "MISS");
    let refresh = send(
        client()
            .get(gw.url("/prod/items/k"))
            .header("x-bypass-cache", "true"),
    )
    .await;
    assert_eq!(refresh.x_cache(), "REFRESH");
    // Origin sequence 2 matches SkipCachePopulation: not stored, so the old entry stays.
    assert_eq!(
        refresh.header("cache-status"),
        "cachegate; fwd=request; detail=skip"
    );
    let hit = get(&gw.url("/prod/items/k")).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.body, first.body);
    // A refresh that is stored replaces the entry for everyone.
    let refresh = send(
        client()
            .get(gw.url("/prod/items/k"))
            .header("x-bypass-cache", "true"),
    )
    .await;
    assert_eq!(
        refresh.header("cache-status"),
        "cachegate; fwd=request; stored"
    );
    let hit = get(&gw.url("/prod/items/k")).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.body, refresh.body);
    assert_ne!(hit.body, first.body);
}

#[tokio::test]
async fn expiry_settings_and_upstream_cache_headers_set_the_ttl() {
    let o = origin();
    let d = PolicyDir::new(&o);
    rc_stage(
        &d,
        "",
        r#"<ResponseCache name="RC">
  <CacheKey><KeyFragment ref="request.uri"/></CacheKey>
  <ExpirySettings><TimeoutInSeconds>1</TimeoutInSeconds></ExpirySettings>
  <UseResponseCacheHeaders>true</UseResponseCacheHeaders>
</ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    // max-age from the target wins over ExpirySettings when UseResponseCacheHeaders is set.
    get(&gw.url("/prod/items/c?cache_control=max-age%3D600")).await;
    let hit = get(&gw.url("/prod/items/c?cache_control=max-age%3D600")).await;
    let ttl: i64 = hit
        .header("cache-status")
        .rsplit("ttl=")
        .next()
        .and_then(|t| t.parse().ok())
        .expect("ttl");
    assert!((590..=600).contains(&ttl), "{}", hit.header("cache-status"));
    // Without headers, the 1 s ExpirySettings applies.
    get(&gw.url("/prod/items/c")).await;
    eventually(
        "the 1 s policy TTL expires",
        Duration::from_secs(5),
        || async { get(&gw.url("/prod/items/c")).await.x_cache() == "MISS" },
    )
    .await;
}

#[tokio::test]
async fn disabled_policy_and_step_conditions() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[[flows]]
name = "items"
request = [{ policy = "RC", condition = 'request.header.x-cacheable = "yes"' }, "OFF"]
response = ["RC", "OFF"]
"#,
    );
    d.write("prod/RC.xml", r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey></ResponseCache>"#);
    d.write(
        "prod/OFF.xml",
        r#"<ResponseCache name="OFF" enabled="false"><CacheKey><KeyFragment ref="request.uri"/></CacheKey></ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    for _ in 0..2 {
        assert_eq!(get(&gw.url("/prod/items/1")).await.x_cache(), "BYPASS");
    }
    let yes = || {
        send(
            client()
                .get(gw.url("/prod/items/1"))
                .header("x-cacheable", "yes"),
        )
    };
    assert_eq!(yes().await.x_cache(), "MISS");
    assert_eq!(yes().await.x_cache(), "HIT");
}

#[tokio::test]
async fn use_accept_header_splits_by_accept_values() {
    let o = origin();
    let d = PolicyDir::new(&o);
    rc_stage(
        &d,
        "",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey><UseAcceptHeader>true</UseAcceptHeader></ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    let with = |accept: &'static str| {
        send(
            client()
                .get(gw.url("/prod/items/a"))
                .header("accept", accept),
        )
    };
    assert_eq!(with("application/json").await.x_cache(), "MISS");
    assert_eq!(with("application/json").await.x_cache(), "HIT");
    assert_eq!(with("text/plain").await.x_cache(), "MISS");
}

#[tokio::test]
async fn cache_metrics_are_labelled_by_stage_resource_method_policy_and_tier() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "metricsstage",
        "target = \"http://{{ORIGIN}}\"\nresources = [\"/items/{id}\"]\n[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.cookie\"]\n",
    );
    let gw = TestGateway::start(d);
    for _ in 0..3 {
        get(&gw.url("/metricsstage/items/7")).await;
    }
    get(&gw.url("/metricsstage/items/8?cookie=1")).await;
    // Metrics are recorded in the logging phase, after the response is sent: poll.
    eventually(
        "the last request is counted",
        Duration::from_secs(5),
        || async {
            gw.metrics()
                .await
                .contains("reason=\"cookie\",stage=\"metricsstage\"")
                && gw.metrics().await.lines().any(|l| {
                    l.starts_with("cachegate_cache_misses_total")
                        && l.contains("metricsstage")
                        && l.ends_with(" 2")
                })
        },
    )
    .await;
    let text = gw.metrics().await;
    let value = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{text}"))
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("value")
    };
    let labels = "method=\"GET\",policy=\"stage\",resource=\"/items/{id}\",stage=\"metricsstage\",tier=\"local\"";
    assert_eq!(
        value(&format!("cachegate_cache_hits_total{{{labels}}}")),
        2.0
    );
    assert_eq!(
        value(&format!("cachegate_cache_misses_total{{{labels}}}")),
        2.0
    );
    assert_eq!(
        value("cachegate_cache_stores_total{policy=\"stage\",stage=\"metricsstage\"}"),
        1.0
    );
    assert_eq!(
        value("cachegate_cache_store_rejections_total{policy=\"stage\",reason=\"cookie\",stage=\"metricsstage\"}"),
        1.0
    );
    assert!(value("cachegate_cache_local_entries{stage=\"metricsstage\"}") >= 1.0);
    assert!(value("cachegate_cache_local_bytes{stage=\"metricsstage\"}") >= 1024.0);
    assert!(text.contains("cachegate_request_duration_seconds_bucket{cache=\"hit\""));
}

#[tokio::test]
async fn reload_keeps_entries_of_unchanged_stages_and_caches_new_ones() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\n");
    let gw = TestGateway::start(d);
    get(&gw.url("/prod/items/1")).await;
    gw.dir.stage(
        "later",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    );
    let r = send(
        client()
            .post(gw.admin("/reload"))
            .bearer_auth(crate::harness::ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&gw.url("/prod/items/1")).await.x_cache(), "HIT");
    assert_eq!(get(&gw.url("/later/items/1")).await.x_cache(), "MISS");
    assert_eq!(get(&gw.url("/later/items/1")).await.x_cache(), "HIT");
}

#[tokio::test]
async fn http_mode_takes_freshness_from_the_target() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\nmode = \"http\"\nttl = 300\n");
    let gw = TestGateway::start(d);

    // Explicit freshness.
    get(&gw.url("/prod/items/1?cache_control=max-age%3D60")).await;
    let hit = get(&gw.url("/prod/items/1?cache_control=max-age%3D60")).await;
    assert_eq!(hit.x_cache(), "HIT");
    let ttl: i64 = hit
        .header("cache-status")
        .rsplit("ttl=")
        .next()
        .and_then(|t| t.parse().ok())
        .expect("ttl");
    assert!((55..=60).contains(&ttl), "{}", hit.header("cache-status"));
    // The whole query string is the key.
    assert_eq!(
        get(&gw.url("/prod/items/1?cache_control=max-age%3D60&x=1"))
            .await
            .x_cache(),
        "MISS"
    );
    // Nothing about freshness: not stored.
    for _ in 0..2 {
        let r = get(&gw.url("/prod/items/2")).await;
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=uri-miss; detail=no_freshness"
        );
    }
    // Last-Modified allows heuristic freshness (10 % of its age, at most the stage TTL).
    get(&gw.url("/prod/items/3?last_modified=1")).await;
    let hit = get(&gw.url("/prod/items/3?last_modified=1")).await;
    assert_eq!(hit.x_cache(), "HIT");
    let ttl: i64 = hit
        .header("cache-status")
        .rsplit("ttl=")
        .next()
        .and_then(|t| t.parse().ok())
        .expect("ttl");
    assert!((290..=300).contains(&ttl), "{}", hit.header("cache-status"));
    // s-maxage wins over max-age for a shared cache.
    get(&gw.url("/prod/items/4?cache_control=max-age%3D5,s-maxage%3D100")).await;
    let hit = get(&gw.url("/prod/items/4?cache_control=max-age%3D5,s-maxage%3D100")).await;
    let ttl: i64 = hit
        .header("cache-status")
        .rsplit("ttl=")
        .next()
        .and_then(|t| t.parse().ok())
        .expect("ttl");
    assert!((95..=100).contains(&ttl), "{}", hit.header("cache-status"));
}

#[tokio::test]
async fn http_mode_revalidates_no_cache_responses_every_time() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\nmode = \"http\"\n");
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/n?cache_control=no-cache")).await;
    assert_eq!(
        first.header("cache-status"),
        "cachegate; fwd=uri-miss; stored"
    );
    for n in 2..=3 {
        let r = get(&gw.url("/prod/items/n?cache_control=no-cache")).await;
        assert_eq!(r.status, 200);
        // Revalidated with the target (which answered 304), served from the cache.
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=stale; fwd-status=304"
        );
        assert_eq!(r.body, first.body);
        assert_eq!(o.count("/items/n"), n);
    }
}

#[tokio::test]
async fn vary_keeps_one_variant_per_header_value() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\nmode = \"http\"\n");
    let gw = TestGateway::start(d);
    let url = gw.url("/prod/items/v?vary=x-lang&cache_control=max-age%3D60");
    let lang = |l: &'static str| send(client().get(&url).header("x-lang", l));
    assert_eq!(lang("en").await.x_cache(), "MISS");
    assert_eq!(lang("en").await.x_cache(), "HIT");
    assert_eq!(lang("fr").await.x_cache(), "MISS");
    assert_eq!(lang("fr").await.x_cache(), "HIT");
    assert_eq!(lang("en").await.x_cache(), "HIT");
    assert_eq!(o.count("/items/v"), 2);
    // `Vary: *` can never match: not stored.
    let r = get(&gw.url("/prod/items/star?vary=*&cache_control=max-age%3D60")).await;
    assert_eq!(
        r.header("cache-status"),
        "cachegate; fwd=uri-miss; detail=vary"
    );
}

#[tokio::test]
async fn must_revalidate_is_never_served_stale() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nmode = \"http\"\nstale_if_error = 60\n",
    );
    let gw = TestGateway::start(d);
    get(&gw.url("/prod/items/m?cache_control=max-age%3D1,must-revalidate")).await;
    get(&gw.url("/prod/items/ok?cache_control=max-age%3D1")).await;
    o.shutdown();
    eventually(
        "the plain entry is served stale",
        Duration::from_secs(5),
        || async {
            get(&gw.url("/prod/items/ok?cache_control=max-age%3D1"))
                .await
                .x_cache()
                == "STALE"
        },
    )
    .await;
    let r = get(&gw.url("/prod/items/m?cache_control=max-age%3D1,must-revalidate")).await;
    assert_eq!(
        r.status,
        502,
        "must-revalidate entry served stale: {}",
        r.header("cache-status")
    );
}

#[tokio::test]
async fn unkeyed_request_inputs_cannot_poison_entries() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.type\", \"method.request.header.x-tenant\"]\n",
    );
    d.stage(
        "vhost",
        "target = \"http://{{ORIGIN}}\"\npreserve_host = true\n[cache]\nenabled = true\n",
    );
    let gw = TestGateway::start(d);

    // Only declared query parameters reach the target (first value), so a cached response is
    // exactly what its key describes.
    let r = get(&gw.url("/prod/echo/q?type=public&type=admin&callback=evil")).await;
    assert_eq!(r.json()["query"], "type=public");
    // Override and forwarding headers are not passed on for cacheable requests.
    let r = send(
        client()
            .get(gw.url("/prod/echo/h"))
            .header("host", "evil.test")
            .header("x-forwarded-host", "evil.test")
            .header("x-http-method-override", "DELETE")
            .header("x-http-method", "DELETE")
            .header("x-method-override", "DELETE")
            .header("x-original-url", "/admin")
            .header("x-rewrite-url", "/admin")
            .header("forwarded", "host=evil.test;proto=http")
            .header("x-forwarded-server", "evil.test")
            .header("x-forwarded-port", "8443")
            .header("x-forwarded-scheme", "http")
            .header("x-forwarded-prefix", "/evil")
            .header("x-forwarded-path", "/evil")
            .header("x-host", "evil.test"),
    )
    .await;
    let h = &r.json()["headers"];
    for name in [
        "x-forwarded-host",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
        "forwarded",
        "x-forwarded-server",
        "x-forwarded-port",
        "x-forwarded-scheme",
        "x-forwarded-prefix",
        "x-forwarded-path",
        "x-host",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the target: {h}");
    }
    // Requests the gateway would change before forwarding are not cached.
    let cookie = send(
        client()
            .get(gw.url("/prod/items/c"))
            .header("cookie", "session=1"),
    )
    .await;
    assert_eq!(
        cookie.header("cache-status"),
        "cachegate; fwd=bypass; detail=cookie"
    );
    let body = send(client().get(gw.url("/prod/items/c")).body("abc")).await;
    assert_eq!(
        body.header("cache-status"),
        "cachegate; fwd=bypass; detail=body"
    );
    let hop = send(
        client()
            .get(gw.url("/prod/items/c"))
            .header("x-tenant", "acme")
            .header("connection", "x-tenant"),
    )
    .await;
    assert_eq!(
        hop.header("cache-status"),
        "cachegate; fwd=bypass; detail=hop_by_hop"
    );

    // A stage that forwards Host keys on it.
    let vh = |host: &'static str| send(client().get(gw.url("/vhost/echo/v")).header("host", host));
    assert_eq!(vh("a.example").await.x_cache(), "MISS");
    let b = vh("b.example").await;
    assert_eq!(b.x_cache(), "MISS");
    assert_eq!(b.json()["headers"]["host"], "b.example");
    assert_eq!(vh("a.example").await.x_cache(), "HIT");
}

#[tokio::test]
async fn reload_that_changes_key_semantics_flushes_the_stage() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(
        &d,
        "[cache]\nenabled = true\nkey_parameters = [\"method.request.querystring.type\"]\n",
    );
    let gw = TestGateway::start(d);
    get(&gw.url("/prod/items/1?type=secret")).await;
    assert_eq!(
        get(&gw.url("/prod/items/1?type=secret")).await.x_cache(),
        "HIT"
    );
    gw.dir.stage("prod", "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\nkey_parameters = [\"method.request.header.x-lang\"]\n");
    let r = send(
        client()
            .post(gw.admin("/reload"))
            .bearer_auth(crate::harness::ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        client()
            .get(gw.url("/prod/items/1"))
            .header("x-lang", "secret"),
    )
    .await;
    assert_eq!(r.x_cache(), "MISS");
}

#[tokio::test]
async fn set_cookie_is_never_replayed_and_no_cache_without_validators_is_not_kept() {
    let o = origin();
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\nallow_set_cookie = true\nkey_parameters = [\"method.request.querystring.cookie\"]\n");
    d.stage(
        "std",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\nmode = \"http\"\n",
    );
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/k?cookie=1")).await;
    assert!(first.headers.contains_key("set-cookie"));
    let hit = get(&gw.url("/prod/items/k?cookie=1")).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert!(
        !hit.headers.contains_key("set-cookie"),
        "a stored Set-Cookie was replayed"
    );

    // http mode never invents validators, so a no-cache response without any is not kept.
    let r = get(&gw.url("/std/items/n?cache_control=no-cache&etag=0")).await;
    assert_eq!(
        r.header("cache-status"),
        "cachegate; fwd=uri-miss; detail=ttl"
    );
    assert!(!r.headers.contains_key("etag"));
}

#[tokio::test]
async fn response_cache_can_set_its_own_stale_windows() {
    let o = origin();
    let d = PolicyDir::new(&o);
    rc_stage(
        &d,
        "",
        r#"<ResponseCache name="RC">
  <CacheKey><KeyFragment ref="request.uri"/></CacheKey>
  <ExpirySettings><TimeoutInSeconds>1</TimeoutInSeconds></ExpirySettings>
  <StaleIfErrorInSeconds>60</StaleIfErrorInSeconds>
</ResponseCache>"#,
    );
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/p")).await;
    assert_eq!(first.x_cache(), "MISS");
    o.shutdown();
    eventually(
        "the policy's stale-if-error window serves the stored copy",
        Duration::from_secs(5),
        || async {
            let r = get(&gw.url("/prod/items/p")).await;
            r.x_cache() == "STALE" && r.body == first.body
        },
    )
    .await;
}

/// Stale-if-error against a target answering `503` (not just down): the stored copy is served
/// and counted while the window lasts, the target's error comes through once it has passed, and a
/// zero window never serves stale.
#[tokio::test]
async fn stale_if_error_covers_5xx_for_its_window_only() {
    let o = origin();
    let d = PolicyDir::new(&o);
    // Keyed on the path alone, so `?status=503` reaches the same entry.
    let policy = |window: u32| {
        format!(
            r#"<ResponseCache name="SIE">
  <CacheKey><KeyFragment ref="proxy.pathsuffix"/></CacheKey>
  <ExpirySettings><TimeoutInSeconds>1</TimeoutInSeconds></ExpirySettings>
  <ExcludeErrorResponse>true</ExcludeErrorResponse>
  <StaleIfErrorInSeconds>{window}</StaleIfErrorInSeconds>
</ResponseCache>"#
        )
    };
    // A policy name of its own: the metrics registry is shared with the other tests.
    stage(
        &d,
        "[[flows]]\nname = \"items\"\ncondition = 'proxy.pathsuffix MatchesPath \"/items/**\"'\nrequest = [\"SIE\"]\nresponse = [\"SIE\"]\n",
    );
    d.write("prod/SIE.xml", &policy(2));
    let gw = TestGateway::start(d);
    let first = get(&gw.url("/prod/items/sie")).await;
    assert_eq!(first.x_cache(), "MISS");
    let stale_before = stale_errors(&gw).await;
    eventually(
        "a stale copy covers the 503",
        Duration::from_secs(5),
        || async {
            let r = get(&gw.url("/prod/items/sie?status=503")).await;
            r.status == 200 && r.x_cache() == "STALE" && r.body == first.body
        },
    )
    .await;
    eventually(
        "the stale answer is counted",
        Duration::from_secs(5),
        || async { stale_errors(&gw).await > stale_before },
    )
    .await;
    // TTL 1 s + window 2 s: afterwards the target's 503 is the answer.
    eventually("the window ends", Duration::from_secs(8), || async {
        get(&gw.url("/prod/items/sie?status=503")).await.status == 503
    })
    .await;

    // A zero window: the 503 comes through as soon as the entry is stale.
    gw.dir.write("prod/SIE.xml", &policy(0));
    gw.handle.reload().await.expect("reload");
    let first = get(&gw.url("/prod/items/sie0")).await;
    assert_eq!(first.x_cache(), "MISS");
    eventually("the entry goes stale", Duration::from_secs(5), || async {
        let r = get(&gw.url("/prod/items/sie0?status=503")).await;
        assert_ne!(r.x_cache(), "STALE", "served stale with a zero window");
        r.status == 503
    })
    .await;
}

/// `cachegate_cache_stale_served_total{reason="error"}` of policy `SIE`, summed.
async fn stale_errors(gw: &TestGateway) -> f64 {
    crate::harness::metric_sum(
        &gw.metrics().await,
        "cachegate_cache_stale_served_total",
        &["reason=\"error\"", "policy=\"SIE\""],
    )
}

/// Requests collapsed behind a slow fill wait at most `lock_timeout_ms`, then go to the target
/// themselves: every one is answered, none waits for the others in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsed_waiters_give_up_at_the_lock_timeout() {
    let o = slow_origin(Duration::from_millis(1500));
    let d = PolicyDir::new(&o);
    stage(&d, "[cache]\nenabled = true\nlock_timeout_ms = 200\n");
    let gw = TestGateway::start(d);
    let c = client();
    let url = gw.url("/prod/items/locked");
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..5).map(|_| tokio::spawn(send(c.get(&url)))).collect();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!((r.status, r.json()["id"].as_str()), (200, Some("locked")));
    }
    // The waiters went to the target after 200 ms rather than waiting for the 1.5 s fill.
    assert!(o.count("/items/locked") > 1, "nobody gave up waiting");
    // In turn, 5 fills of 1.5 s would take 7.5 s.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "the requests took {took:?}");
}

/// A plain GET's hit is answered by the gateway's own fast path; a conditional one (here an
/// `If-None-Match` that does not match) by pingora's hit path. The client cannot tell them apart:
/// same status, headers (but `Date`, and `Age` a second apart at most) and body, and both are
/// counted as local-tier hits.
#[tokio::test]
async fn fast_hits_look_exactly_like_pingora_hits() {
    let o = origin();
    let d = PolicyDir::new(&o);
    // Metrics are process-wide: a stage name of its own keeps other tests' hits out.
    d.stage(
        "fasthit",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    );
    let gw = TestGateway::start(d);
    let url = gw.url("/fasthit/items/7");
    assert_eq!(get(&url).await.x_cache(), "MISS");
    let fast = get(&url).await;
    let slow = send(
        client()
            .get(&url)
            .header("if-none-match", "\"not-this-one\""),
    )
    .await;
    assert_eq!((fast.status, slow.status), (200, 200));
    assert_eq!(fast.x_cache(), "HIT");
    assert_same_answer(&fast, &slow);
    assert_eq!(o.count("/items/7"), 1);
    // Counted once each response is out (the logging hook runs after it).
    let hits = || async {
        metric_sum(
            &gw.metrics().await,
            "cachegate_cache_hits_total",
            &["stage=\"fasthit\"", "tier=\"local\""],
        )
    };
    eventually("both hits counted", Duration::from_secs(5), || async {
        hits().await >= 2.0
    })
    .await;
    assert_eq!(hits().await, 2.0);
}
