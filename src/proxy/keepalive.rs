//! Keep-alive limits on client connections: how long an idle connection waits for its next
//! request (`[server] keepalive_timeout`) and how many requests one connection may carry
//! (`[server] keepalive_requests`). Set on every request from the configuration the request
//! uses, so both apply after every request and follow reloads; a connection Pingora is already
//! closing (shutdown) is left closing.

use pingora::protocols::http::ServerSession;

use crate::runtime::stage::RequestLimits;

/// Applies the limits to `session`'s connection.
pub(super) fn apply(session: &mut ServerSession, limits: &RequestLimits) {
    if session.get_keepalive().is_none() {
        return;
    }
    session.set_keepalive(Some(limits.keepalive_timeout.as_secs().max(1)));
    // Counted down by Pingora as the connection is reused; the response of the last request
    // allowed says `Connection: close`. Set once, on the connection's first request.
    if session.get_keepalive_reuses_remaining().is_none() {
        session.set_keepalive_reuses_remaining(Some(limits.keepalive_requests.saturating_sub(1)));
    }
}
