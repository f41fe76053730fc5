//! Responses the gateway writes itself: the one place that maps outcomes to status codes and
//! JSON error bodies.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::runtime::stage::Stage;

/// Writes a complete JSON response (with `Content-Length`, so the connection stays reusable).
pub(super) async fn json(
    session: &mut Session,
    status: u16,
    body: &serde_json::Value,
) -> Result<()> {
    bytes(session, status, Bytes::from(body.to_string())).await
}

/// Writes a complete response with a prepared JSON body.
pub(super) async fn bytes(session: &mut Session, status: u16, body: Bytes) -> Result<()> {
    let mut h = ResponseHeader::build(status, Some(3))?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    h.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Why a request is refused before anything is forwarded, if it is: a bare LF ending a line of
/// the header section, an HTTP/1.1 request without `Host` (RFC 9112 §3.2), or one with both
/// `Transfer-Encoding` and `Content-Length`. `raw` is the header section as received.
///
/// RFC 9112 §2.2 lets a recipient accept a bare LF as a line ending, and Pingora does; but a part
/// behind the gateway that does not would see other header lines than the gateway did, so such a
/// request is refused.
///
/// RFC 9112 §6.1 lets a server frame such a request by `Transfer-Encoding` instead, which is what
/// Pingora does (it drops `Content-Length` before any hook runs, so `raw` — the header section as
/// received — is the only place it can still be seen). A gateway in front of other HTTP parts
/// must not guess: one that disagrees about the framing is how requests are smuggled, so the
/// request is refused, as NGINX and most CDNs do.
pub(super) fn ambiguous_framing(
    req: &pingora::http::RequestHeader,
    raw: &[u8],
) -> Option<&'static str> {
    if raw.first() == Some(&b'\n') || raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') {
        return Some("lines must end with CRLF, not a bare LF");
    }
    let h = &req.headers;
    if req.version == http::Version::HTTP_11 && !h.contains_key(http::header::HOST) {
        return Some("an HTTP/1.1 request needs a Host header");
    }
    if h.contains_key(http::header::TRANSFER_ENCODING)
        && (h.contains_key(http::header::CONTENT_LENGTH) || has_field(raw, b"content-length"))
    {
        return Some("a request must not carry both Transfer-Encoding and Content-Length");
    }
    None
}

/// Whether a raw header section (request line first) has a field named `name` (lower case).
fn has_field(raw: &[u8], name: &[u8]) -> bool {
    raw.split(|&b| b == b'\n').skip(1).any(|line| {
        line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name)
    })
}

/// Which `[server] max_*` limit a request exceeds, if any: `414` for the request target, `431`
/// for the header fields (RFC 9110 §15.5.15, RFC 6585 §5).
pub(super) fn over_limits(
    req: &pingora::http::RequestHeader,
    limits: &crate::runtime::stage::RequestLimits,
) -> Option<(u16, &'static str)> {
    if req.raw_path().len() > limits.max_uri_bytes {
        return Some((
            414,
            "the request target is longer than this gateway accepts",
        ));
    }
    if req.headers.len() > limits.max_headers {
        return Some((
            431,
            "the request has more header fields than this gateway accepts",
        ));
    }
    // As on the wire: `name: value` plus CRLF.
    let bytes: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if bytes > limits.max_header_bytes {
        return Some((
            431,
            "the request header fields are larger than this gateway accepts",
        ));
    }
    None
}

/// Refuses a request with a JSON error and closes the connection (the rest of what the client
/// sends cannot be trusted, or is not worth reading).
pub(super) async fn reject(session: &mut Session, code: u16, message: &str) -> Result<()> {
    let error = match code {
        408 => "request_timeout",
        413 => "content_too_large",
        414 => "uri_too_long",
        431 => "request_header_fields_too_large",
        501 => "not_implemented",
        _ => "bad_request",
    };
    let body = Bytes::from(serde_json::json!({ "error": error, "message": message }).to_string());
    json_and_close(session, code, body).await
}

