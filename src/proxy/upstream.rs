//! The request sent to a stage's target: peer options and header rewriting.

use std::time::Duration;

use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::{ErrorType, OrErr, Result};

use crate::config::runtime::{Stage, Target};

/// How long an idle upstream connection is kept for reuse.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The peer for `target`, from its pre-resolved address (no DNS on the request path).
pub(super) fn peer(target: &Target) -> HttpPeer {
    let mut peer = HttpPeer::new(target.addr, false, String::new());
    peer.options.connection_timeout = Some(target.connect_timeout);
    peer.options.read_timeout = Some(target.read_timeout);
    peer.options.write_timeout = Some(target.write_timeout);
    peer.options.idle_timeout = Some(UPSTREAM_IDLE);
    peer
}

/// Rewrites the upstream request: base path → target path, `Host`, `X-Forwarded-*`, and
/// removal of hop-by-hop headers.
pub(super) fn rewrite_request(
    req: &mut RequestHeader,
    stage: &Stage,
    suffix: &str,
    client_ip: &str,
) -> Result<()> {
    let target = &stage.target;
    let mut path = String::with_capacity(target.path_prefix.len() + suffix.len() + 16);
    path.push_str(&target.path_prefix);
    path.push_str(suffix);
    if path.is_empty() {
        path.push('/');
    }
    if let Some(q) = req.uri.query() {
        path.push('?');
        path.push_str(q);
    }
    let uri: http::Uri = path.parse().or_err(
        ErrorType::InvalidHTTPHeader,
        "rewritten upstream URI is invalid",
    )?;
    req.set_uri(uri);

    // Headers named in `Connection` are hop-by-hop too.
    let listed: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .filter(|s| !s.is_empty())
        .collect();
    for name in listed
        .iter()
        .map(String::as_str)
        .chain(HOP_BY_HOP.iter().copied())
    {
        // Pingora frames the upstream body itself; keep its own transfer-encoding decision.
        if name != "transfer-encoding" {
            req.remove_header(name);
        }
    }

    let original_host = req.headers.get(http::header::HOST).cloned();
    if !stage.preserve_host || original_host.is_none() {
        req.insert_header(http::header::HOST, target.host_header.as_str())?;
    }
    if let Some(h) = original_host {
        req.insert_header("x-forwarded-host", h)?;
    }
    if !client_ip.is_empty() {
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {client_ip}"),
            _ => client_ip.to_owned(),
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    req.insert_header("x-forwarded-proto", "http")?;
    Ok(())
}
