//! The request sent to a stage's target: peer options and header rewriting.

use std::time::Duration;

use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::{ErrorType, OrErr, Result};

use crate::runtime::stage::{Stage, Target};
use crate::runtime::target::Host;
#[cfg(test)]
use crate::util::connection_drops_end_to_end;
use crate::util::connection_listed;

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

/// The peer for `host` (the address of `target`, or of one of its LoadBalancer's servers),
/// pre-resolved (no DNS on the request path).
///
/// `per_thread`: each thread reuses only the upstream connections it opened. On the no-steal
/// runtime every proxy thread has an I/O driver of its own and a connection's socket stays
/// registered with the driver of the thread that connected it; reused from another thread's
/// pool entry, each of its readiness events would cross threads (an eventfd write and a
/// wake-up per event). With one shared work-stealing runtime there is one driver, and one pool
/// serves better.
///
/// Handing a connection back to the pool still crosses threads: Pingora 0.9 spawns the task
/// that watches an idle connection on a random runtime (`TransportConnector::release_stream`),
/// and taking the connection again waits for that task to let go (about one cross-thread
/// wake-up per reused connection in `perf`; only a Pingora change removes it). Per-thread
/// pools also split the global idle-pool size between the threads.
///
/// A TLS host (`https://`) gets its SNI, and its certificate is verified (chain against
/// `[server] upstream_ca_file` or the platform's roots, and the SNI name) unless the target
/// says `IgnoreValidationErrors`. Pingora keys its connection pool by address, SNI and the
/// verification flags, so a connection opened without verification is never reused for a
/// target that verifies.
pub(super) fn peer(host: &Host, target: &Target, per_thread: bool) -> HttpPeer {
    let mut peer = match &host.tls {
        Some(tls) => {
            let mut peer = HttpPeer::new(host.addr, true, tls.sni.clone());
            peer.options.verify_cert = tls.verify;
            peer.options.verify_hostname = tls.verify;
            peer
        }
        None => HttpPeer::new(host.addr, false, String::new()),
    };
    if per_thread {
        peer.group_key = thread_slot();
    }
    peer.options.connection_timeout = Some(target.connect_timeout);
    peer.options.read_timeout = Some(target.read_timeout);
    peer.options.write_timeout = Some(target.write_timeout);
    peer.options.idle_timeout = Some(UPSTREAM_IDLE);
    peer
}

/// A number of the current thread's own (never 0: the key of connections shared by all).
fn thread_slot() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static SLOT: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    SLOT.with(|s| *s)
}

/// Request headers that let a client override what the target does (method, URL, client
/// identity) without being part of any cache key. They are removed from cacheable requests so
/// they cannot make a cached response differ from what its key describes.
const UNKEYED_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-host",
];

/// How a request is forwarded, beyond the stage's fixed rewriting.
#[derive(Debug, Default)]
pub(super) struct Forwarding {
    /// The response may be stored: strip unkeyed override headers.
    pub cacheable: bool,
    /// Replace the query string with this one (stage caching forwards only what its key holds).
    pub query: Option<String>,
    /// Synthetic validators (`W/"cg-…"`) to drop from `If-None-Match`: the target never issued
    /// them.
    pub strip_synthetic_validators: bool,
    /// Forward only these request headers (lower case) besides `Host` and the gateway's own
    /// `X-Forwarded-*` (an authorized refresh).
    pub only_headers: Option<Vec<String>>,
}

