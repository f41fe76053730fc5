//! The access log through real requests: one line per client request (misses, hits, refusals),
//! masked query values, `X-Request-Id` kept or generated and sent to the target, the file
//! reopened as SIGUSR1 does, a reload switching the destination, and the text format.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{client, eventually, get, metric, origin, send, PolicyDir, TestGateway};

/// A gateway whose gateway.toml has `[log] access = format` into `log` (outside the watched
/// configuration directory), with a cached stage `prod` and an uncached stage `live`.
fn gateway(o: &cachegate_origin::Origin, logs: &Path, format: &str) -> (TestGateway, PathBuf) {
    let d = PolicyDir::new(o);
    let log = logs.join("access.log");
    append_log_section(
        &d,
        &format!(
            "access = \"{format}\"\naccess_path = \"{}\"\n",
            log.display()
        ),
    );
    d.stage(
        "prod",
        "target = \"http://{{ORIGIN}}\"\n[cache]\nenabled = true\n",
    );
    d.stage("live", "target = \"http://{{ORIGIN}}\"\n");
    (TestGateway::start(d), log)
}

fn append_log_section(d: &PolicyDir, lines: &str) {
    let path = d.path().join("gateway.toml");
    let mut text = std::fs::read_to_string(&path).expect("gateway.toml");
    text.push_str("[log]\n");
    text.push_str(lines);
    std::fs::write(path, text).expect("write");
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The file's lines once it holds at least `n` (they are written asynchronously).
async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    eventually(
        &format!("{n} lines in {}", path.display()),
        Duration::from_secs(10),
        || async { read_lines(path).len() >= n },
    )
    .await;
    read_lines(path)
}

async fn wait_json(path: &Path, n: usize) -> Vec<Value> {
    wait_lines(path, n)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn a_miss_then_a_hit_are_two_lines_with_their_outcome_and_no_secret() {
    let o = origin();
    let logs = tempfile::tempdir().expect("tempdir");
    let (gw, log) = gateway(&o, logs.path(), "json");
    let url = gw.url("/prod/items/1?token=s3cr3t-value&x=1");
    let req = || client().get(&url).header("user-agent", "probe/1.0");
    let miss = send(req()).await;
    assert_eq!(miss.x_cache(), "MISS");
    let hit = send(req()).await;
    assert_eq!(hit.x_cache(), "HIT");

    let private = client()
        .get(gw.url("/live/items/1?secret=s3cr3t-value"))
        .header("authorization", "Bearer hidden-bearer")
        .header("cookie", "session=hidden-cookie");
    assert_eq!(send(private).await.status, 200);

    let lines = wait_json(&log, 3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[2]["path"], "/live/items/1?secret=***");
    let (m, h) = (&lines[0], &lines[1]);
    for (line, resp) in [(m, &miss), (h, &hit)] {
        assert_eq!(line["request_id"], resp.header("x-request-id"));
        assert_eq!(line["method"], "GET");
        assert_eq!(line["path"], "/prod/items/1?token=***&x=1");
        assert_eq!(line["protocol"], "HTTP/1.1");
        assert_eq!(line["status"], 200);
        assert_eq!(line["bytes"], resp.body.len());
        assert_eq!(line["stage"], "prod");
        assert_eq!(line["user_agent"], "probe/1.0");
        assert_eq!(line["cache_status"], resp.header("cache-status"));
        assert!(line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
        assert!(line["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")));
        let time = line["time"].as_str().expect("time");
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
    }
    assert_eq!(m["cache"], "MISS");
    assert_eq!(h["cache"], "HIT");
    assert_eq!(m["upstream_status"], 200);
    assert_eq!(m["upstream_addr"], o.addr().to_string());
    assert!(m["upstream_time_ms"].as_f64().is_some());
    assert!(h["upstream_status"].is_null() && h["upstream_addr"].is_null());
    assert!(h["upstream_time_ms"].is_null());
    assert!(m["tier"].is_null());
    assert_eq!(h["tier"], "local");
    let key = m["key"].as_str().expect("key digest");
    assert_eq!(key.len(), 16);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(h["key"], m["key"]);
    assert_ne!(m["request_id"], h["request_id"]);

    let text = std::fs::read_to_string(&log).expect("log");
    for secret in ["s3cr3t-value", "hidden-bearer", "Bearer", "hidden-cookie"] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }
    // Nothing was dropped, and the counter is there to say so.
    assert!(gw
        .metrics()
        .await
        .lines()
        .any(|l| l.starts_with("cachegate_access_log_dropped_total ")));
    assert_eq!(
        metric(&gw.metrics().await, "cachegate_access_log_dropped_total"),
        0.0
    );
}

