//! One resolved upstream address: where a URL target, a TargetServer or this gateway's own
//! listener (proxy chaining) is reached. Its own file so that `target` and `balance`, which both
//! use it, import it one way.

use std::net::SocketAddr;

/// One resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Resolved address (resolution happens at load time only).
    pub addr: SocketAddr,
    /// Value of the `Host` header sent upstream (host, plus port when not the scheme's default).
    pub host_header: String,
    /// `Some` for an `https://` target (or a TargetServer with `ssl`): the connection is TLS.
    pub tls: Option<Tls>,
}

/// How a TLS connection to a target is made. The trust anchors are the gateway's
/// (`[server] upstream_ca_file`, else the platform's roots), not per target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// The name sent as SNI and checked against the certificate: the URL's host. Never empty:
    /// rustls cannot send an empty SNI (pingora-tls-fastlane-redis.md §2.4).
    pub sni: String,
    /// Whether the certificate is verified (chain and host name). `false` only for Apigee's
    /// `<IgnoreValidationErrors>true` (or `ignore_validation_errors` of a TargetServer), which
    /// is warned about at every load.
    pub verify: bool,
}
