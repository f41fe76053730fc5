//! `mode = "http"` as a shared cache keeps, revalidates and ages entries (RFC 9111 §3.1, §4.2.3,
//! §4.3.4): stale entries with a validator are revalidated with a conditional request, a 304
//! updates the stored header fields, `Age` counts the age the response arrived with, and
//! hop-by-hop fields are neither forwarded nor stored.

use std::time::Duration;

use crate::harness::{
    eventually, get, origin, raw_target, scripted_target, PolicyDir, RedisServer, Resp, TestGateway,
};

fn http_stage(d: &PolicyDir, extra: &str) {
    d.stage(
        "prod",
        &format!(
            "target = \"http://{{{{ORIGIN}}}}\"\n[cache]\nenabled = true\nmode = \"http\"\n{extra}"
        ),
    );
}

const REVALIDATED: &str = "cachegate; fwd=stale; fwd-status=304";

/// Requests `url` until a response is revalidated with the target (the entry went stale), for at
/// most five seconds; that response.
async fn until_revalidated(url: &str) -> Resp {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(url).await;
        if r.header("cache-status") == REVALIDATED {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never revalidated; last: {}",
            r.header("cache-status")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stale_entry_with_a_validator_is_revalidated_not_refetched() {
    let o = origin();
    let d = PolicyDir::new(&o);
    // No stale window: the entry is kept for revalidation only.
    http_stage(&d, "");
    let gw = TestGateway::start(d);
    let url = gw.url("/prod/items/r?cache_control=max-age%3D1");
    let first = get(&url).await;
    assert_eq!(first.x_cache(), "MISS");
    assert!(!first.header("etag").is_empty(), "the origin sends an ETag");
    // Once stale, the next request is a conditional one the origin answers with 304 (it only
    // does when If-None-Match carries its ETag), and the stored body is served.
    let r = until_revalidated(&url).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, first.body);
    assert_eq!(r.x_cache(), "HIT");
    // The request count: the first fetch, then one conditional request per revalidation; never
    // a second full fetch.
    assert!(o.count("/items/r") >= 2);
}

#[tokio::test]
async fn without_a_keep_time_a_stale_entry_is_fetched_again() {
    let o = origin();
    let d = PolicyDir::new(&o);
    http_stage(&d, "revalidate_keep = 0\n");
    let gw = TestGateway::start(d);
    let url = gw.url("/prod/items/k?cache_control=max-age%3D1");
    assert_eq!(get(&url).await.x_cache(), "MISS");
    eventually("the entry is gone once stale", Duration::from_secs(5), || {
        let url = url.clone();
        async move {
            get(&url).await.header("cache-status") == "cachegate; fwd=uri-miss; stored"
        }
    })
    .await;
}

#[tokio::test]
async fn a_304_updates_the_stored_header_fields() {
    let o = origin();
    let d = PolicyDir::new(&o);
    http_stage(&d, "");
    let gw = TestGateway::start(d);
    // Every response of the origin, 304s included, carries `X-Test-Header: v<request count>`.
    let url = gw.url(
        "/prod/items/u?cache_control=max-age%3D2&header=X-Test-Header:v{count}&header=Content-Foo:c{count}",
    );
    let first = get(&url).await;
    assert_eq!(first.header("x-test-header"), "v1");
    let r = until_revalidated(&url).await;
    let n = o.count("/items/u");
    // Served with the 304's values (RFC 9111 §4.3.4)...
    assert_eq!(r.header("x-test-header"), format!("v{n}"));
    assert_eq!(r.header("content-foo"), format!("c{n}"));
    // ...the stored body's own fields kept...
    assert_eq!(r.header("content-length"), first.header("content-length"));
    assert_eq!(r.body, first.body);
    // ...and stored: the next fresh hit has them too.
    let hit = get(&url).await;
    assert!(
        hit.header("cache-status").contains("; hit"),
        "{}",
        hit.header("cache-status")
    );
    assert_eq!(hit.header("x-test-header"), format!("v{n}"));
    assert_eq!(hit.header("content-foo"), format!("c{n}"));
    assert_eq!(
        o.count("/items/u"),
        n,
        "a fresh hit does not reach the origin"
    );
}

#[tokio::test]
async fn age_counts_the_age_the_response_arrived_with() {
    let o = origin();
    let d = PolicyDir::new(&o);
    http_stage(&d, "");
    let gw = TestGateway::start(d);
    let url = gw.url("/prod/items/a?cache_control=max-age%3D3600&header=Age:30");
    assert_eq!(get(&url).await.x_cache(), "MISS");
    let hit = get(&url).await;
    assert_eq!(hit.x_cache(), "HIT");
    let age: u64 = hit.header("age").parse().expect("an Age");
    assert!(
        (30..40).contains(&age),
        "Age {age}: the upstream's 30 s are counted"
    );
    // The remaining freshness is net of it.
    let ttl = hit.status_ttl();
    assert!((3_550..=3_570).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn a_response_older_than_its_lifetime_is_stale_on_arrival() {
    let o = origin();
    let d = PolicyDir::new(&o);
    http_stage(&d, "");
    let gw = TestGateway::start(d);
    // `Age: 7200, 0` is 7200 (the first member), older than max-age: never served fresh.
    let url = gw.url("/prod/items/old?cache_control=max-age%3D3600&header=Age:7200,%200");
    assert_eq!(get(&url).await.x_cache(), "MISS");
    let second = get(&url).await;
    assert_eq!(second.header("cache-status"), REVALIDATED);
    // After the revalidation the served Age is the 304's (7200 again), not a fresh-looking 0.
    let age: u64 = second.header("age").parse().expect("an Age");
    assert!(age >= 7_200, "Age {age}");
}

#[tokio::test]
async fn connection_named_fields_are_neither_forwarded_nor_stored() {
    let o = origin();
    let d = PolicyDir::new(&o);
    http_stage(&d, "");
    let gw = TestGateway::start(d);
    let url = gw.url(
        "/prod/items/h?cache_control=max-age%3D60&header=Connection:x-a,%20x-b&header=X-A:1&header=X-B:2&header=X-C:3&header=Keep-Alive:timeout%3D5&header=Proxy-Authenticate:Basic",
    );
    for expected in ["MISS", "HIT"] {
        let r = get(&url).await;
        assert_eq!(r.x_cache(), expected);
        assert_eq!(r.header("x-c"), "3", "{expected}: end-to-end fields stay");
        for gone in ["x-a", "x-b", "keep-alive", "proxy-authenticate"] {
            assert_eq!(r.header(gone), "", "{expected}: {gone} is hop-by-hop");
        }
    }
}

#[tokio::test]
async fn a_revalidated_entry_reaches_the_shared_tier() {
    let redis = RedisServer::start();
    let o = origin();
    let instance = || {
        let d = PolicyDir::new(&o);
        d.with_redis(&redis.url(), "");
        http_stage(&d, "");
        TestGateway::start(d)
    };
    let g1 = instance();
    let path = "/prod/items/t?cache_control=max-age%3D2&header=X-Test-Header:v{count}";
    assert_eq!(get(&g1.url(path)).await.x_cache(), "MISS");
    eventually("the entry is in Redis", Duration::from_secs(5), || async {
        redis.calls("set") >= 1
    })
    .await;
    let revalidated = until_revalidated(&g1.url(path)).await;
    let n = o.count("/items/t");
    assert_eq!(revalidated.header("x-test-header"), format!("v{n}"));
    // The refreshed entry is written through: an instance that never held it finds it fresh in
    // Redis, with the 304's fields, instead of revalidating the old copy again.
    eventually(
        "the refreshed entry is in Redis",
        Duration::from_secs(5),
        || async { redis.calls("set") >= 2 },
    )
    .await;
    let g2 = instance();
    let r = get(&g2.url(path)).await;
    assert!(
        r.header("cache-status").contains("; hit"),
        "{}",
        r.header("cache-status")
    );
    assert_eq!(r.header("x-test-header"), format!("v{n}"));
    assert_eq!(o.count("/items/t"), n);
}

#[tokio::test]
async fn a_304_with_another_strong_etag_updates_nothing() {
    let o = origin();
    let (port, hits) = scripted_target(&[
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nCache-Control: max-age=1\r\nETag: \"A\"\r\nX-Test-Header: first\r\nConnection: close\r\n\r\nA-body",
        b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=600\r\nETag: \"B\"\r\nX-Test-Header: second\r\nConnection: close\r\n\r\n",
    ]);
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        &format!(
            "target = \"http://127.0.0.1:{port}\"\n[cache]\nenabled = true\nmode = \"http\"\n"
        ),
    );
    let gw = TestGateway::start(d);
    let url = gw.url("/prod/x");
    assert_eq!(get(&url).await.header("etag"), "\"A\"");
    // The 304 validated some other response: the stored body goes out with its own ETag...
    let r = until_revalidated(&url).await;
    assert_eq!(r.body, "A-body");
    assert_eq!(r.header("etag"), "\"A\"");
    // ...and the entry is not updated: still stale, so the next request asks the target again
    // (a 304 that had been applied would have made it fresh for 600 s).
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let again = get(&url).await;
    assert_eq!(again.header("etag"), "\"A\"");
    assert_eq!(again.header("x-test-header"), "first");
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) > before);
}