/// Rewrites the upstream request: base path → target path (`path_prefix`), `Host`
/// (`host_header`), `X-Forwarded-For`/`-Proto`, and removal of hop-by-hop headers (and of
/// unkeyed override headers on cacheable requests).
pub(super) fn rewrite_request(
    req: &mut RequestHeader,
    stage: &Stage,
    host_header: &str,
    path_prefix: &str,
    suffix: &str,
    client_ip: &str,
    fwd: &Forwarding,
) -> Result<()> {
    let mut path = String::with_capacity(path_prefix.len() + suffix.len() + 16);
    path.push_str(path_prefix);
    path.push_str(suffix);
    if path.is_empty() {
        path.push('/');
    }
    let query = match &fwd.query {
        Some(q) => Some(q.as_str()),
        None => req.uri.query(),
    };
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        path.push('?');
        path.push_str(q);
    }
    let uri: http::Uri = path.parse().or_err(
        ErrorType::InvalidHTTPHeader,
        "rewritten upstream URI is invalid",
    )?;
    req.set_uri(uri);

    // Headers named in `Connection` are hop-by-hop too.
    for name in connection_listed(&req.headers)
        .iter()
        .map(String::as_str)
        .chain(HOP_BY_HOP.iter().copied())
    {
        // Pingora frames the upstream body itself; keep its own transfer-encoding decision.
        if name != "transfer-encoding" {
            req.remove_header(name);
        }
    }
    if fwd.cacheable {
        for name in UNKEYED_OVERRIDES {
            req.remove_header(*name);
        }
    }
    if let Some(keep) = &fwd.only_headers {
        let names: Vec<http::HeaderName> = req.headers.keys().cloned().collect();
        for name in names {
            let n = name.as_str();
            // Framing headers stay (a cached POST's body must still arrive intact), and the
            // request id, which the target logs too.
            let framing = matches!(
                n,
                "host" | "content-length" | "content-type" | "transfer-encoding"
            ) || n == super::request_id::HEADER;
            if !framing && !keep.iter().any(|k| k == n) {
                req.remove_header(&name);
            }
        }
    }
    if fwd.strip_synthetic_validators {
        strip_synthetic(req)?;
    }
    if !stage.preserve_host || !req.headers.contains_key(http::header::HOST) {
        req.insert_header(http::header::HOST, host_header)?;
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

/// The prefix of the weak ETags cachegate synthesizes.
pub(super) const SYNTHETIC_ETAG_PREFIX: &str = "W/\"cg-";

fn strip_synthetic(req: &mut RequestHeader) -> Result<()> {
    let Some(inm) = req
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let kept: Vec<&str> = inm
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with(SYNTHETIC_ETAG_PREFIX))
        .collect();
    if kept.is_empty() {
        req.remove_header(&http::header::IF_NONE_MATCH);
    } else {
        let joined = kept.join(", ");
        req.insert_header(http::header::IF_NONE_MATCH, joined)?;
    }
    Ok(())
}

/// The query string stage caching forwards: only the declared key parameters, each with its
/// first value as written (the key uses the first occurrence), in declaration order. So the
/// target sees exactly what the key describes, and `?type=a&type=b` cannot store a response
/// for `type=b` under `type=a`.
pub(super) fn declared_query(query: &str, declared: &[&str]) -> String {
    let mut out = String::new();
    for name in declared {
        let pair = query.split('&').find(|pair| {
            let raw = pair.split_once('=').map_or(*pair, |(k, _)| k);
            crate::util::percent_decode(raw) == *name
        });
        if let Some(pair) = pair {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_query_keeps_first_declared_pairs_only() {
        assert_eq!(
            declared_query("b=2&type=a&x=9&type=b", &["type", "b"]),
            "type=a&b=2"
        );
        assert_eq!(declared_query("t%79pe=a", &["type"]), "t%79pe=a");
        assert_eq!(declared_query("noise=1", &["type"]), "");
        assert_eq!(declared_query("", &[]), "");
    }

    #[test]
    fn connection_listing_end_to_end_headers_is_detected() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONNECTION,
            "keep-alive, close".parse().unwrap(),
        );
        assert!(!connection_drops_end_to_end(&h));
        h.insert(
            http::header::CONNECTION,
            "keep-alive, x-tenant".parse().unwrap(),
        );
        assert!(connection_drops_end_to_end(&h));
    }
}
