//! http-mode (RFC 9111) stage caching: invalidation after unsafe methods (§4.4) and request
//! `Cache-Control` directives as revalidation (§5.2.1), against the example origin.

use std::time::Duration;

use reqwest::Method;

use crate::harness::{
    client, eventually, get, metric_sum, origin, send, PolicyDir, RedisServer, TestGateway,
};

/// A query that makes the origin's response fresh for a minute (http mode stores nothing
/// without freshness information). Part of every cached URI below: the key is the whole URI.
const FRESH: &str = "cache_control=max-age%3D60";

fn http_stage(d: &PolicyDir, extra: &str) {
    named_stage(d, "prod", extra);
}

/// Metrics are process-wide and tests run in parallel: a test that reads one uses its own
/// stage name (and base path).
fn named_stage(d: &PolicyDir, name: &str, extra: &str) {
    d.stage(
        name,
        &format!(
            "target = \"http://{{{{ORIGIN}}}}\"\n[cache]\nenabled = true\nmode = \"http\"\n{extra}"
        ),
    );
}

fn start(extra: &str) -> (cachegate_origin::Origin, TestGateway) {
    let o = origin();
    let d = PolicyDir::new(&o);
    http_stage(&d, extra);
    (o, TestGateway::start(d))
}

/// Caches `path` (a MISS, then a HIT) and returns the hit.
async fn cached(gw: &TestGateway, path: &str) -> crate::harness::Resp {
    get(&gw.url(path)).await;
    let hit = get(&gw.url(path)).await;
    assert_eq!(
        hit.x_cache(),
        "HIT",
        "{path}: {}",
        hit.header("cache-status")
    );
    hit
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("method")
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_target_uri() {
    let o = origin();
    let d = PolicyDir::new(&o);
    named_stage(&d, "unsafe", "");
    let gw = TestGateway::start(d);
    for m in ["POST", "PUT", "DELETE", "M-SEARCH", "PATCH"] {
        let path = format!("/unsafe/echo/{m}?{FRESH}");
        cached(&gw, &path).await;
        let r = send(client().request(method(m), gw.url(&path))).await;
        assert_eq!(r.status, 200, "{m}: {}", r.body);
        let next = get(&gw.url(&path)).await;
        assert_eq!(next.x_cache(), "MISS", "{m} did not invalidate");
        assert_eq!(o.count(&format!("/echo/{m}")), 3, "{m}");
    }
    // A safe method invalidates nothing.
    let path = format!("/unsafe/echo/safe?{FRESH}");
    cached(&gw, &path).await;
    send(client().request(Method::OPTIONS, gw.url(&path))).await;
    assert_eq!(get(&gw.url(&path)).await.x_cache(), "HIT");
    let text = gw.metrics().await;
    let n = metric_sum(
        &text,
        "cachegate_cache_invalidations_total",
        &["stage=\"unsafe\"", "source=\"unsafe_method\""],
    );
    assert_eq!(n, 5.0, "{text}");
}

#[tokio::test]
async fn a_failed_unsafe_request_invalidates_nothing() {
    let (o, gw) = start("");
    // A 500 with explicit freshness is stored in http mode; a POST answered 500 must not drop it.
    let path = format!("/prod/items/f?status=500&{FRESH}");
    cached(&gw, &path).await;
    let r = send(client().post(gw.url(&path))).await;
    assert_eq!(r.status, 500);
    assert_eq!(get(&gw.url(&path)).await.x_cache(), "HIT");
    // An unknown method the target refuses (405).
    let path = format!("/prod/items/g?{FRESH}");
    cached(&gw, &path).await;
    let r = send(client().request(method("M-SEARCH"), gw.url(&path))).await;
    assert_eq!(r.status, 405);
    assert_eq!(get(&gw.url(&path)).await.x_cache(), "HIT");
    assert_eq!(o.count("/items/g"), 2);
}

#[tokio::test]
async fn location_and_content_location_on_the_same_origin_are_invalidated() {
    let (o, gw) = start("");
    for id in ["2", "3", "4", "5"] {
        cached(&gw, &format!("/prod/items/{id}?{FRESH}")).await;
    }
    let r = send(client().post(gw.url("/prod/items/1")).query(&[
        ("header", format!("Location:/prod/items/2?{FRESH}")),
        // Relative to the request URI: /prod/items/3?…
        ("header", format!("Content-Location:3?{FRESH}")),
    ]))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        get(&gw.url(&format!("/prod/items/2?{FRESH}")))
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(
        get(&gw.url(&format!("/prod/items/3?{FRESH}")))
            .await
            .x_cache(),
        "MISS"
    );
    // Another origin is never invalidated; the same origin written absolutely is.
    let same = gw.url(&format!("/prod/items/5?{FRESH}"));
    let r = send(client().put(gw.url("/prod/items/1")).query(&[
        (
            "header",
            format!("Location:http://other.example/prod/items/4?{FRESH}"),
        ),
        ("header", format!("Content-Location:{same}")),
    ]))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        get(&gw.url(&format!("/prod/items/4?{FRESH}")))
            .await
            .x_cache(),
        "HIT"
    );
    assert_eq!(get(&same).await.x_cache(), "MISS");
    assert_eq!(o.count("/items/4"), 1);
    assert_eq!(o.count("/items/5"), 2);
}

