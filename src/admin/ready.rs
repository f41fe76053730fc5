//! `GET /readyz`: whether this gateway should get traffic. `/healthz` says the process is alive
//! (liveness); readiness also needs the configuration loaded and the proxy listener accepting
//! connections. Redis is reported but never required: without it the gateway is slower, not
//! wrong (every shared-tier failure is a miss).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use http::StatusCode;

use crate::reload::ConfigHandle;

/// How long the proxy listener may take to accept the probe connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The readiness answer: `200` with `"status": "ready"`, or `503` saying what is missing.
pub(super) async fn readiness(
    handle: &ConfigHandle,
    proxy: SocketAddr,
) -> (StatusCode, serde_json::Value) {
    let snap = handle.snapshot();
    let listening = accepts(proxy).await;
    let redis = match (
        handle.store().and_then(|s| s.shared()),
        &snap.config.gateway.redis,
    ) {
        (_, None) => "off",
        (None, Some(_)) => "starting",
        (Some(shared), Some(_)) if shared.breaker_open() => "breaker_open",
        (Some(shared), Some(_)) if shared.is_connected() => "connected",
        (Some(_), Some(_)) => "disconnected",
    };
    let body = serde_json::json!({
        "status": if listening { "ready" } else { "not_ready" },
        "generation": snap.generation,
        "proxy": if listening { "listening" } else { "not_listening" },
        "proxy_address": proxy.to_string(),
        "redis": redis,
    });
    let status = if listening {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

/// Whether the proxy listener accepts a connection (an unspecified address is probed on
/// loopback).
async fn accepts(addr: SocketAddr) -> bool {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    matches!(
        tokio::time::timeout(
            PROBE_TIMEOUT,
            tokio::net::TcpStream::connect((ip, addr.port()))
        )
        .await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_does_not_accept_and_an_open_one_does() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert!(accepts(open.local_addr().unwrap()).await);
        // Probed on loopback when the listener is on every address.
        let any = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            open.local_addr().unwrap().port(),
        );
        assert!(accepts(any).await);
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(!accepts(closed).await);
    }
}
