//! Tests of the whole tier through its API: most run against a real `redis-server` (on PATH)
//! and exercise connection, breaker, tasks and wire formats together. Tests of one file's code
//! alone sit next to it.

use super::codec::{duration_ms, encode_entry, unix_ms};
use super::tasks::SUBSCRIPTION_PING;
use super::test_support::{
    dropped, entry, eventually, free_port, next_event, now_ms, sealer, settings, sk, RedisServer,
};
use super::*;

#[test]
fn urls_are_redacted() {
    assert_eq!(
        redact_url("redis://:hunter2@h:6379/0"),
        "redis://***@h:6379/0"
    );
    assert_eq!(redact_url("rediss://u:p@h/"), "rediss://***@h/");
    assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    assert_eq!(redact_url("redis://h/?password=x"), "redis://h/?***");
}

// ---- against redis-server ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn put_get_ttl_expiry_and_delete() {
    let server = RedisServer::start();
    let tier = SharedTier::connect(&settings(&server.url()), 1).await;
    assert!(tier.is_connected());
    let mut raw = server.client().await;
    let dl = Duration::from_millis(500);

    assert!(tier.get("s", &sk(1), false, dl).await.is_none());
    let e = entry("hello", Duration::from_secs(60));
    tier.put("s", sk(1), Arc::new(e.clone()), false);
    let got = eventually("the write", Duration::from_secs(5), || {
        let (tier, k) = (&tier, sk(1));
        async move { tier.get("s", &k, false, dl).await }
    })
    .await;
    assert_eq!(got, e);

    // SET … PX: a TTL no longer than the entry's life.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(tier.entry_key("s", &sk(1)))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "pttl {pttl}");
    // Another stage, another key.
    assert!(tier.get("t", &sk(1), false, dl).await.is_none());
    // Stored plaintext is not handed to a caller that asked for encryption.
    assert!(tier.get("s", &sk(1), true, dl).await.is_none());

    // Already expired: never written.
    let mut old = entry("old", Duration::from_secs(1));
    old.expires_at = SystemTime::now() - Duration::from_secs(1);
    tier.put("s", sk(2), Arc::new(old.clone()), false);
    // An entry whose timestamp says expired (another instance's clock) is a miss.
    let rkey3 = tier.entry_key("s", &sk(3));
    let _: () = redis::cmd("SET")
        .arg(&rkey3)
        .arg(encode_entry(&old).unwrap())
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(tier.get("s", &sk(3), false, dl).await.is_none());
    // A short-lived entry disappears.
    tier.put(
        "s",
        sk(4),
        Arc::new(entry("short", Duration::from_millis(300))),
        false,
    );
    eventually("the short write", Duration::from_secs(5), || {
        let (tier, k) = (&tier, sk(4));
        async move { tier.get("s", &k, false, dl).await }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(tier.get("s", &sk(4), false, dl).await.is_none());
    let exists: i64 = redis::cmd("EXISTS")
        .arg(tier.entry_key("s", &sk(2)))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(exists, 0);

    // Garbage is a miss and gets unlinked.
    let rkey5 = tier.entry_key("s", &sk(5));
    let _: () = redis::cmd("SET")
        .arg(&rkey5)
        .arg(b"\x01garbage")
        .query_async(&mut raw)
        .await
        .unwrap();
    let before = METRICS
        .redis_errors
        .with_label_values(&["get", "decode"])
        .get();
    assert!(tier.get("s", &sk(5), false, dl).await.is_none());
    assert!(
        METRICS
            .redis_errors
            .with_label_values(&["get", "decode"])
            .get()
            > before
    );
    eventually("the unlink", Duration::from_secs(5), || {
        let mut raw = raw.clone();
        let k = rkey5.clone();
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg(k)
                .query_async(&mut raw)
                .await
                .unwrap();
            (n == 0).then_some(())
        }
    })
    .await;

    tier.delete("s", &[sk(1), sk(9)]).await.unwrap();
    assert!(tier.get("s", &sk(1), false, dl).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_values_hold_no_plaintext_and_are_bound_to_their_key() {
    let server = RedisServer::start();
    let options = SharedOptions {
        sealer: Some(sealer()),
        ..SharedOptions::default()
    };
    let tier = SharedTier::connect_with(&settings(&server.url()), 1, options).await;
    let mut raw = server.client().await;
    let dl = Duration::from_millis(500);
    let canary = "CANARY-secret-user-data-0123456789";
    let e = entry(canary, Duration::from_secs(60));
    tier.put("s", sk(1), Arc::new(e.clone()), true);
    let got = eventually("the write", Duration::from_secs(5), || {
        let (tier, k) = (&tier, sk(1));
        async move { tier.get("s", &k, true, dl).await }
    })
    .await;
    assert_eq!(got, e);

    let rkey = tier.entry_key("s", &sk(1));
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&rkey)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(stored[0], SEALED_MARKER);
    let needle = &canary.as_bytes()[..12];
    assert!(
        !stored.windows(needle.len()).any(|w| w == needle),
        "plaintext in Redis"
    );
    assert!(
        !stored.windows(9).any(|w| w == b"meta-blob"),
        "meta in plaintext"
    );
    // Never decoded as plaintext.
    assert!(tier.get("s", &sk(1), false, dl).await.is_none());

    // Moved to another key: the seal does not open; a miss, and the copy is unlinked.
    let other = tier.entry_key("s", &sk(2));
    let _: () = redis::cmd("SET")
        .arg(&other)
        .arg(&stored)
        .query_async(&mut raw)
        .await
        .unwrap();
    let before = METRICS
        .redis_errors
        .with_label_values(&["get", "open"])
        .get();
    assert!(tier.get("s", &sk(2), true, dl).await.is_none());
    assert!(
        METRICS
            .redis_errors
            .with_label_values(&["get", "open"])
            .get()
            > before
    );
    eventually("the unlink", Duration::from_secs(5), || {
        let mut raw = raw.clone();
        let k = other.clone();
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg(k)
                .query_async(&mut raw)
                .await
                .unwrap();
            (n == 0).then_some(())
        }
    })
    .await;
    // The original still opens.
    assert!(tier.get("s", &sk(1), true, dl).await.is_some());

    // A tier without keys drops encrypted writes rather than storing plaintext.
    let plain_tier = SharedTier::connect(&settings(&server.url()), 2).await;
    let before = dropped("no_key");
    plain_tier.put("s", sk(3), Arc::new(e.clone()), true);
    assert!(dropped("no_key") > before);
    assert!(plain_tier.get("s", &sk(1), true, dl).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_redis_is_a_fast_miss() {
    let server = RedisServer::start();
    let tier = SharedTier::connect(&settings(&server.url()), 1).await;
    let dl = Duration::from_millis(50);
    tier.put(
        "s",
        sk(1),
        Arc::new(entry("x", Duration::from_secs(60))),
        false,
    );
    eventually("the write", Duration::from_secs(5), || {
        let (tier, k) = (&tier, sk(1));
        async move { tier.get("s", &k, false, dl).await }
    })
    .await;
    let mut raw = server.client().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(800)
        .arg("ALL")
        .query_async(&mut raw)
        .await
        .unwrap();
    let start = Instant::now();
    assert!(tier.get("s", &sk(1), false, dl).await.is_none());
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(400),
        "get took {took:?} during the pause"
    );
    // purge_times honours its deadline too.
    let start = Instant::now();
    assert!(tier.purge_times("s", &[[1; 16]], dl).await.is_none());
    assert!(start.elapsed() < Duration::from_millis(400));
    // After the pause it works again (two timeouts do not open the breaker).
    eventually("the end of the pause", Duration::from_secs(5), || {
        let (tier, k) = (&tier, sk(1));
        async move { tier.get("s", &k, false, dl).await }
    })
    .await;
    assert!(!tier.breaker_open());
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_opens_the_breaker_loses_the_subscription_and_recovers() {
    let mut server = RedisServer::start();
    let port = server.port;
    let tier = SharedTier::connect(&settings(&server.url()), 1).await;
    assert!(tier.is_connected());
    let mut events = tier.subscribe();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)).await,
        SubscriptionEvent::Subscribed
    );
    let lost_before = METRICS.redis_subscription_lost.get();

    server.kill();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)).await,
        SubscriptionEvent::Lost
    );
    assert!(METRICS.redis_subscription_lost.get() > lost_before);

    let dl = Duration::from_millis(50);
    for _ in 0..(BREAKER_THRESHOLD * 3) {
        let start = Instant::now();
        assert!(tier.get("s", &sk(1), false, dl).await.is_none());
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "slow miss: {:?}",
            start.elapsed()
        );
        if tier.breaker_open() {
            break;
        }
    }
    assert!(tier.breaker_open(), "breaker still closed");
    assert!(!tier.is_connected());
    assert!(METRICS.redis_breaker_open.get() >= 1);
    // While open: instant misses, dropped writes.
    let start = Instant::now();
    assert!(tier.get("s", &sk(1), false, dl).await.is_none());
    assert!(tier.purge_times("s", &[], dl).await.is_none());
    let before = dropped("breaker_open");
    for i in 0..100u8 {
        tier.put(
            "s",
            sk(i),
            Arc::new(entry("x", Duration::from_secs(60))),
            false,
        );
    }
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "open breaker was slow: {:?}",
        start.elapsed()
    );
    assert!(dropped("breaker_open") >= before + 100);
    assert!(matches!(
        tier.record_flush("s", SystemTime::now()).await,
        Err(SharedError::BreakerOpen)
    ));

    // Nothing but `Subscribed` follows a `Lost`.
    let _server = RedisServer::start_on(port);
    eventually("the breaker to close", Duration::from_secs(10), || async {
        tier.is_connected().then_some(())
    })
    .await;
    assert!(!tier.breaker_open());
    assert_eq!(
        next_event(&mut events, Duration::from_secs(10)).await,
        SubscriptionEvent::Subscribed
    );
    let e = entry("back", Duration::from_secs(60));
    tier.put("s", sk(1), Arc::new(e.clone()), false);
    let got = eventually("a write after recovery", Duration::from_secs(5), || {
        let (tier, k) = (&tier, sk(1));
        async move { tier.get("s", &k, false, Duration::from_millis(500)).await }
    })
    .await;
    assert_eq!(got, e);
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_without_redis_and_connects_later() {
    let port = free_port();
    let start = Instant::now();
    let tier = SharedTier::connect(&settings(&format!("redis://127.0.0.1:{port}/")), 1).await;
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "connect blocked {:?}",
        start.elapsed()
    );
    assert!(!tier.is_connected());
    let start = Instant::now();
    assert!(tier
        .get("s", &sk(1), false, Duration::from_millis(50))
        .await
        .is_none());
    assert!(tier
        .purge_times("s", &[], Duration::from_millis(50))
        .await
        .is_none());
    let before = dropped("disconnected");
    tier.put(
        "s",
        sk(1),
        Arc::new(entry("x", Duration::from_secs(60))),
        false,
    );
    assert!(dropped("disconnected") > before);
    assert!(start.elapsed() < Duration::from_millis(20));
    assert!(matches!(
        tier.publish(&Invalidation::Flush {
            stage: "s".into(),
            at_ms: 1
        })
        .await,
        Err(SharedError::Disconnected)
    ));

    let _server = RedisServer::start_on(port);
    eventually("the connection", Duration::from_secs(8), || async {
        tier.is_connected().then_some(())
    })
    .await;
    let e = entry("late", Duration::from_secs(60));
    tier.put("s", sk(1), Arc::new(e.clone()), false);
    let got = eventually("the write", Duration::from_secs(5), || {
        let (tier, k) = (&tier, sk(1));
        async move { tier.get("s", &k, false, Duration::from_millis(500)).await }
    })
    .await;
    assert_eq!(got, e);

    // A password never shows in Debug output; an unparsable URL gives a disabled tier.
    let secret = SharedTier::connect(&settings("redis://:hunter2@127.0.0.1:1/"), 3).await;
    assert!(!format!("{secret:?}").contains("hunter2"));
    let broken = SharedTier::connect(&settings("not a url"), 4).await;
    assert!(!broken.is_connected());
    assert!(broken
        .get("s", &sk(1), false, Duration::from_millis(50))
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalidations_reach_other_instances_only() {
    let server = RedisServer::start();
    let a = SharedTier::connect(&settings(&server.url()), 1).await;
    let b = SharedTier::connect(&settings(&server.url()), 2).await;
    let mut rx_a = a.subscribe();
    let mut rx_b = b.subscribe();
    let w = Duration::from_secs(5);
    assert_eq!(
        next_event(&mut rx_a, w).await,
        SubscriptionEvent::Subscribed
    );
    assert_eq!(
        next_event(&mut rx_b, w).await,
        SubscriptionEvent::Subscribed
    );

    let msgs = vec![
        Invalidation::Remove {
            stage: "s".into(),
            keys: vec![sk(1), sk(2)],
        },
        Invalidation::PurgePrefix {
            stage: "s".into(),
            prefix: [7; 16],
            at_ms: 1_700_000_000_000,
        },
        Invalidation::Flush {
            stage: "t".into(),
            at_ms: 1_700_000_000_001,
        },
    ];
    for m in &msgs {
        a.publish(m).await.unwrap();
    }
    for m in &msgs {
        assert_eq!(
            next_event(&mut rx_b, w).await,
            SubscriptionEvent::Message(m.clone())
        );
    }
    // A skipped its own three messages: the next thing it sees is B's.
    let marker = Invalidation::Flush {
        stage: "marker".into(),
        at_ms: 9,
    };
    b.publish(&marker).await.unwrap();
    assert_eq!(
        next_event(&mut rx_a, w).await,
        SubscriptionEvent::Message(marker.clone())
    );
    // Garbage on the channel is ignored.
    let mut raw = server.client().await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg("cgtest:invalidations")
        .arg("not json")
        .query_async(&mut raw)
        .await
        .unwrap();
    let last = Invalidation::Remove {
        stage: "s".into(),
        keys: vec![],
    };
    a.publish(&last).await.unwrap();
    assert_eq!(
        next_event(&mut rx_b, w).await,
        SubscriptionEvent::Message(last)
    );
    // The server dropping subscribers is a loss, followed by a resubscription.
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(next_event(&mut rx_b, w).await, SubscriptionEvent::Lost);
    assert_eq!(
        next_event(&mut rx_b, w).await,
        SubscriptionEvent::Subscribed
    );
    // Liveness pings keep a healthy subscription quiet…
    tokio::time::sleep(SUBSCRIPTION_PING * 2 + Duration::from_millis(300)).await;
    assert!(
        rx_b.try_recv().is_err(),
        "a healthy subscription sent an event"
    );
    a.publish(&marker).await.unwrap();
    assert_eq!(
        next_event(&mut rx_b, w).await,
        SubscriptionEvent::Message(marker.clone())
    );
    // …and notice a server that stopped answering without closing the connection.
    server.signal("STOP");
    assert_eq!(next_event(&mut rx_b, w).await, SubscriptionEvent::Lost);
    server.signal("CONT");
    assert_eq!(
        next_event(&mut rx_b, w).await,
        SubscriptionEvent::Subscribed
    );
}

#[test]
fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    async fn uses(tier: SharedTier) {
        let key = sk(1);
        let get = tier.get("s", &key, false, Duration::from_millis(1));
        send(&get);
        let purge = tier.purge_times("s", &[], Duration::from_millis(1));
        send(&purge);
        let msg = Invalidation::Flush {
            stage: "s".into(),
            at_ms: 0,
        };
        let publish = tier.publish(&msg);
        send(&publish);
        let delete = tier.delete("s", &[]);
        send(&delete);
        let flush = tier.record_flush("s", SystemTime::now());
        send(&flush);
    }
    let _ = uses;
    fn sync<T: Send + Sync>() {}
    sync::<SharedTier>();
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_records_keep_the_latest_time() {
    let server = RedisServer::start();
    let tier = SharedTier::connect(&settings(&server.url()), 1).await;
    let mut raw = server.client().await;
    let dl = Duration::from_millis(500);
    let now = now_ms();
    let (p, q) = ([1u8; 16], [2u8; 16]);
    assert_eq!(
        tier.purge_times("s", &[p, q], dl).await.unwrap(),
        (vec![None, None], None)
    );

    tier.record_purge("s", p, now).await.unwrap();
    tier.record_purge("s", p, now - Duration::from_secs(10))
        .await
        .unwrap();
    let ms = unix_ms(now);
    assert_eq!(
        tier.purge_times("s", &[p, q], dl).await.unwrap(),
        (vec![Some(ms), None], None)
    );
    tier.record_purge("s", p, now + Duration::from_secs(1))
        .await
        .unwrap();
    tier.record_flush("s", now).await.unwrap();
    tier.record_flush("s", now - Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        tier.purge_times("s", &[q, p], dl).await.unwrap(),
        (vec![None, Some(ms + 1000)], Some(ms))
    );
    // Other stages are untouched.
    assert_eq!(
        tier.purge_times("t", &[p], dl).await.unwrap(),
        (vec![None], None)
    );
    // Records live as long as an entry they cover could.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(tier.inner.purge_key("s", &p))
        .query_async(&mut raw)
        .await
        .unwrap();
    let max = i64::try_from(duration_ms(MAX_ENTRY_LIFETIME)).unwrap();
    assert!(pttl > max - 60_000 && pttl <= max + 1000, "pttl {pttl}");
    // A record too old to cover anything is not written.
    tier.record_purge("s", q, now - MAX_ENTRY_LIFETIME - Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(tier.purge_times("s", &[q], dl).await.unwrap().0, vec![None]);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_round_trip_reads_the_entry_and_its_purge_records() {
    let server = RedisServer::start();
    let tier = SharedTier::connect(&settings(&server.url()), 1).await;
    let mut raw = server.client().await;
    let dl = Duration::from_millis(500);
    let (p, q) = ([1u8; 16], [2u8; 16]);
    assert!(tier
        .get_with_purges("s", &sk(1), &[p, q], false, dl)
        .await
        .is_none());
    let e = entry("hello", Duration::from_secs(60));
    let _: () = redis::cmd("SET")
        .arg(tier.entry_key("s", &sk(1)))
        .arg(encode_entry(&e).unwrap())
        .query_async(&mut raw)
        .await
        .unwrap();
    let now = now_ms();
    tier.record_purge("s", q, now).await.unwrap();
    tier.record_flush("s", now).await.unwrap();
    let (got, purges) = tier
        .get_with_purges("s", &sk(1), &[p, q], false, dl)
        .await
        .expect("the entry");
    assert_eq!(got, e);
    assert_eq!(purges, (vec![None, Some(unix_ms(now))], Some(unix_ms(now))));
    assert_eq!(
        Some(purges),
        tier.purge_times("s", &[p, q], dl).await,
        "the same records as purge_times reads"
    );
    // Encrypted-ness must match, as for `get`; garbage is a miss and is removed.
    assert!(tier
        .get_with_purges("s", &sk(1), &[p], true, dl)
        .await
        .is_none());
    let rkey = tier.entry_key("s", &sk(2));
    let _: () = redis::cmd("SET")
        .arg(&rkey)
        .arg("garbage")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(tier
        .get_with_purges("s", &sk(2), &[p], false, dl)
        .await
        .is_none());
    eventually("the garbage is unlinked", Duration::from_secs(5), || {
        let mut raw = raw.clone();
        let rkey = rkey.clone();
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg(rkey)
                .query_async(&mut raw)
                .await
                .unwrap();
            (n == 0).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_write_queue_drops_without_waiting() {
    let server = RedisServer::start();
    let options = SharedOptions {
        write_queue: 1,
        ..SharedOptions::default()
    };
    let tier = SharedTier::connect_with(&settings(&server.url()), 1, options).await;
    let mut raw = server.client().await;
    // Writes block in Redis: the writer sits on its first batch.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2000)
        .arg("WRITE")
        .query_async(&mut raw)
        .await
        .unwrap();
    let e = Arc::new(entry("x", Duration::from_secs(60)));
    tier.put("s", sk(0), Arc::clone(&e), false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = dropped("queue_full");
    let start = Instant::now();
    for i in 1..=200u8 {
        tier.put("s", sk(i), Arc::clone(&e), false);
    }
    let took = start.elapsed();
    assert!(took < Duration::from_millis(50), "puts took {took:?}");
    assert!(
        dropped("queue_full") >= before + 190,
        "dropped {}",
        dropped("queue_full") - before
    );
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut raw)
        .await
        .unwrap();
}