#[tokio::test]
async fn aws_mode_keeps_entries_after_unsafe_methods() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    );
    let gw = TestGateway::start(d);
    cached(&gw, "/prod/echo/a").await;
    send(client().post(gw.url("/prod/echo/a"))).await;
    // AWS keys are not derived from the URI alone: unsafe methods invalidate nothing there.
    assert_eq!(get(&gw.url("/prod/echo/a")).await.x_cache(), "HIT");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsafe_method_invalidation_reaches_other_instances() {
    let redis = RedisServer::start();
    let o = origin();
    let instance = || {
        let d = PolicyDir::new(&o);
        d.with_redis(&redis.url(), "max_local_ttl_ms = 1000");
        http_stage(&d, "");
        TestGateway::start(d)
    };
    let (g1, g2) = (instance(), instance());
    let path = format!("/prod/items/s?{FRESH}");
    assert_eq!(get(&g1.url(&path)).await.x_cache(), "MISS");
    eventually(
        "instance 2 has the entry",
        Duration::from_secs(5),
        || async { get(&g2.url(&path)).await.x_cache() == "HIT" },
    )
    .await;
    let r = send(client().delete(g1.url(&path))).await;
    assert_eq!(r.status, 204);
    eventually(
        "instance 2 drops its copy",
        Duration::from_secs(5),
        || async { get(&g2.url(&path)).await.x_cache() == "MISS" },
    )
    .await;
}

/// An http-mode stage that also configures AWS token invalidation with `FAIL_WITH_403`: in
/// http mode that configuration must not apply to request directives.
const STRICT_TOKENS: &str = "[cache.invalidation]\nunauthorized = \"FAIL_WITH_403\"\n";

#[tokio::test]
async fn client_no_cache_and_max_age_0_revalidate_and_are_never_refused() {
    let o = origin();
    let d = PolicyDir::new(&o);
    named_stage(&d, "reval", STRICT_TOKENS);
    let gw = TestGateway::start(d);
    let path = format!("/reval/items/r?{FRESH}");
    let hit = cached(&gw, &path).await;
    assert_eq!(o.count("/items/r"), 1);
    let mut expected = 1;
    for (name, value) in [
        ("cache-control", "no-cache"),
        ("pragma", "no-cache"),
        ("cache-control", "max-age=0"),
        ("cache-control", "no-cache"),
    ] {
        let r = send(client().get(gw.url(&path)).header(name, value)).await;
        expected += 1;
        assert_eq!(r.status, 200, "{name}: {value}: {}", r.body);
        // A conditional request reached the target, which answered 304: served from the entry.
        assert_eq!(
            r.header("cache-status"),
            "cachegate; fwd=stale; fwd-status=304",
            "{name}: {value}"
        );
        assert_eq!(r.body, hit.body);
        assert_eq!(r.header("warning"), "");
        assert_eq!(o.count("/items/r"), expected, "{name}: {value}");
    }
    // A young entry satisfies max-age=3600: a hit, the target is not asked.
    let r = send(
        client()
            .get(gw.url(&path))
            .header("cache-control", "max-age=3600"),
    )
    .await;
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(o.count("/items/r"), expected);
    // The revalidated entry keeps serving everyone.
    assert_eq!(get(&gw.url(&path)).await.x_cache(), "HIT");
    let text = gw.metrics().await;
    let forced = metric_sum(
        &text,
        "cachegate_cache_invalidations_total",
        &[
            "stage=\"reval\"",
            "source=\"client\"",
            "outcome=\"revalidate\"",
        ],
    );
    assert_eq!(forced, 4.0, "{text}");
}

