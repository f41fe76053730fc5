//! Hostile inputs and failing parts against a caching stage: deception paths never share a
//! credentialed response (SEC-07), CR/LF in a request target never becomes a header (SEC-12), a
//! client leaving mid-body never leaves a partial entry (SEC-15), a target that is down is never
//! cached and releases everyone waiting (REL-15), `Age` follows time (REL-16), and the request
//! counters add up (REL-18).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cachegate_origin::{Origin, OriginConfig};

use crate::harness::{
    client, eventually, free_port, get, metric_sum, origin, send, PolicyDir, TestGateway,
};

/// A gateway whose `prod` stage caches (with `extra` in its `[cache]`) in front of `o`.
fn cached(o: &Origin, extra: &str) -> TestGateway {
    let d = PolicyDir::new(o);
    d.stage(
        "prod",
        &format!("target = \"http://{{{{ORIGIN}}}}\"\n[cache]\nenabled = true\n{extra}"),
    );
    TestGateway::start(d)
}

/// Writes `bytes` on a fresh connection and reads until the gateway closes it.
fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(bytes).expect("write");
    let mut got = Vec::new();
    // A reset after the answer is as good as a close here.
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// The header section of a raw response, lower-cased.
fn head(text: &str) -> String {
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Web cache deception: a victim with credentials asks for its private page under names that
/// look static (`/user/x.css`, `;x.css`, `%3b`, `%23`, `/.js`); an attacker without credentials
/// then asks for the same names and never gets the victim's response.
#[tokio::test]
async fn deception_paths_never_share_a_credentialed_response() {
    let o = origin();
    let gw = cached(&o, "");
    let paths = [
        "/prod/echo/user/x.css",
        "/prod/echo/user;x.css",
        "/prod/echo/user%3bx.css",
        "/prod/echo/user%23.css",
        "/prod/echo/user/.js",
    ];
    let credentials = [
        ("authorization", "Bearer victim-canary-token"),
        ("cookie", "sid=victim-canary-cookie"),
    ];
    for (name, value) in credentials {
        for path in paths {
            let victim = send(client().get(gw.url(path)).header(name, value)).await;
            assert_eq!(victim.status, 200, "{path}");
            assert!(
                victim.body.contains("victim-canary"),
                "{path}: {}",
                victim.body
            );
            assert_eq!(victim.x_cache(), "BYPASS", "{path} with {name}");
            let attacker = get(&gw.url(path)).await;
            assert!(
                !attacker.body.contains("victim-canary"),
                "{path}: the attacker got the victim's response"
            );
        }
    }
}

/// CR/LF smuggled into the path or query, encoded or raw, never becomes a response or request
/// header: it stays data or is refused.
#[test]
fn crlf_in_the_request_target_never_becomes_a_header() {
    let o = origin();
    let gw = cached(&o, "");
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let encoded = raw(
        &addr,
        b"GET /prod/echo/a%0d%0aX-Injected:%20yes?q=%0d%0aX-Q:%20yes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(encoded.starts_with("HTTP/1.1 200 "), "{encoded:?}");
    let h = head(&encoded);
    assert!(
        !h.contains("\r\nx-injected") && !h.contains("\r\nx-q"),
        "{encoded:?}"
    );
    // The origin saw no such request header either (its echo lists what it received).
    assert!(!encoded.contains("\"x-injected\""), "{encoded:?}");
    // A raw CR is percent-encoded by Pingora's parser (it becomes data); a raw LF ends the
    // request line early and is refused. Neither is ever a header.
    for target in [
        "/prod/echo/a\rX-Injected: yes",
        "/prod/echo/a\nX-Injected: yes",
    ] {
        let text = raw(
            &addr,
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let h = head(&text);
        assert!(
            h.starts_with("http/1.1 400 ")
                || (h.starts_with("http/1.1 200 ")
                    && text.contains("\"path\":\"/echo/a%0DX-Injected:%20yes\"")),
            "{target:?}: {text:?}"
        );
        assert!(!h.contains("\r\nx-injected"), "{target:?}: {text:?}");
        assert!(!text.contains("\"x-injected\""), "{target:?}: {text:?}");
    }
}

/// Status, `X-Cache` and body length of a GET read whole.
async fn fetch_len(url: &str) -> (u16, String, usize) {
    let r = client().get(url).send().await.expect("request");
    let status = r.status().as_u16();
    let x_cache = r
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        status,
        x_cache,
        r.bytes().await.expect("the whole body").len(),
    )
}

/// A client that goes away after 1 MiB of a 4 MiB cacheable response never leaves a partial
/// entry behind: every later answer is the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_body_never_leaves_a_partial_entry() {
    const SIZE: usize = 4 * 1024 * 1024;
    let o = origin();
    let gw = cached(
        &o,
        "max_object_size = \"8MiB\"\nkey_parameters = [\"method.request.querystring.bytes\"]\n",
    );
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let path = format!("/prod/big?bytes={SIZE}");
    {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .expect("write");
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0;
        while read < 1024 * 1024 {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "closed early");
            read += n;
        }
        // Dropped here, mid-body.
    }
    for round in 0..5 {
        let (status, x_cache, len) = fetch_len(&gw.url(&path)).await;
        assert_eq!(status, 200);
        assert_eq!(len, SIZE, "round {round} ({x_cache}): a partial body");
    }
}

