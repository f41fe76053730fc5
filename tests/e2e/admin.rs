//! The admin listener: health, metrics, config status and token-protected reload.

use serde_json::Value;

use crate::harness::{client, origin, PolicyDir, TestGateway, ADMIN_TOKEN};

#[tokio::test]
async fn health_config_and_metrics() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    let gw = TestGateway::start(d);

    let health: Value = client()
        .get(gw.admin("/healthz"))
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["generation"], 1);

    let cfg = gw.admin_json("/config").await;
    assert_eq!(cfg["status"]["generation"], 1);
    assert!(cfg["status"]["last_error"].is_null());
    assert!(cfg["status"]["loaded_at"].as_u64().expect("loaded_at") > 1_700_000_000);
    assert_eq!(cfg["stages"][0]["name"], "prod");
    assert_eq!(cfg["stages"][0]["base_path"], "/prod");

    for _ in 0..3 {
        client()
            .get(gw.url("/prod/items/1"))
            .send()
            .await
            .expect("req");
    }
    client().get(gw.url("/missing")).send().await.expect("req");
    // Metrics are recorded in the logging phase, after the response is sent: poll.
    crate::harness::eventually(
        "the 404 is counted",
        std::time::Duration::from_secs(5),
        || async {
            let text = gw.metrics().await;
            text.contains(
                "cachegate_requests_total{method=\"GET\",stage=\"none\",status_class=\"4xx\"}",
            )
        },
    )
    .await;
    let resp = client()
        .get(gw.admin("/metrics"))
        .send()
        .await
        .expect("req");
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/plain"));
    let text = resp.text().await.expect("text");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("cachegate_requests_total{")
                && l.contains("stage=\"prod\"")
                && l.contains("2xx")
        })
        .unwrap_or_else(|| panic!("no prod 2xx request counter in:\n{text}"));
    let n: f64 = line
        .rsplit(' ')
        .next()
        .expect("value")
        .parse()
        .expect("number");
    // Other tests share the process-wide registry, so at least our three.
    assert!(n >= 3.0, "{line}");
    assert!(text
        .contains("cachegate_requests_total{method=\"GET\",stage=\"none\",status_class=\"4xx\"}"));
    assert!(text.contains("cachegate_request_duration_seconds_bucket"));

    let resp = client().get(gw.admin("/nope")).send().await.expect("req");
    assert_eq!(resp.status(), 404);
    // A known resource with the wrong method is a 405 naming the right one, not a 404.
    for (path, allow) in [
        ("/reload", "POST"),
        ("/stages/prod/cache/flush", "POST"),
        ("/stages/prod/cache/invalidate", "POST"),
    ] {
        let resp = client().get(gw.admin(path)).send().await.expect("req");
        assert_eq!(resp.status(), 405, "{path}");
        assert_eq!(resp.headers()["allow"], allow, "{path}");
    }
    let resp = client()
        .post(gw.admin("/healthz"))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
    let resp = client()
        .get(gw.admin("/stages/prod/cache/other"))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn reload_requires_the_token_and_swaps_the_config() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    let gw = TestGateway::start(d);

    let resp = client()
        .post(gw.admin("/reload"))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 401);
    let resp = client()
        .post(gw.admin("/reload"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 403);
    assert_eq!(gw.handle.snapshot().generation, 1);

    // A valid change: a new stage appears.
    gw.dir.stage("dev", "target = \"http://{{ORIGIN}}\"\n");
    let resp = client()
        .post(gw.admin("/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["outcome"], "accepted");
    assert_eq!(body["generation"], 2);
    assert_eq!(
        client()
            .get(gw.url("/dev/items/1"))
            .send()
            .await
            .expect("req")
            .status(),
        200
    );

    // A broken change is rejected; the previous configuration keeps serving.
    gw.dir
        .stage("dev", "target = \"http://{{ORIGIN}}\"\nbase_pth = \"/x\"\n");
    let resp = client()
        .post(gw.admin("/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["outcome"], "rejected");
    assert_eq!(body["generation"], 2);
    let err = body["errors"][0].as_str().expect("error text");
    assert!(
        err.contains("dev/stage.toml:2:1") && err.contains("unknown field `base_pth`"),
        "{err}"
    );
    assert_eq!(
        client()
            .get(gw.url("/dev/items/1"))
            .send()
            .await
            .expect("req")
            .status(),
        200
    );
    let cfg = gw.admin_json("/config").await;
    assert_eq!(cfg["status"]["generation"], 2);
    assert!(cfg["status"]["last_error"]
        .as_str()
        .expect("last_error")
        .contains("base_pth"));
}

/// A flush storm (100 requests at once) gets `429` with `Retry-After` beyond the configured rate
/// — requests with a wrong token in a bucket of their own, so guessing is throttled without
/// starving the operator — and the admin API recovers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_are_rate_limited() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    )
    .admin_settings("mutations_per_second = 5\n");
    let gw = TestGateway::start(d);
    let c = client();
    let flush = gw.admin("/stages/prod/cache/flush");
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let req = c
                .post(&flush)
                .bearer_auth(if i % 2 == 0 { ADMIN_TOKEN } else { "guess" });
            tokio::spawn(async move { req.send().await })
        })
        .collect();
    let mut admitted = 0usize;
    let mut throttled = 0u32;
    for t in tasks {
        let r = t.await.expect("task").expect("response");
        match r.status().as_u16() {
            200 | 403 => admitted += 1,
            429 => {
                throttled += 1;
                let retry: u64 = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("Retry-After in whole seconds");
                assert_eq!(retry, 1, "a token is back within a second at 5/s");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // Per bucket (with the token, without it): a burst of 5, then 5 per second for as long as
    // the storm lasted.
    let allowed = 2 * (5 + (started.elapsed().as_secs_f64() * 5.0).ceil() as usize);
    assert!(
        admitted <= allowed,
        "{admitted} admitted, at most {allowed} allowed"
    );
    assert_eq!(admitted + throttled as usize, 100);
    let m = gw.metrics().await;
    assert!(
        m.lines()
            .filter_map(|l| l.strip_prefix("cachegate_admin_throttled_total "))
            .any(|v| v.parse::<f64>().is_ok_and(|n| n >= f64::from(throttled))),
        "{m}"
    );
    // Guessing cannot starve the operator: with the wrong-token bucket empty, a flush with the
    // token still goes through once its own bucket has refilled.
    for _ in 0..20 {
        let _ = c.post(&flush).bearer_auth("guess").send().await;
    }
    let guessed = c
        .post(&flush)
        .bearer_auth("guess")
        .send()
        .await
        .expect("guess");
    assert_eq!(guessed.status(), 429, "the wrong-token bucket is not empty");
    // The bucket refills: a flush goes through again.
    crate::harness::eventually(
        "a flush is admitted again",
        std::time::Duration::from_secs(5),
        || async {
            c.post(&flush)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
}

#[tokio::test]
async fn readyz_says_the_proxy_listens_and_reports_redis() {
    let o = crate::harness::origin();
    let gw = TestGateway::start(crate::harness::PolicyDir::new(&o));
    let r = crate::harness::get(&gw.admin("/readyz")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["proxy"], "listening");
    assert_eq!(v["redis"], "off");
    assert!(v["generation"].as_u64().is_some_and(|g| g >= 1));

    let redis = crate::harness::RedisServer::start();
    let d = crate::harness::PolicyDir::new(&o);
    d.with_redis(&redis.url(), "");
    let gw = TestGateway::start(d);
    crate::harness::eventually(
        "Redis is reported connected",
        std::time::Duration::from_secs(5),
        || async { crate::harness::get(&gw.admin("/readyz")).await.json()["redis"] == "connected" },
    )
    .await;
}
