//! Routing: base paths, the target path, headers sent upstream, 404 and target failures.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{client, free_port, origin, PolicyDir, TestGateway};

async fn get_json(url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client().get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn strips_base_path_and_keeps_query() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    let gw = TestGateway::start(d);

    let (status, _, body) = get_json(&gw.url("/prod/items/7")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], "7");
    assert_eq!(o.count("/items/7"), 1);

    let (status, headers, body) = get_json(&gw.url("/prod/echo/a/b?x=1&y=%20z&x=2")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-echo-path"], "/echo/a/b");
    assert_eq!(body["query"], "x=1&y=%20z&x=2");
    assert_eq!(body["method"], "GET");
}

#[tokio::test]
async fn target_path_prefix_and_root_stage() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "api",
        "base_path = \"/v1\"\ntarget = \"http://{{ORIGIN}}/echo/base\"\n",
    );
    d.stage(
        "root",
        "base_path = \"/\"\ntarget = \"http://{{ORIGIN}}/echo/root\"\n",
    );
    d.stage(
        "deep",
        "base_path = \"/v1/special\"\ntarget = \"http://{{ORIGIN}}/echo/deep\"\n",
    );
    let gw = TestGateway::start(d);

    let (_, h, _) = get_json(&gw.url("/v1/things")).await;
    assert_eq!(h["x-echo-path"], "/echo/base/things");
    let (_, h, _) = get_json(&gw.url("/v1")).await;
    assert_eq!(h["x-echo-path"], "/echo/base");
    // Longest base path wins.
    let (_, h, _) = get_json(&gw.url("/v1/special/x")).await;
    assert_eq!(h["x-echo-path"], "/echo/deep/x");
    // `/v1` does not own `/v1x`: the root stage does.
    let (_, h, _) = get_json(&gw.url("/v1x")).await;
    assert_eq!(h["x-echo-path"], "/echo/root/v1x");
}

#[tokio::test]
async fn unknown_path_is_a_json_404_without_upstream_request() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    let gw = TestGateway::start(d);

    for path in ["/nope", "/production/items/1", "/"] {
        let (status, headers, body) = get_json(&gw.url(path)).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["error"], "not_found");
        assert_eq!(body["path"], path);
    }
    assert_eq!(o.total(), 0);

    // The connection stays usable after a gateway-written 404 (Content-Length framing).
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            c.get(gw.url("/nope"))
                .send()
                .await
                .expect("request")
                .status(),
            404
        );
    }
}

#[tokio::test]
async fn forwards_host_and_x_forwarded_headers() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    d.stage(
        "keep",
        "target = \"http://{{ORIGIN}}\"\npreserve_host = true\n",
    );
    let gw = TestGateway::start(d);

    let resp = client()
        .get(gw.url("/prod/echo"))
        .header("host", "client.example")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "must not pass")
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    let h = &body["headers"];
    assert_eq!(h["host"], o.addr().to_string());
    // The client's Host is not passed on under another name: no key includes it.
    assert!(h.get("x-forwarded-host").is_none(), "{h}");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(
        h.get("x-secret-hop").is_none(),
        "a header named in Connection was forwarded: {h}"
    );

    let body: Value = client()
        .get(gw.url("/keep/echo"))
        .header("host", "client.example")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["headers"]["host"], "client.example");
}

#[tokio::test]
async fn forwards_methods_and_bodies() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    let gw = TestGateway::start(d);

    let resp = client()
        .put(gw.url("/prod/items/3"))
        .body("x".repeat(5000))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["received_bytes"], 5000);
    assert_eq!(body["version"], 2);
    let resp = client()
        .delete(gw.url("/prod/items/3"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 204);
    // Statuses from the target pass through unchanged.
    let (status, _, _) = get_json(&gw.url("/prod/items/1?status=503")).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn unreachable_target_is_a_fast_json_502() {
    let o = origin();
    let d = PolicyDir::new(&o);
    let dead = free_port();
    d.stage(
        "down",
        &format!("target = \"http://127.0.0.1:{dead}\"\nconnect_timeout_ms = 500\n"),
    );
    let gw = TestGateway::start(d);

    let started = Instant::now();
    let (status, headers, body) = get_json(&gw.url("/down/items/1")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["error"], "bad_gateway");
    assert_eq!(body["stage"], "down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "502 took {:?}",
        started.elapsed()
    );
    // The target's address is not disclosed.
    assert!(!body.to_string().contains(&dead.to_string()));
}

#[tokio::test]
async fn slow_target_is_a_504_after_the_read_timeout() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "slow",
        "target = \"http://{{ORIGIN}}\"\nread_timeout_ms = 300\n",
    );
    let gw = TestGateway::start(d);

    let started = Instant::now();
    let (status, _, body) = get_json(&gw.url("/slow/slow?ms=3000")).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"], "gateway_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "504 took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn flows_are_selected_by_condition() {
    // Flow selection has no visible effect until policies run (later issues), but the selected
    // flow must not break proxying, whatever the condition evaluates to.
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        r#"target = "http://{{ORIGIN}}"
[[flows]]
name = "items"
condition = 'proxy.pathsuffix MatchesPath "/items/*" and request.verb = "GET"'
[[flows]]
name = "other"
"#,
    );
    let gw = TestGateway::start(d);
    let (status, _, _) = get_json(&gw.url("/prod/items/1")).await;
    assert_eq!(status, 200);
    let (status, _, _) = get_json(&gw.url("/prod/echo")).await;
    assert_eq!(status, 200);
}

/// One raw HTTP/1.1 GET (clients like reqwest normalise dot segments themselves).
fn raw_get(addr: &str, target: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn dot_segments_are_resolved_before_routing_keying_and_forwarding() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}/echo/prefix\"\n[cache]\nenabled = true\n",
    );
    d.stage("dev", "target = \"http://{{ORIGIN}}/echo/dev\"\n");
    let gw = TestGateway::start(d);
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let r = raw_get(&addr, "/prod/a/../b//c/./d");
    assert!(
        r.to_ascii_lowercase()
            .contains("x-echo-path: /echo/prefix/b/c/d"),
        "{r}"
    );
    // The same entry as the plain path.
    let r = raw_get(&addr, "/prod/b/c/d");
    assert!(r.to_ascii_lowercase().contains("x-cache: hit"), "{r}");
    // `..` (also `%2e%2e`) cannot leave the target's path prefix; it moves between stages the
    // way a browser would resolve it.
    let r = raw_get(&addr, "/prod/%2e%2e/dev/x");
    assert!(
        r.to_ascii_lowercase().contains("x-echo-path: /echo/dev/x"),
        "{r}"
    );
    let r = raw_get(&addr, "/prod/../../etc/passwd");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("bad_request"), "{r}");
    assert_eq!(o.count("/etc/passwd"), 0);
}
