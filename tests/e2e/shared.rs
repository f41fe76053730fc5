//! The shared Redis tier: several gateways share entries and invalidations, and Redis being
//! slow or down never fails a request.

use std::time::{Duration, Instant};

use crate::harness::{
    assert_same_answer, client, eventually, get, metric_sum, origin, send, PolicyDir, RedisServer,
    TestGateway, ADMIN_TOKEN,
};

const STAGE: &str =
    "target = \"http://{{ORIGIN}}\"\nresources = [\"/items/{id}\"]\n[cache]\nenabled = true\n";

fn gateway_with(o: &cachegate_origin::Origin, redis: &RedisServer, stage: &str) -> TestGateway {
    let d = PolicyDir::new(o);
    d.with_redis(&redis.url(), "max_local_ttl_ms = 1000");
    d.stage("prod", stage);
    TestGateway::start(d)
}

async fn x_cache(url: impl reqwest::IntoUrl) -> (u16, String, String) {
    let r = client().get(url).send().await.expect("request");
    let status = r.status().as_u16();
    let xc = r
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, xc, r.text().await.unwrap_or_default())
}

/// Waits until an (empty) Redis holds a key: writes are asynchronous, and another instance asked
/// too early would fetch, and keep, its own copy.
async fn reaches_redis(redis: &RedisServer) {
    eventually("an entry reaches Redis", Duration::from_secs(5), || async {
        redis.command(&["DBSIZE"]).trim() != ":0"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_cached_by_one_instance_is_a_hit_on_another() {
    let redis = RedisServer::start();
    let o = origin();
    let g1 = gateway_with(&o, &redis, STAGE);
    let g2 = gateway_with(&o, &redis, STAGE);
    let (_, xc, body) = x_cache(&g1.url("/prod/items/1")).await;
    assert_eq!(xc, "MISS");
    reaches_redis(&redis).await;
    eventually(
        "instance 2 hits the shared tier",
        Duration::from_secs(5),
        || async {
            let (_, xc, b) = x_cache(&g2.url("/prod/items/1")).await;
            xc == "HIT" && b == body
        },
    )
    .await;
    assert_eq!(o.count("/items/1"), 1);
    // Metrics are recorded after the response is sent: poll.
    eventually(
        "the shared hit is counted",
        Duration::from_secs(5),
        || async { g2.metrics().await.contains("tier=\"shared\"") },
    )
    .await;
    // The shared hit refilled instance 2's local tier.
    let (_, xc, _) = x_cache(&g2.url("/prod/items/1")).await;
    assert_eq!(xc, "HIT");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalidation_on_one_instance_reaches_the_other() {
    let redis = RedisServer::start();
    let o = origin();
    let g1 = gateway_with(&o, &redis, STAGE);
    let g2 = gateway_with(&o, &redis, STAGE);
    x_cache(&g1.url("/prod/items/2")).await;
    eventually(
        "instance 2 has the entry",
        Duration::from_secs(5),
        || async { x_cache(&g2.url("/prod/items/2")).await.1 == "HIT" },
    )
    .await;
    let r = client()
        .post(g1.admin("/stages/prod/cache/invalidate"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"path": "/items/2"}))
        .send()
        .await
        .expect("invalidate");
    assert_eq!(r.status(), 200);
    eventually(
        "instance 2 drops its copy",
        Duration::from_secs(5),
        || async { x_cache(&g2.url("/prod/items/2")).await.1 == "MISS" },
    )
    .await;
    // A flush on instance 2 reaches instance 1 too.
    x_cache(&g1.url("/prod/items/3")).await;
    let r = client()
        .post(g2.admin("/stages/prod/cache/flush"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("flush");
    assert_eq!(r.status(), 200);
    eventually(
        "instance 1 drops its copy",
        Duration::from_secs(5),
        || async { x_cache(&g1.url("/prod/items/3")).await.1 == "MISS" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_or_paused_never_fails_a_request() {
    let mut redis = RedisServer::start();
    let o = origin();
    let g = gateway_with(&o, &redis, STAGE);
    x_cache(&g.url("/prod/items/4")).await;
    // Paused: lookups hit the deadline (50 ms) and count as misses; requests still answer fast.
    redis.command(&["CLIENT", "PAUSE", "3000", "ALL"]);
    let started = Instant::now();
    for i in 0..5 {
        let (status, _, _) = x_cache(&g.url(&format!("/prod/items/p{i}"))).await;
        assert_eq!(status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "requests waited for a paused Redis: {:?}",
        started.elapsed()
    );
    // Killed: still every request answered.
    redis.kill();
    for i in 0..20 {
        let (status, _, _) = x_cache(&g.url(&format!("/prod/items/k{}", i % 4))).await;
        assert_eq!(status, 200);
    }
    let text = g.metrics().await;
    // Zero series exist from the start: an error shows as a count above zero.
    assert!(
        crate::harness::metric_sum(&text, "cachegate_redis_errors_total", &[]) > 0.0,
        "{text}"
    );
    // Restarted: the tier recovers (breaker probe, reconnect) and entries are shared again.
    redis.restart();
    let o2 = origin();
    let g2 = gateway_with(&o2, &redis, STAGE);
    eventually(
        "the restarted Redis serves shared hits again",
        Duration::from_secs(15),
        || async {
            let _ = x_cache(&g.url("/prod/items/after-restart")).await;
            x_cache(&g2.url("/prod/items/after-restart")).await.1 == "HIT"
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_lookup_timeout_turns_a_slow_shared_lookup_into_a_miss() {
    let redis = RedisServer::start();
    let o = origin();
    let d = PolicyDir::new(&o);
    // Redis's own deadline is long here, so the policy's CacheLookupTimeoutInSeconds decides.
    d.with_redis(&redis.url(), "lookup_timeout_ms = 10000");
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[[flows]]\nname = \"all\"\nrequest = [\"RC\"]\nresponse = [\"RC\"]\n",
    );
    d.write(
        "prod/RC.xml",
        r#"<ResponseCache name="RC"><CacheKey><KeyFragment ref="request.uri"/></CacheKey><CacheLookupTimeoutInSeconds>1</CacheLookupTimeoutInSeconds></ResponseCache>"#,
    );
    let g = TestGateway::start(d);
    redis.command(&["CLIENT", "PAUSE", "5000", "ALL"]);
    let started = Instant::now();
    let (status, xc, _) = x_cache(&g.url("/prod/items/slow-lookup")).await;
    let took = started.elapsed();
    assert_eq!((status, xc.as_str()), (200, "MISS"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "lookup took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_starts_and_serves_with_redis_down() {
    let o = origin();
    let d = PolicyDir::new(&o);
    let dead = crate::harness::free_port();
    d.with_redis(&format!("redis://127.0.0.1:{dead}"), "");
    d.stage("prod", STAGE);
    let g = TestGateway::start(d);
    let (status, xc, _) = x_cache(&g.url("/prod/items/5")).await;
    assert_eq!((status, xc.as_str()), (200, "MISS"));
    let (status, xc, _) = x_cache(&g.url("/prod/items/5")).await;
    assert_eq!(
        (status, xc.as_str()),
        (200, "HIT"),
        "the local tier still caches"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_entries_leave_no_plaintext_in_redis() {
    let redis = RedisServer::start();
    let o = origin();
    // 32 zero bytes, base64: a test key only.
    std::env::set_var(
        "CACHEGATE_TEST_CACHE_KEYS",
        "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    let d = PolicyDir::new(&o);
    d.with_redis(
        &redis.url(),
        "encryption_keys_env = \"CACHEGATE_TEST_CACHE_KEYS\"",
    );
    d.stage(
        "prod",
        &STAGE.replace("enabled = true", "enabled = true\nencrypted = true"),
    );
    let g = TestGateway::start(d);
    let (_, _, body) = x_cache(&g.url("/prod/items/secret-item-42")).await;
    assert!(body.contains("secret-item-42"));
    reaches_redis(&redis).await;
    let keys = redis.command(&["KEYS", "*"]);
    let mut saw_entry = false;
    for key in keys
        .lines()
        .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
    {
        let value = redis.command(&["GET", key]);
        assert!(
            !value.contains("secret-item-42"),
            "plaintext in Redis under {key}"
        );
        saw_entry |= key.contains(":v1:prod:");
    }
    assert!(saw_entry, "no entry key in Redis: {keys}");
}

/// Redis full (`maxmemory` reached under `noeviction`): writes fail with `OOM` and are counted,
/// every request is still answered, the local tier still serves hits, and once Redis has room
/// again entries are shared again.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_redis_never_fails_a_request() {
    let redis = RedisServer::start();
    redis.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]);
    let o = origin();
    let g1 = gateway_with(&o, &redis, STAGE);
    let g2 = gateway_with(&o, &redis, STAGE);
    for i in 0..20 {
        let (status, xc, _) = x_cache(&g1.url(&format!("/prod/items/full-{i}"))).await;
        assert_eq!((status, xc.as_str()), (200, "MISS"), "item {i}");
    }
    eventually(
        "OOM write errors are counted",
        Duration::from_secs(5),
        || async {
            g1.metrics().await.lines().any(|l| {
                l.starts_with("cachegate_redis_errors_total")
                    && l.contains("op=\"put\"")
                    && l.contains("kind=\"oom\"")
            })
        },
    )
    .await;
    assert_eq!(
        redis.command(&["DBSIZE"]).trim(),
        ":0",
        "an entry reached a full Redis"
    );
    // Nothing is shared, but nothing fails: the other instance goes to the origin.
    let (status, xc, _) = x_cache(&g2.url("/prod/items/full-1")).await;
    assert_eq!((status, xc.as_str()), (200, "MISS"));
    // Room again: entries are shared again. Each attempt uses a new key: a write queued while
    // Redis was full (instance 2's `full-1`) may land just now, so "Redis holds something" does
    // not prove that instance 1's entry is there, and an instance-2 miss stores its own copy.
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    let attempt = std::sync::atomic::AtomicUsize::new(0);
    let dbsize = || {
        redis
            .command(&["DBSIZE"])
            .trim()
            .trim_start_matches(':')
            .parse::<u64>()
            .unwrap_or(0)
    };
    eventually(
        "instance 2 hits the shared tier again",
        Duration::from_secs(10),
        || async {
            let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = format!("/prod/items/roomy-{n}");
            let before = dbsize();
            let (_, xc, body) = x_cache(&g1.url(&path)).await;
            assert_eq!(xc, "MISS");
            let deadline = Instant::now() + Duration::from_secs(2);
            while dbsize() <= before && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let (_, xc, b) = x_cache(&g2.url(&path)).await;
            xc == "HIT" && b == body
        },
    )
    .await;
}

/// A client's authorized refresh (`Cache-Control: max-age=0`) on one instance replaces the entry
/// everywhere: the other instance serves the new body within a bound that only the invalidation
/// message can meet (local copies would otherwise live for a minute here), trial after trial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refresh_on_one_instance_reaches_the_other_within_a_bound() {
    use sha2::Digest;
    const TOKEN: &str = "refresh-token-for-the-test";
    let digest: String = sha2::Sha256::digest(TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let redis = RedisServer::start();
    let o = origin();
    let stage = format!(
        "{STAGE}[[cache.invalidation.grants]]\nname = \"ops\"\ntoken_sha256 = \"{digest}\"\nresources = [\"GET/items/*\"]\n"
    );
    let start = || {
        let d = PolicyDir::new(&o);
        d.with_redis(&redis.url(), "max_local_ttl_ms = 60000");
        d.stage("prod", &stage);
        TestGateway::start(d)
    };
    let (g1, g2) = (start(), start());
    let mut slowest = Duration::ZERO;
    for trial in 0..10 {
        let path = format!("/prod/items/refresh-{trial}");
        let (_, xc, _) = x_cache(&g1.url(&path)).await;
        assert_eq!(xc, "MISS");
        reaches_redis(&redis).await;
        eventually(
            "instance 2 holds the entry",
            Duration::from_secs(5),
            || async { x_cache(&g2.url(&path)).await.1 == "HIT" },
        )
        .await;
        let refreshed = client()
            .get(g1.url(&path))
            .header("cache-control", "max-age=0")
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("refresh");
        let sent = std::time::Instant::now();
        assert_eq!(refreshed.status(), 200);
        let new_body = refreshed.text().await.expect("body");
        eventually(
            "instance 2 serves the new body",
            Duration::from_secs(5),
            || async { x_cache(&g2.url(&path)).await.2 == new_body },
        )
        .await;
        slowest = slowest.max(sent.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "an invalidation took {slowest:?} to reach the other instance"
    );
}

/// An instance that loses its invalidation subscription cannot know what it missed, so it drops
/// its local copies (REL-10): after the subscription is killed, the next hit comes from Redis
/// again although the local copy would have lived for a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_clears_the_local_tier() {
    let redis = RedisServer::start();
    let o = origin();
    let start = || {
        let d = PolicyDir::new(&o);
        d.with_redis(&redis.url(), "max_local_ttl_ms = 60000");
        // A stage name of its own: the metrics registry is shared by the process.
        d.stage("lossy", STAGE);
        TestGateway::start(d)
    };
    let (g1, g2) = (start(), start());
    let hits = |tier: &'static str| {
        let g2 = &g2;
        async move {
            crate::harness::metric_sum(
                &g2.metrics().await,
                "cachegate_cache_hits_total",
                &["stage=\"lossy\"", &format!("tier=\"{tier}\"")],
            )
        }
    };
    assert_eq!(x_cache(&g1.url("/lossy/items/1")).await.1, "MISS");
    reaches_redis(&redis).await;
    assert_eq!(x_cache(&g2.url("/lossy/items/1")).await.1, "HIT");
    assert_eq!(x_cache(&g2.url("/lossy/items/1")).await.1, "HIT");
    eventually(
        "one shared and one local hit",
        Duration::from_secs(5),
        || async { hits("shared").await == 1.0 && hits("local").await == 1.0 },
    )
    .await;
    redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    eventually(
        "the next hit comes from Redis again",
        Duration::from_secs(10),
        || async {
            assert_eq!(x_cache(&g2.url("/lossy/items/1")).await.1, "HIT");
            hits("shared").await >= 2.0
        },
    )
    .await;
    assert_eq!(o.count("/items/1"), 1);
}

/// The fill race (REL-10 b): an instance is still fetching a key from a slow target when another
/// instance invalidates it. The body that arrives afterwards was produced before the
/// invalidation, so it is answered but never served again: the next request anywhere is a miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_started_before_an_invalidation_is_not_stored() {
    let redis = RedisServer::start();
    let o = cachegate_origin::Origin::start_background(
        "127.0.0.1:0",
        cachegate_origin::OriginConfig::with_delay(Duration::from_millis(800)),
    )
    .expect("origin");
    let (g1, g2) = (
        gateway_with(&o, &redis, STAGE),
        gateway_with(&o, &redis, STAGE),
    );
    let url = g1.url("/prod/items/race");
    let fill = tokio::spawn(async move { x_cache(&url).await });
    eventually(
        "the fill reaches the target",
        Duration::from_secs(5),
        || async { o.count("/items/race") == 1 },
    )
    .await;
    let r = client()
        .post(g2.admin("/stages/prod/cache/invalidate"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"path": "/items/race"}))
        .send()
        .await
        .expect("invalidate");
    assert_eq!(r.status(), 200);
    let (status, xc, _) = fill.await.expect("fill");
    assert_eq!((status, xc.as_str()), (200, "MISS"));
    // Writes reach Redis in order: once a later entry is there, the older body's write is done.
    let (_, xc, _) = x_cache(&g1.url("/prod/items/barrier")).await;
    assert_eq!(xc, "MISS");
    let entries = || {
        redis
            .command(&["KEYS", "*"])
            .lines()
            .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
            .filter(|k| !k.contains(":purge") && !k.contains(":flush"))
            .count()
    };
    eventually(
        "the later entry reaches Redis",
        Duration::from_secs(5),
        || async { entries() >= 1 },
    )
    .await;
    // The older body may sit in Redis, but the purge record beside it makes it a miss. With the
    // target gone a miss cannot store anything new: only the older body could answer 200.
    o.shutdown();
    for (n, g) in [&g1, &g2].into_iter().enumerate() {
        let (status, xc, _) = x_cache(&g.url("/prod/items/race")).await;
        assert_ne!(
            (status, xc.as_str()),
            (200, "HIT"),
            "instance {}: the pre-invalidation body was served",
            n + 1
        );
    }
}

/// Requests that arrive while the first request for a cold key is at the target, and whose
/// shared-tier lookup is still waiting when that fetch completes, are answered from it: pingora
/// takes the cache lock right after a miss, so a lookup that missed before the fill (but returned
/// after it) would otherwise become a second fetch. Redis is paused to hold those lookups open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shared_lookup_does_not_become_a_second_fetch() {
    let redis = RedisServer::start();
    let o = cachegate_origin::Origin::start_background(
        "127.0.0.1:0",
        cachegate_origin::OriginConfig {
            delay: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .expect("origin");
    let d = PolicyDir::new(&o);
    // The invalidation subscription pings Redis every second; a ping caught by the pause must
    // outwait it (connect_timeout_ms), or the subscription counts as lost and clears the local
    // tier — by design, but not what this test is about.
    d.with_redis(
        &redis.url(),
        "lookup_timeout_ms = 3000\nconnect_timeout_ms = 3000",
    );
    d.stage("prod", STAGE);
    let g = TestGateway::start(d);
    let url = g.url("/prod/items/race");
    let first = tokio::spawn(x_cache(url.clone()));
    // The first request is at the target (its own lookups are done) ...
    eventually(
        "the first request reaches the target",
        Duration::from_secs(5),
        || async { o.count("/items/race") == 1 },
    )
    .await;
    // ... when Redis stops answering for longer than the target takes. (Not much longer: a
    // pause that the invalidation subscription notices clears the local tier, by design.)
    redis.command(&["CLIENT", "PAUSE", "1000", "ALL"]);
    let sent = Instant::now();
    let later: Vec<_> = (0..10)
        .map(|_| tokio::spawn(x_cache(url.clone())))
        .collect();
    assert_eq!(first.await.expect("first").1, "MISS");
    for l in later {
        let (status, xc, _) = l.await.expect("later");
        assert_eq!((status, xc.as_str()), (200, "HIT"));
    }
    // They were held by their Redis lookups past the first fetch (else this tested nothing).
    assert!(
        sent.elapsed() >= Duration::from_millis(600),
        "the later requests did not wait for Redis: {:?}",
        sent.elapsed()
    );
    assert_eq!(o.count("/items/race"), 1, "one fetch for one cold key");
}

/// A plain GET served from the shared tier (the proxy's fast path) answers exactly as pingora's
/// cache path does for the same entry (reached here with a non-matching `If-None-Match` on a
/// third instance), is counted as a shared hit; and a miss asks Redis once, not once on the fast
/// path and again in pingora's lookup.
#[tokio::test(flavor = "multi_thread")]
async fn shared_fast_hits_answer_as_pingora_does_and_a_miss_asks_redis_once() {
    let redis = RedisServer::start();
    let o = origin();
    // Metrics are process-wide: a stage name of its own keeps other tests' hits out.
    let start = |o: &cachegate_origin::Origin| {
        let d = PolicyDir::new(o);
        d.with_redis(&redis.url(), "");
        d.stage("sharedfast", STAGE);
        TestGateway::start(d)
    };
    let (g1, g2, g3) = (start(&o), start(&o), start(&o));
    let gets = redis.calls("get");
    let first = get(&g1.url("/sharedfast/items/5")).await;
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(
        redis.calls("get") - gets,
        1,
        "one Redis lookup for one miss"
    );
    reaches_redis(&redis).await;

    let fast = get(&g2.url("/sharedfast/items/5")).await;
    let slow = send(
        client()
            .get(g3.url("/sharedfast/items/5"))
            .header("if-none-match", "\"not-this-one\""),
    )
    .await;
    assert_eq!((fast.x_cache(), slow.x_cache()), ("HIT", "HIT"));
    assert_eq!(fast.body, first.body);
    assert_same_answer(&fast, &slow);
    assert_eq!(o.count("/items/5"), 1);
    // (The registry is process-wide: one scrape counts both instances.)
    let shared_hits = || async {
        metric_sum(
            &g2.metrics().await,
            "cachegate_cache_hits_total",
            &["stage=\"sharedfast\"", "tier=\"shared\""],
        )
    };
    eventually(
        "both shared hits counted",
        Duration::from_secs(5),
        || async { shared_hits().await >= 2.0 },
    )
    .await;
    assert_eq!(shared_hits().await, 2.0);
    // The fast path refilled instance 2's local tier: its next hit is local.
    assert_eq!(get(&g2.url("/sharedfast/items/5")).await.x_cache(), "HIT");
}

/// A gateway of environment `test` (its default cache and a named cache `tokens`) sharing
/// `redis`, with two stage.toml API proxies: `issuer` stores the `x-token` it is sent in both
/// caches with Global scope, `consumer` reads both back into `x-token` / `x-named`. Local copies
/// live a minute, so only the shared tier and its messages can make instances agree sooner.
fn environment_gateway(o: &cachegate_origin::Origin, redis: &RedisServer) -> TestGateway {
    let d = PolicyDir::new(o);
    d.write(
        "gateway.toml",
        &format!(
            "environment = \"test\"\n[[caches]]\nname = \"tokens\"\n[server]\nlisten = \"127.0.0.1:{}\"\nthreads = 1\nwork_stealing = true\ngrace_period_secs = 0\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            d.proxy_port, d.admin_port
        ),
    );
    d.with_redis(&redis.url(), "max_local_ttl_ms = 60000");
    let policy = |kind: &str, name: &str, resource: &str, extra: &str| {
        format!(
            r#"<{kind} name="{name}">{resource}<Scope>Global</Scope><CacheKey><KeyFragment>gcp-token</KeyFragment></CacheKey>{extra}</{kind}>"#
        )
    };
    let named = "<CacheResource>tokens</CacheResource>";
    let source = "<ExpirySettings><TimeoutInSeconds>300</TimeoutInSeconds></ExpirySettings><Source>request.header.x-token</Source>";
    d.stage(
        "issuer",
        "target = \"http://{{ORIGIN}}\"\n[preflow]\nrequest = [\"PC\", \"PC-named\"]\n",
    );
    d.write("issuer/PC.xml", &policy("PopulateCache", "PC", "", source));
    d.write(
        "issuer/PC-named.xml",
        &policy("PopulateCache", "PC-named", named, source),
    );
    d.stage(
        "consumer",
        "target = \"http://{{ORIGIN}}\"\n[preflow]\nrequest = [\"LC\", \"LC-named\"]\n[postflow]\nresponse = [\"AM-show\"]\n",
    );
    d.write(
        "consumer/LC.xml",
        &policy("LookupCache", "LC", "", "<AssignTo>token</AssignTo>"),
    );
    d.write(
        "consumer/LC-named.xml",
        &policy(
            "LookupCache",
            "LC-named",
            named,
            "<AssignTo>named</AssignTo>",
        ),
    );
    d.write(
        "consumer/AM-show.xml",
        r#"<AssignMessage name="AM-show"><Set><Headers><Header name="x-token">{token}</Header><Header name="x-named">{named}</Header></Headers></Set><IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables></AssignMessage>"#,
    );
    TestGateway::start(d)
}

/// What `consumer` on `gw` reads from the default and the named cache.
async fn consumer_tokens(gw: &TestGateway) -> (String, String) {
    let r = send(client().get(gw.url("/consumer/echo/x"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    (
        r.header("x-token").to_owned(),
        r.header("x-named").to_owned(),
    )
}

/// Environment caches are shared through Redis like a stage's: a Global-scope entry one API
/// proxy stores through instance 1 is read by another API proxy through instance 2, and flushing
/// an environment cache on instance 1's admin API empties it on instance 2 — that cache only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_caches_are_shared_and_flushed_across_instances() {
    let redis = RedisServer::start();
    let o = origin();
    let (g1, g2) = (
        environment_gateway(&o, &redis),
        environment_gateway(&o, &redis),
    );
    assert_eq!(consumer_tokens(&g2).await, (String::new(), String::new()));

    let issued = send(
        client()
            .get(g1.url("/issuer/echo/x"))
            .header("x-token", "secret-1"),
    )
    .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    let both = ("secret-1".to_owned(), "secret-1".to_owned());
    eventually(
        "instance 2's consumer reads what instance 1's issuer stored",
        Duration::from_secs(5),
        || async { consumer_tokens(&g2).await == both },
    )
    .await;

    let flush = |path: &'static str| send(client().post(g1.admin(path)).bearer_auth(ADMIN_TOKEN));
    let r = flush("/environment/cache/flush").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["environment"], "test", "{}", r.body);
    eventually(
        "the flush of the default cache reaches instance 2",
        Duration::from_secs(5),
        || async { consumer_tokens(&g2).await.0.is_empty() },
    )
    .await;
    // The named cache is another cache: untouched.
    assert_eq!(consumer_tokens(&g2).await.1, "secret-1");
    let r = flush("/environment/caches/tokens/flush").await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(
        "the flush of the named cache reaches instance 2",
        Duration::from_secs(5),
        || async { consumer_tokens(&g2).await == (String::new(), String::new()) },
    )
    .await;
    // And nothing brings the entries back from Redis.
    assert_eq!(consumer_tokens(&g2).await, (String::new(), String::new()));
    assert_eq!(consumer_tokens(&g1).await, (String::new(), String::new()));
    // The environment's caches are labelled as such in the metrics, never as a stage.
    let metrics = g1.metrics().await;
    for series in [
        "cachegate_environment_cache_local_bytes{cache=\"\",environment=\"test\"}",
        "cachegate_environment_cache_local_entries{cache=\"tokens\",environment=\"test\"}",
        "cachegate_cache_local_entries{stage=\"issuer\"}",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
    assert!(!metrics.contains("stage=\"@"), "{metrics}");
}