/// A cached stage whose target is down answers every concurrent request with a fast 502, stores
/// none of them (no waiter is left behind the cache lock), and caches normally once the target is
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_down_is_never_cached_and_recovery_works() {
    let port = free_port();
    let placeholder = origin();
    let d = PolicyDir::new(&placeholder);
    d.stage(
        "prod",
        &format!("target = \"http://127.0.0.1:{port}\"\n[cache]\nenabled = true\n"),
    );
    let gw = TestGateway::start(d);
    let url = gw.url("/prod/items/down");
    let c = client();
    let started = Instant::now();
    let tasks: Vec<_> = (0..10).map(|_| tokio::spawn(send(c.get(&url)))).collect();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 502, "{}", r.body);
    }
    // Waiters held until the 5 s lock timeout would show here.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "the 502s took {took:?}");
    let back = Origin::start_background(&format!("127.0.0.1:{port}"), OriginConfig::default())
        .expect("the target comes back on its port");
    let first = get(&url).await;
    assert_eq!((first.status, first.x_cache()), (200, "MISS"));
    let second = get(&url).await;
    assert_eq!((second.status, second.x_cache()), (200, "HIT"));
    assert_eq!(second.body, first.body);
    assert_eq!(back.count("/items/down"), 1);
}

/// `Age` on a hit is the entry's age in whole seconds: 0 at first, then growing with time, never
/// ahead of it.
#[tokio::test]
async fn age_grows_with_time() {
    let o = origin();
    let gw = cached(&o, "");
    let url = gw.url("/prod/items/aging");
    let stored = Instant::now();
    assert_eq!(get(&url).await.x_cache(), "MISS");
    let hit = get(&url).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("age"), "0");
    eventually("Age reaches 1", Duration::from_secs(5), || async {
        let r = get(&url).await;
        let age: u64 = r.header("age").parse().expect("Age in whole seconds");
        assert!(
            age <= stored.elapsed().as_secs() + 1,
            "Age {age} is ahead of time"
        );
        age >= 1
    })
    .await;
}

/// Every request on a stage is counted once, and as exactly one of hit, miss or bypass: the
/// request counter equals the per-outcome latency counts, and the hit and miss counters match
/// theirs.
#[tokio::test]
async fn request_counters_reconcile() {
    let o = origin();
    let d = PolicyDir::new(&o);
    // A stage name no other test uses: the metrics registry is shared by the process.
    d.stage(
        "reconcile",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    );
    let gw = TestGateway::start(d);
    for id in ["a", "b", "c"] {
        for _ in 0..3 {
            assert_eq!(
                get(&gw.url(&format!("/reconcile/items/{id}"))).await.status,
                200
            );
        }
    }
    for _ in 0..2 {
        let r = send(client().post(gw.url("/reconcile/items/a")).body("{}")).await;
        assert_eq!(r.x_cache(), "BYPASS");
    }
    const STAGE: &str = "stage=\"reconcile\"";
    let total = 11.0;
    let hist = "cachegate_request_duration_seconds_count";
    eventually(
        "all requests are counted",
        Duration::from_secs(5),
        || async { metric_sum(&gw.metrics().await, "cachegate_requests_total", &[STAGE]) >= total },
    )
    .await;
    let m = gw.metrics().await;
    let requests = metric_sum(&m, "cachegate_requests_total", &[STAGE]);
    let hits = metric_sum(&m, "cachegate_cache_hits_total", &[STAGE]);
    let misses = metric_sum(&m, "cachegate_cache_misses_total", &[STAGE]);
    let by_outcome = |cache: &str| metric_sum(&m, hist, &[STAGE, &format!("cache=\"{cache}\"")]);
    assert_eq!(requests, total, "{m}");
    assert_eq!((hits, misses), (6.0, 3.0), "{m}");
    assert_eq!(by_outcome("hit"), hits);
    assert_eq!(by_outcome("miss"), misses);
    assert_eq!(by_outcome("bypass"), 2.0);
    assert_eq!(metric_sum(&m, hist, &[STAGE]), requests);
}