#[tokio::test]
async fn refused_requests_get_a_line_too() {
    let o = origin();
    let logs = tempfile::tempdir().expect("tempdir");
    let (gw, log) = gateway(&o, logs.path(), "json");
    let r = get(&gw.url("/nowhere/x?api_key=k3y")).await;
    assert_eq!(r.status, 404);
    let id = r.header("x-request-id").to_owned();
    assert_eq!(id.len(), 36, "a generated id on a refusal too: {id:?}");
    let lines = wait_json(&log, 1).await;
    let l = &lines[0];
    assert_eq!(l["status"], 404);
    assert_eq!(l["request_id"], id.as_str());
    assert_eq!(l["path"], "/nowhere/x?api_key=***");
    assert!(l["stage"].is_null() && l["cache"].is_null() && l["upstream_status"].is_null());
    assert!(l["key"].is_null());
}

#[tokio::test]
async fn request_ids_are_kept_or_generated_sent_upstream_and_returned() {
    let o = origin();
    let logs = tempfile::tempdir().expect("tempdir");
    let (gw, log) = gateway(&o, logs.path(), "json");
    let sent = send(
        client()
            .get(gw.url("/live/echo/a"))
            .header("x-request-id", "client-id-42"),
    )
    .await;
    assert_eq!(sent.header("x-request-id"), "client-id-42");
    assert_eq!(sent.json()["headers"]["x-request-id"], "client-id-42");

    let made = get(&gw.url("/live/echo/b")).await;
    let id = made.header("x-request-id").to_owned();
    assert_eq!(id.len(), 36, "{id:?}");
    assert_eq!(made.json()["headers"]["x-request-id"], id.as_str());

    // Too long, or with a space: replaced.
    for bad in ["a".repeat(129), "has space".to_owned()] {
        let r = send(
            client()
                .get(gw.url("/live/echo/c"))
                .header("x-request-id", &bad),
        )
        .await;
        assert_ne!(r.header("x-request-id"), bad);
        assert_eq!(
            r.json()["headers"]["x-request-id"],
            r.header("x-request-id")
        );
    }
    let lines = wait_json(&log, 4).await;
    assert_eq!(lines[0]["request_id"], "client-id-42");
    assert_eq!(lines[1]["request_id"], id.as_str());
    assert_eq!(lines[0]["cache"], "BYPASS");
}

#[tokio::test]
async fn a_hit_carries_its_own_request_id_not_the_filling_one() {
    let o = origin();
    let logs = tempfile::tempdir().expect("tempdir");
    let (gw, _log) = gateway(&o, logs.path(), "json");
    let url = gw.url("/prod/echo/cached");
    let first = send(client().get(&url).header("x-request-id", "filler-1")).await;
    assert_eq!(first.x_cache(), "MISS");
    let second = send(client().get(&url).header("x-request-id", "hitter-2")).await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.header("x-request-id"), "hitter-2");
    assert_eq!(
        second.headers.get_all("x-request-id").iter().count(),
        1,
        "one id only"
    );
    let third = get(&url).await;
    assert_eq!(third.x_cache(), "HIT");
    assert!(!["filler-1", "hitter-2", ""].contains(&third.header("x-request-id")));
    assert_eq!(o.count("/echo/cached"), 1);
}

#[tokio::test]
async fn reopening_moves_new_lines_to_a_new_file() {
    let o = origin();
    let logs = tempfile::tempdir().expect("tempdir");
    let (gw, log) = gateway(&o, logs.path(), "json");
    get(&gw.url("/live/items/1")).await;
    wait_lines(&log, 1).await;
    let rotated = logs.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    // What the SIGUSR1 handler calls (the gateway is in-process: no signal to this process).
    cachegate::access_log::reopen();
    get(&gw.url("/live/items/2")).await;
    let lines = wait_json(&log, 1).await;
    assert_eq!(lines[0]["path"], "/live/items/2");
    let old = read_lines(&rotated);
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0].contains("/live/items/1"));
}

#[tokio::test]
async fn a_reload_switches_destination_and_format() {
    let o = origin();
    let logs = tempfile::tempdir().expect("tempdir");
    let (gw, log) = gateway(&o, logs.path(), "json");
    get(&gw.url("/live/items/1")).await;
    wait_lines(&log, 1).await;
    let other = logs.path().join("other.log");
    let path = gw.dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).expect("gateway.toml");
    let text = text
        .replace(&log.display().to_string(), &other.display().to_string())
        .replace("access = \"json\"", "access = \"text\"");
    std::fs::write(&path, text).expect("write");
    gw.handle.reload().await.expect("reload");
    get(&gw.url("/live/items/2")).await;
    let lines = wait_lines(&other, 1).await;
    assert!(
        lines[0].contains("\"GET /live/items/2 HTTP/1.1\" 200 "),
        "{lines:?}"
    );
    assert_eq!(read_lines(&log).len(), 1);
}