#[tokio::test]
async fn only_if_cached_on_a_cold_key_is_504_without_asking_the_target() {
    let (o, gw) = start("");
    let path = format!("/prod/items/cold?{FRESH}");
    let only = || {
        send(
            client()
                .get(gw.url(&path))
                .header("cache-control", "only-if-cached"),
        )
    };
    let r = only().await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(o.count("/items/cold"), 0);
    assert_eq!(get(&gw.url(&path)).await.x_cache(), "MISS");
    let r = only().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(o.count("/items/cold"), 1);
}

#[tokio::test]
async fn request_no_store_keeps_the_response_out_of_the_cache() {
    let (o, gw) = start("");
    let path = format!("/prod/items/ns?{FRESH}");
    let no_store = || {
        send(
            client()
                .get(gw.url(&path))
                .header("cache-control", "no-store"),
        )
    };
    let r = no_store().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "MISS");
    assert_eq!(
        r.header("cache-status"),
        "cachegate; fwd=uri-miss; detail=no_store"
    );
    assert_eq!(get(&gw.url(&path)).await.x_cache(), "MISS");
    assert_eq!(o.count("/items/ns"), 2);
    // A stored entry may still answer a no-store request.
    assert_eq!(no_store().await.x_cache(), "HIT");
    assert_eq!(o.count("/items/ns"), 2);
}

#[tokio::test]
async fn ignore_request_directives_turns_them_off() {
    let (o, gw) = start("ignore_request_directives = true\n");
    let path = format!("/prod/items/i?{FRESH}");
    cached(&gw, &path).await;
    for value in ["no-cache", "max-age=0", "only-if-cached"] {
        let r = send(client().get(gw.url(&path)).header("cache-control", value)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), "HIT", "{value}");
    }
    assert_eq!(o.count("/items/i"), 1);
}

#[tokio::test]
async fn in_http_mode_authorization_stays_a_credential_with_request_directives() {
    let (_o, gw) = start(STRICT_TOKENS);
    // In aws mode this request's Authorization would be the gateway's invalidation token
    // (removed, and the request cached); here it is the client's credential: forwarded, and
    // the request bypasses the cache as any authorized request does.
    let r = send(
        client()
            .get(gw.url(&format!("/prod/echo/auth?{FRESH}")))
            .header("cache-control", "no-cache")
            .bearer_auth("client-credential"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "BYPASS");
    assert_eq!(
        r.json()["headers"]["authorization"],
        "Bearer client-credential"
    );
}

#[tokio::test]
async fn every_vary_variant_of_the_target_goes() {
    let (o, gw) = start("");
    let url = gw.url(&format!("/prod/items/v?vary=x-lang&{FRESH}"));
    let lang = |l: &'static str| send(client().get(&url).header("x-lang", l));
    for l in ["en", "fr"] {
        lang(l).await;
        assert_eq!(lang(l).await.x_cache(), "HIT", "{l}");
    }
    let r = send(client().post(&url)).await;
    assert_eq!(r.status, 200);
    for l in ["en", "fr"] {
        assert_eq!(lang(l).await.x_cache(), "MISS", "{l}");
    }
    assert_eq!(o.count("/items/v"), 5);
}

#[tokio::test]
async fn max_stale_lets_a_client_take_a_stale_entry_for_itself() {
    // stale_if_error keeps the entry past its freshness.
    let (o, gw) = start("stale_if_error = 60\n");
    let path = "/prod/items/ms?cache_control=max-age%3D1";
    cached(&gw, path).await;
    // Waiting for the entry to go stale is the point here.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = send(
        client()
            .get(gw.url(path))
            .header("cache-control", "max-stale=60"),
    )
    .await;
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    assert_eq!(o.count("/items/ms"), 1);
    // Staler than max-stale=0 allows: checked with the target.
    send(
        client()
            .get(gw.url(path))
            .header("cache-control", "max-stale=0"),
    )
    .await;
    assert_eq!(o.count("/items/ms"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_client_revalidations_collapse_into_one() {
    let (o, gw) = start("");
    // The target takes 300 ms, so every request below arrives while the first one validates.
    let path = format!("/prod/items/c?delay_ms=300&{FRESH}");
    cached(&gw, &path).await;
    let url = gw.url(&path);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                send(client().get(&url).header("cache-control", "no-cache")).await
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "{}", r.header("cache-status"));
    }
    // One fill and one shared validation (a request that arrived after it finished may add one).
    let n = o.count("/items/c");
    assert!((2..=3).contains(&n), "{n} requests reached the target");
}
