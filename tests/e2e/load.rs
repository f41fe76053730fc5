//! Bounded resources under hostile load: a cache-busting client sending 200,000 distinct keys
//! cannot push the local tier past its configured bound nor evict a hot entry (SEC-14, REL-13).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{metric, origin, PolicyDir, TestGateway};

/// Keys the cache-busting client sends.
const KEYS: usize = 200_000;
/// Requests written at once on a connection (pipelined; answered in order).
const BATCH: usize = 250;
/// Connections the keys are spread over.
const CONNECTIONS: usize = 4;
/// The stage's local tier.
const CAPACITY: u64 = 2 * 1024 * 1024;

/// The status lines and `X-Cache` values of the `n` responses read from `s`.
fn read_responses(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Vec<(u16, String)> {
    let mut out = Vec::with_capacity(n);
    let mut chunk = [0u8; 64 * 1024];
    let mut at = 0;
    while out.len() < n {
        // Parse every complete response in the buffer.
        loop {
            let rest = buf.get(at..).unwrap_or_default();
            let Some(head_end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(rest.get(..head_end).unwrap_or_default());
            let mut len = 0usize;
            let mut x_cache = String::new();
            for line in head.lines().skip(1) {
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                if name.eq_ignore_ascii_case("content-length") {
                    len = value.trim().parse().expect("Content-Length");
                } else if name.eq_ignore_ascii_case("x-cache") {
                    x_cache = value.trim().to_owned();
                }
            }
            if rest.len() < head_end + 4 + len {
                break;
            }
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            out.push((status, x_cache));
            at += head_end + 4 + len;
            if out.len() == n {
                break;
            }
        }
        if out.len() == n {
            break;
        }
        let got = s.read(&mut chunk).expect("read responses");
        assert!(got > 0, "the gateway closed the connection");
        buf.extend_from_slice(chunk.get(..got).expect("read length"));
    }
    buf.drain(..at);
    out
}

/// The resident set of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// 200,000 distinct keys through a 2 MiB local tier: every request is answered, the tier never
/// holds more than its bound (sampled throughout), it evicts, the memory of the process does not
/// grow with the number of keys, and a hot key requested all along stays a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_busting_cannot_exceed_the_local_bound_or_evict_the_hot_key() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage(
        "prod",
        &format!(
            "target = \"http://{{{{ORIGIN}}}}\"\n[cache]\nenabled = true\nttl = 3600\ncapacity = {CAPACITY}\nkey_parameters = [\"method.request.querystring.cb\"]\n"
        ),
    );
    // Each connection carries thousands of pipelined requests: past the default
    // keepalive_requests (1000), which closes a connection on purpose.
    d.server_settings("keepalive_requests = 1000000\n");
    let addr = format!("127.0.0.1:{}", d.proxy_port);
    let gw = TestGateway::start(d);
    let rss_before = rss();
    let per_connection = KEYS / CONNECTIONS;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                let mut buf = Vec::new();
                let (mut hot_hits, mut hot_total) = (0usize, 0usize);
                let mut sent = 0;
                while sent < per_connection {
                    let n = BATCH.min(per_connection - sent);
                    let mut batch = String::with_capacity(n * 80);
                    for i in 0..n {
                        let key = c * per_connection + sent + i;
                        batch.push_str(&format!(
                            "GET /prod/items/bust?cb={key} HTTP/1.1\r\nHost: localhost\r\n\r\n"
                        ));
                    }
                    // The hot key, once per batch.
                    batch.push_str("GET /prod/items/hot HTTP/1.1\r\nHost: localhost\r\n\r\n");
                    s.write_all(batch.as_bytes()).expect("write batch");
                    let answers = read_responses(&mut s, &mut buf, n + 1);
                    for (status, _) in &answers {
                        assert_eq!(*status, 200);
                    }
                    let (_, hot) = answers.last().expect("the hot answer");
                    hot_total += 1;
                    hot_hits += usize::from(hot == "HIT");
                    sent += n;
                }
                (hot_hits, hot_total)
            })
        })
        .collect();
    // Sample the tier's size while the storm runs.
    let series = "cachegate_cache_local_bytes{stage=\"prod\"}";
    let mut peak = 0.0f64;
    while !workers.iter().all(|w| w.is_finished()) {
        peak = peak.max(metric(&gw.metrics().await, series));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut hot_hits, mut hot_total) = (0, 0);
    for w in workers {
        let (h, t) = w.join().expect("client thread");
        hot_hits += h;
        hot_total += t;
    }
    let m = gw.metrics().await;
    peak = peak.max(metric(&m, series));
    assert!(peak > 0.0, "the tier was never filled: {m}");
    assert!(
        peak <= CAPACITY as f64,
        "the local tier held {peak} bytes, over its {CAPACITY}-byte bound"
    );
    assert!(
        metric(
            &m,
            "cachegate_cache_evictions_total{cause=\"size\",stage=\"prod\"}"
        ) > 0.0,
        "no evictions: {m}"
    );
    // Every key went to the origin once (it never served one key twice)…
    assert_eq!(o.count("/items/bust"), KEYS as u64);
    // …while the hot key stayed: one miss per connection at most (its first request).
    assert!(
        hot_hits * 100 >= hot_total * 95,
        "the hot key hit {hot_hits} times out of {hot_total}"
    );
    // A per-key leak of even 500 bytes would be 100 MB here; the bound leaves room for the
    // other tests running in this process.
    let grown = rss().saturating_sub(rss_before);
    assert!(
        grown < 96 * 1024 * 1024,
        "the process grew by {} MiB for {KEYS} keys",
        grown / (1024 * 1024)
    );
}