#[tokio::test]
async fn text_lines_have_the_documented_shape() {
    let o = origin();
    let logs = tempfile::tempdir().expect("tempdir");
    let (gw, log) = gateway(&o, logs.path(), "text");
    let r = send(
        client()
            .get(gw.url("/prod/items/3?password=pw&n=1"))
            .header("user-agent", "probe \"quoted\""),
    )
    .await;
    let id = r.header("x-request-id").to_owned();
    let line = wait_lines(&log, 1).await.remove(0);
    let (head, rest) = line.split_once(" - - [").expect("client - - [time]");
    assert!(head.starts_with("127.0.0.1:"), "{line}");
    let (time, rest) = rest.split_once("] ").expect("time]");
    assert!(time.ends_with('Z') && time.len() == 24, "{line}");
    let expected_request = "\"GET /prod/items/3?password=***&n=1 HTTP/1.1\" 200 ";
    assert!(rest.starts_with(expected_request), "{line}");
    for part in [
        format!(" rid={id} stage=prod "),
        " cache=MISS tier=- ".to_owned(),
        format!(" upstream={} upstream_status=200 upstream_ms=", o.addr()),
        " cache_status=\"cachegate; fwd=uri-miss; stored\" ".to_owned(),
        " ua=\"probe \\x22quoted\\x22\"".to_owned(),
    ] {
        assert!(line.contains(&part), "{part:?} not in {line}");
    }
    assert!(!line.contains("pw&"), "{line}");
}

#[test]
fn log_settings_are_validated_with_positions() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("live", "target = \"http://{{ORIGIN}}\"\n");
    let inside = d.path().join("access.log");
    append_log_section(
        &d,
        "access = \"xml\"\naccess_path = \"/no/such/dir/access.log\"\nmask_query = [\"ok\", \"a b\"]\n",
    );
    let (ok, text) = crate::validation::diagnostics(&d);
    assert!(!ok);
    let line = |key: &str| {
        std::fs::read_to_string(d.path().join("gateway.toml"))
            .expect("gateway.toml")
            .lines()
            .position(|l| l.starts_with(key))
            .expect("key")
            + 1
    };
    for (key, col, message) in [
        ("access =", 10, "`xml` is not a value of access"),
        (
            "access_path",
            15,
            "the directory of access_path `/no/such/dir/access.log` does not exist",
        ),
        (
            "mask_query",
            21,
            "mask_query entry \"a b\" is not a query parameter name",
        ),
    ] {
        let at = format!("gateway.toml:{}:{col}: error: {message}", line(key));
        assert!(text.contains(&at), "expected `{at}` in:\n{text}");
    }
    // A log inside the watched configuration directory would reload it on every line.
    let text = std::fs::read_to_string(d.path().join("gateway.toml")).expect("read");
    let start = text.find("[log]").expect("[log]");
    let fixed = format!(
        "{}[log]\naccess = \"json\"\naccess_path = \"{}\"\n",
        &text[..start],
        inside.display()
    );
    std::fs::write(d.path().join("gateway.toml"), fixed).expect("write");
    let (ok, text) = crate::validation::diagnostics(&d);
    assert!(!ok);
    assert!(
        text.contains("is inside the configuration directory"),
        "{text}"
    );
}

#[tokio::test]
async fn a_target_own_request_id_is_neither_stored_nor_replayed() {
    let o = origin();
    let (port, _) = crate::harness::raw_target(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\nX-Request-Id: target-own\r\nConnection: close\r\n\r\nok",
    );
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        &format!("target = \"http://127.0.0.1:{port}\"\n[cache]\nenabled = true\n"),
    );
    let gw = TestGateway::start(d);
    let url = gw.url("/prod/x");
    let miss = send(client().get(&url).header("x-request-id", "filler-1")).await;
    assert_eq!(miss.x_cache(), "MISS");
    assert_eq!(miss.header("x-request-id"), "filler-1");
    let hit = send(client().get(&url).header("x-request-id", "hitter-2")).await;
    assert_eq!(hit.x_cache(), "HIT");
    let ids: Vec<_> = hit.headers.get_all("x-request-id").iter().collect();
    assert_eq!(ids, ["hitter-2"]);
}
