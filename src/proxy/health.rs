//! A LoadBalancer's `<HealthMonitor>`: polls every server of it, every `IntervalInSec`, with a
//! TCP connect (`<TCPMonitor>`) or an HTTP request (`<HTTPMonitor>`), and reports each poll to
//! the LoadBalancer like a request's outcome — a failed poll counts towards `<MaxFailures>`, a
//! passed one puts the server back in rotation (Apigee's "Health monitoring").
//!
//! The polls start with the LoadBalancer's first request and hold it only weakly: once a reload
//! has replaced the configuration and its last request has finished, they stop.

use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::balance::{Balancer, Check, HttpCheck};

/// The most of a health check's response read (its status line and headers).
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Starts the HealthMonitor of `b`, if it has one and it has not started yet.
pub(super) fn ensure_started(b: &Arc<Balancer>) {
    if b.monitor.is_none() || b.monitor_started.set(()).is_err() {
        return;
    }
    for i in 0..b.servers.len() {
        if b.servers[i].enabled {
            tokio::spawn(poll(Arc::downgrade(b), i));
        }
    }
}

/// Polls server `i` of the LoadBalancer until the LoadBalancer is gone.
async fn poll(b: Weak<Balancer>, i: usize) {
    loop {
        let Some(lb) = b.upgrade() else { return };
        let Some(monitor) = lb.monitor.clone() else {
            return;
        };
        let addr = lb.servers[i].host.addr;
        let host_header = lb.servers[i].host.host_header.clone();
        // Not held across the poll: a replaced configuration must be able to go.
        drop(lb);
        let healthy = match &monitor.check {
            Check::Tcp {
                connect_timeout,
                port,
            } => {
                let addr = port.map_or(addr, |p| std::net::SocketAddr::new(addr.ip(), p));
                matches!(
                    tokio::time::timeout(*connect_timeout, TcpStream::connect(addr)).await,
                    Ok(Ok(_))
                )
            }
            Check::Http(check) => http_check(check, addr, &host_header).await,
        };
        let Some(lb) = b.upgrade() else { return };
        if healthy {
            lb.succeeded(i);
        } else if lb.failed(i, Instant::now()) {
            tracing::warn!(server = %lb.servers[i].name, "A target server failed its health checks and is out of rotation.");
        }
        drop(lb);
        tokio::time::sleep(monitor.interval).await;
    }
}

/// One `<HTTPMonitor>` request; healthy when the response matches `<SuccessResponse>` (its
/// codes — 200 when none is listed — and headers).
async fn http_check(check: &HttpCheck, addr: std::net::SocketAddr, host_header: &str) -> bool {
    let addr = check
        .port
        .map_or(addr, |p| std::net::SocketAddr::new(addr.ip(), p));
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(check.connect_timeout, TcpStream::connect(addr)).await
    else {
        return false;
    };
    let request = request_bytes(check, host_header);
    let exchange = async {
        stream.write_all(&request).await?;
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_RESPONSE_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(check.read_timeout, exchange).await {
        Ok(Ok(head)) => response_matches(check, &head),
        _ => false,
    }
}

/// The request a check sends (HTTP/1.1, `Connection: close`).
fn request_bytes(check: &HttpCheck, host_header: &str) -> Vec<u8> {
    let mut r = format!(
        "{} {} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\nUser-Agent: cachegate-health-check\r\n",
        check.verb, check.path
    );
    for (name, value) in &check.headers {
        r.push_str(&format!("{name}: {value}\r\n"));
    }
    let payload = check.payload.as_deref().unwrap_or("");
    if !payload.is_empty() || matches!(check.verb.as_str(), "POST" | "PUT") {
        r.push_str(&format!("Content-Length: {}\r\n", payload.len()));
    }
    r.push_str("\r\n");
    r.push_str(payload);
    r.into_bytes()
}

/// Whether a response head (status line and headers) matches the check's `<SuccessResponse>`.
fn response_matches(check: &HttpCheck, head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    let Some(status) = status else {
        return false;
    };
    let codes_ok = if check.codes.is_empty() {
        status == 200
    } else {
        check.codes.contains(&status)
    };
    let headers: Vec<(String, &str)> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    codes_ok
        && check
            .expect_headers
            .iter()
            .all(|(n, v)| headers.iter().any(|(hn, hv)| hn == n && hv == v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(codes: Vec<u16>, expect: Vec<(&str, &str)>) -> HttpCheck {
        HttpCheck {
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            port: None,
            verb: "GET".into(),
            path: "/health".into(),
            headers: vec![("x-check".into(), "1".into())],
            payload: None,
            codes,
            expect_headers: expect
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_response_matches_its_codes_and_headers() {
        let ok = b"HTTP/1.1 200 OK\r\nImOK: YourOK\r\n\r\n";
        assert!(response_matches(&check(vec![], vec![]), ok));
        assert!(response_matches(
            &check(vec![200], vec![("imok", "YourOK")]),
            ok
        ));
        assert!(!response_matches(
            &check(vec![200], vec![("imok", "No")]),
            ok
        ));
        assert!(!response_matches(&check(vec![204], vec![]), ok));
        assert!(!response_matches(
            &check(vec![], vec![]),
            b"HTTP/1.1 503 Unavailable\r\n\r\n"
        ));
        assert!(!response_matches(&check(vec![], vec![]), b"garbage"));
    }

    #[test]
    fn the_request_names_the_host_and_closes() {
        let r = String::from_utf8(request_bytes(&check(vec![], vec![]), "10.0.0.1:8080")).unwrap();
        assert!(
            r.starts_with("GET /health HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nConnection: close\r\n")
        );
        assert!(r.contains("x-check: 1\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