#[tokio::test]
async fn a_content_length_list_from_the_target_is_forwarded_as_one_value() {
    let o = origin();
    let (port, hits) = raw_target(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\nConnection: close, x-hop\r\nX-Hop: 1\r\n\r\nok",
    );
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        &format!(
            "target = \"http://127.0.0.1:{port}\"\n[cache]\nenabled = true\nmode = \"http\"\n"
        ),
    );
    let gw = TestGateway::start(d);
    for expected in ["MISS", "HIT"] {
        let r = get(&gw.url("/prod/x")).await;
        assert_eq!(r.status, 200, "{expected}");
        assert_eq!(r.x_cache(), expected);
        let lengths: Vec<_> = r.headers.get_all("content-length").iter().collect();
        assert_eq!(lengths, ["2"], "{expected}: one Content-Length");
        assert_eq!(r.header("x-hop"), "", "{expected}: named by Connection");
        assert_eq!(r.body, "ok");
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stale_while_revalidate_refreshes_with_a_304_in_the_background() {
    let o = origin();
    let d = PolicyDir::new(&o);
    http_stage(&d, "");
    let gw = TestGateway::start(d);
    let url = gw.url(
        "/prod/items/w?cache_control=max-age%3D1,%20stale-while-revalidate%3D60&header=X-Test-Header:v{count}",
    );
    let first = get(&url).await;
    assert_eq!(first.header("x-test-header"), "v1");
    // Once stale, the stored response is served at once and refreshed behind it...
    let mut stale = None;
    for _ in 0..250 {
        let r = get(&url).await;
        if r.x_cache() == "STALE" {
            stale = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stale = stale.expect("served stale within 5 s");
    assert_eq!(stale.header("x-test-header"), "v1");
    // ...by a conditional request: the 304's fields reach the entry, which is fresh again.
    let mut fresh = None;
    for _ in 0..250 {
        let r = get(&url).await;
        if r.header("cache-status").contains("; hit; ttl=") && r.header("x-test-header") == "v2" {
            fresh = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = fresh.expect("the background revalidation lands within 5 s");
    // The body (which holds the origin's request count) is the stored one: a 304, not a refetch.
    assert_eq!(fresh.body, first.body);
    assert_eq!(o.count("/items/w"), 2, "one fetch, one conditional request");
}