/// The body of a `Connection: close` response.
fn body_of(text: &str) -> serde_json::Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Path variants that differ in case, `;` parameters, encoded bytes, separators, dot segments or a
/// trailing `?` are keyed exactly as they are forwarded: whatever a variant is answered with —
/// fresh or from the cache — is what the target returns for that variant's own forwarded path.
#[test]
fn path_variants_are_keyed_as_they_are_forwarded() {
    let o = origin();
    let gw = cached(&o, "");
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let fetch = |target: &str, extra: &str| {
        let text = raw(
            &addr,
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n")
                .as_bytes(),
        );
        let status = text.split(' ').nth(1).unwrap_or("").to_owned();
        (status, head(&text), body_of(&text))
    };
    let variants = [
        "/prod/echo/case",
        "/prod/echo/Case",
        "/prod/echo/CASE",
        "/prod/echo/case;x",
        "/prod/echo/case;x=1",
        "/prod/echo/case%3bx",
        "/prod/echo/case%00",
        "/prod/echo/case%2fx",
        "/prod/echo/case/x",
        "/prod/echo/case?",
        "/prod/echo/case%3f",
        "/prod/echo/%63ase",
        "/prod/echo/case/",
        "/prod/echo//case",
        "/prod/echo/./case",
        "/prod/echo/x/../case",
    ];
    for round in 0..2 {
        for v in variants {
            // What the target gets for this variant, asked past the cache (a Cookie bypasses it).
            let (status, _, direct) = fetch(v, "Cookie: probe=1\r\n");
            if status == "400" {
                continue;
            }
            assert_eq!(status, "200", "{v}");
            let (status, h, cached) = fetch(v, "");
            assert_eq!(status, "200", "{v}");
            assert_eq!(
                cached["path"], direct["path"],
                "round {round}: {v} was answered with another path's response ({h:?})"
            );
            if round == 1 {
                assert!(h.contains("x-cache: hit"), "{v} was not cached: {h:?}");
            }
        }
    }
}

/// Client `Cache-Control` directives cannot make the cache serve what it would not: `max-stale`
/// does not bring back an expired entry, `min-fresh` and `only-if-cached` change nothing; and a
/// target's `s-maxage=0` (over `max-age=60`) makes every reuse a revalidation in the RFC 9111
/// mode.
#[tokio::test]
async fn client_directives_cannot_extend_freshness() {
    let o = origin();
    let gw = cached(&o, "ttl = 1\n");
    let url = gw.url("/prod/items/fresh");
    assert_eq!(get(&url).await.x_cache(), "MISS");
    for directive in ["min-fresh=100", "only-if-cached", "max-stale=100"] {
        let r = send(client().get(&url).header("cache-control", directive)).await;
        assert_eq!((r.status, r.x_cache()), (200, "HIT"), "{directive}");
    }
    // Past the 1 s TTL, max-stale does not make the expired entry acceptable.
    eventually("the entry expires", Duration::from_secs(5), || async {
        let r = send(client().get(&url).header("cache-control", "max-stale=3600")).await;
        r.x_cache() == "MISS"
    })
    .await;

    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\nmode = \"http\"\nttl = 300\n",
    );
    let gw = TestGateway::start(d);
    let url = gw.url("/prod/items/shared?cache_control=max-age%3D60%2C%20s-maxage%3D0");
    // Stored only to be revalidated: every request is checked with the target.
    for n in 1..=3 {
        let r = get(&url).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            o.count("/items/shared"),
            n,
            "s-maxage=0 was reused unchecked: {}",
            r.header("cache-status")
        );
    }
}

/// Huge bodies (SEC-15): a 50 MB response streams through whole and is not stored (over the
/// object limit), and 50 simultaneous requests for one cold 4 MiB body all get all of it from a
/// single upstream request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bodies_stream_whole_and_concurrent_misses_share_one_fetch() {
    const HUGE: usize = 50 * 1000 * 1000;
    const BIG: usize = 4 * 1024 * 1024;
    let o = origin();
    let gw = cached(
        &o,
        "max_object_size = \"8MiB\"\nkey_parameters = [\"method.request.querystring.bytes\"]\n",
    );
    for round in 0..2 {
        let (_, x_cache, len) = fetch_len(&gw.url(&format!("/prod/big?bytes={HUGE}"))).await;
        assert_eq!(len, HUGE, "round {round}");
        assert_ne!(
            x_cache, "HIT",
            "round {round}: a body over the limit was stored"
        );
    }
    assert_eq!(o.count("/big"), 2);
    let c = client();
    let url = gw.url(&format!("/prod/big?bytes={BIG}"));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let req = c.get(&url);
            tokio::spawn(async move {
                let r = req.send().await.expect("request");
                r.bytes().await.expect("body").len()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), BIG);
    }
    assert_eq!(
        o.count("/big"),
        3,
        "the 50 cold requests were not collapsed"
    );
}

/// A target that resets the connection mid-body (after announcing a longer Content-Length) never
/// leaves a partial entry: the client sees the failure, and the next request goes back to the
/// target instead of being served the truncated body.
#[tokio::test]
async fn a_target_resetting_mid_body_leaves_nothing_stored() {
    let o = origin();
    let gw = cached(&o, "");
    for round in 1..=2 {
        let r = client().get(gw.url("/prod/reset-mid-body")).send().await;
        let complete = match r {
            Ok(r) => r.bytes().await.is_ok(),
            Err(_) => false,
        };
        assert!(!complete, "round {round}: a truncated body looked complete");
        assert_eq!(
            o.count("/reset-mid-body"),
            round,
            "round {round}: served from the cache"
        );
    }
}
