//! One resolved upstream address: where a URL target, a TargetServer or this gateway's own
//! listener (proxy chaining) is reached. Its own file so that `target` and `balance`, which both
//! use it, import it one way.

use std::net::SocketAddr;

/// One resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Resolved address (resolution happens at load time only).
    pub addr: SocketAddr,
    /// Value of the `Host` header sent upstream (host, plus port when not 80).
    pub host_header: String,
}
