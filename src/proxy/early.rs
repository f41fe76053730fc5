//! What every request goes through before anything else: the refusals decided while the head
//! was read (ambiguous framing, `[server] max_*` limits, a path climbing above the root), and
//! the client's address.

use pingora::proxy::Session;
use pingora::Result;

use super::{respond, Ctx};

/// Answers a request refused before anything else runs: ambiguous framing (the connection is
/// closed after the answer: its framing cannot be trusted), a `[server] max_*` limit, or a path
/// climbing above the root. `Ok(true)` when the request has been answered.
pub(super) async fn refuse(session: &mut Session, ctx: &Ctx) -> Result<bool> {
    let raw = session
        .as_downstream()
        .as_http1()
        .map(|h1| h1.get_headers_raw_bytes())
        .unwrap_or_default();
    if let Some(message) = respond::ambiguous_framing(session.req_header(), &raw) {
        respond::reject(session, 400, message).await?;
        return Ok(true);
    }
    if let Some((code, message)) = ctx.over_limit {
        respond::reject(session, code, message).await?;
        return Ok(true);
    }
    if ctx.bad_path {
        let body = bytes::Bytes::from_static(
            br#"{"error":"bad_request","message":"the path climbs above the root"}"#,
        );
        respond::bytes(session, 400, body).await?;
        return Ok(true);
    }
    Ok(false)
}

pub(super) fn client_ip(session: &Session) -> String {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}