/// Writes a JSON error that must not be stored and closes the connection afterwards.
async fn json_and_close(session: &mut Session, code: u16, body: Bytes) -> Result<()> {
    let mut h = ResponseHeader::build(code, Some(4))?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    h.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    h.insert_header(http::header::CONNECTION, "close")?;
    // Written past the downstream modules: the request id is added here.
    if let Some(id) = session.req_header().headers.get(super::request_id::HEADER) {
        h.insert_header(super::request_id::HEADER, id.clone())?;
    }
    session
        .as_downstream_mut()
        .write_error_response(h, body)
        .await
}

/// Sends the error flow's response (`engine::fault`) to a request that was not forwarded.
pub(super) async fn error_response(
    session: &mut Session,
    mut header: ResponseHeader,
    body: Bytes,
) -> Result<()> {
    header.remove_header(&http::header::TRANSFER_ENCODING);
    header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// The 404 body for a path no stage serves.
pub(super) fn not_found(path: &str) -> serde_json::Value {
    serde_json::json!({
        "error": "not_found",
        "message": "no stage serves this path",
        "path": path,
    })
}

/// The status for a failed proxy attempt, as Pingora's default but with timeouts as 504.
pub(super) fn error_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                // The client is gone: nothing to answer.
                ErrorType::WriteError
                | ErrorType::WriteTimedout
                | ErrorType::ReadError
                | ErrorType::ConnectionClosed => 0,
                // `[server] client_body_timeout_ms` passed between two reads of the body.
                ErrorType::ReadTimedout => 408,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// Answers a failed proxy attempt with a JSON error (`message` replaces the status's own: a
/// target that cannot take any request says why). The connection is closed afterwards
/// (Pingora's error path does not reuse it), which the header says.
pub(super) async fn error(
    session: &mut Session,
    code: u16,
    stage: Option<&Stage>,
    message: Option<&str>,
) -> Result<()> {
    json_and_close(session, code, upstream_error(code, stage, message)).await
}

/// The JSON body of an error answered in `fail_to_proxy`. It names the stage but never the
/// target's address (internal topology is not the client's business).
fn upstream_error(code: u16, stage: Option<&Stage>, custom: Option<&str>) -> Bytes {
    let (error, message) = match code {
        502 => (
            "bad_gateway",
            "the stage's target could not be reached or sent an invalid response",
        ),
        503 => (
            "service_unavailable",
            "no target server of the stage is available",
        ),
        504 => (
            "gateway_timeout",
            "the stage's target did not answer in time",
        ),
        400 => ("bad_request", "the request could not be read"),
        408 => ("request_timeout", "the request body did not arrive in time"),
        _ => (
            "internal_error",
            "the gateway failed to process the request",
        ),
    };
    let body = serde_json::json!({
        "error": error,
        "message": custom.unwrap_or(message),
        "stage": stage.map(|s| s.name.as_str()),
    });
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::{ambiguous_framing, has_field};

    #[test]
    fn a_bare_lf_anywhere_in_the_header_section_is_refused() {
        let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("host", "a").unwrap();
        assert_eq!(
            ambiguous_framing(&req, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            None
        );
        for raw in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
            b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(ambiguous_framing(&req, raw).is_some(), "{raw:?}");
        }
    }

    #[test]
    fn fields_are_found_by_name_in_any_case_and_never_in_the_request_line() {
        let raw = b"POST /content-length: HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH: 4\r\n\r\n";
        assert!(has_field(raw, b"content-length"));
        assert!(has_field(
            b"GET / HTTP/1.1\nContent-length:4\n\n",
            b"content-length"
        ));
        assert!(!has_field(
            b"GET /content-length: HTTP/1.1\r\nHost: a\r\n\r\n",
            b"content-length"
        ));
        assert!(!has_field(
            b"GET / HTTP/1.1\r\nX-Content-Length: 4\r\n\r\n",
            b"content-length"
        ));
        assert!(!has_field(
            b"GET / HTTP/1.1\r\nContent-Lengthy: 4\r\n\r\n",
            b"content-length"
        ));
    }
}
