//! Chunked request bodies are read ahead before anything is forwarded or any policy runs.
//!
//! A body framed by `Content-Length` cannot be malformed, only cut short, and a target sees the
//! shortfall. A chunked body can be malformed half-way (a chunk size that is not hex, a bare LF),
//! and when it is streamed the target has already received the request line and headers: an
//! origin that acts on headers (or on what arrived) would process a request the gateway then
//! refuses. So, as NGINX's `proxy_request_buffering` does, the gateway reads the body first and
//! answers a malformed one with `400` before the target, the cache or an InvalidateCache policy
//! sees the request.
//!
//! Up to [`READ_AHEAD_BYTES`] are read ahead: Pingora forwards a body read before the upstream
//! request from its retry buffer, which holds 64 KiB. A longer body has its first
//! [`READ_AHEAD_BYTES`] validated and held, then streams: the held part is put back in front of
//! the next piece ([`Held::prepend`]), and a malformation further on aborts the upstream request
//! mid-body (the target sees an incomplete request, never a complete one).
//!
//! A stage whose policies read the body (`request.content`, `request.formparam.*`; see
//! `Stage::reads_request_body`) keeps what was read for its flow variables. There a body framed
//! by `Content-Length` is read ahead too, when it is at most [`READ_AHEAD_BYTES`]: read whole,
//! it is forwarded from the same retry buffer, byte for byte. A longer one is not read at all
//! (it streams as it would anyway) and the variables are null, as for a long chunked body.
//! Other stages never wait for a `Content-Length` body.

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

use crate::engine::KeptBody;

/// How much of a chunked body is read before the upstream request is sent (Pingora 0.9's retry
/// buffer, `BODY_BUF_LIMIT`).
pub(super) const READ_AHEAD_BYTES: usize = 64 * 1024;

// The flow variables' body must be one that is forwarded from the retry buffer once read.
const _: () = assert!(crate::engine::MAX_REQUEST_CONTENT <= READ_AHEAD_BYTES);

/// What reading ahead found.
pub(super) enum ReadAhead {
    /// No body read, or the whole body was read and is valid: Pingora forwards it. With `keep`,
    /// what the flow variables get: the body, or `Withheld` for one too long to read.
    Forward(KeptBody),
    /// The body is longer than the read-ahead: what was read is held for [`Held::prepend`]
    /// (and the flow variables do not get it).
    Stream(Held),
    /// The body is malformed (or timed out): refuse with this status and message.
    Refuse(u16, &'static str),
}

/// The part of a long chunked body read ahead, to go in front of the first piece streamed.
#[derive(Debug, Default)]
pub(super) struct Held(Vec<Bytes>);

impl Held {
    /// Puts the held part in front of `data` (a piece of the body on its way to the target).
    pub(super) fn prepend(self, data: &mut Option<Bytes>) {
        let mut joined = BytesMut::with_capacity(
            self.0.iter().map(Bytes::len).sum::<usize>() + data.as_ref().map_or(0, Bytes::len),
        );
        for part in self.0 {
            joined.extend_from_slice(&part);
        }
        if let Some(d) = data.as_ref() {
            joined.extend_from_slice(d);
        }
        *data = Some(joined.freeze());
    }
}

/// Reads a chunked request body ahead (see the module documentation), and with `keep` a
/// `Content-Length` body that fits too, returning it. Errors are those of a connection that is
/// gone: nothing can be answered on it.
pub(super) async fn read_ahead(session: &mut Session, keep: bool) -> pingora::Result<ReadAhead> {
    let chunked = is_chunked(session.req_header());
    let fits = || {
        crate::util::content_length(&session.req_header().headers)
            .is_some_and(|n| n > 0 && n <= READ_AHEAD_BYTES as u64)
    };
    // Read: every chunked body; a `Content-Length` one only when kept and fitting.
    let read = chunked || (keep && fits());
    if !read {
        let announced = crate::engine::facts::announces_body(&session.req_header().headers);
        return Ok(ReadAhead::Forward(if keep && announced {
            KeptBody::Withheld
        } else {
            KeptBody::Absent
        }));
    }
    // A client waiting for `100 Continue` would otherwise wait for its own timeout (curl: 1 s)
    // before sending the body; Pingora sends none of its own.
    if session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        session
            .as_downstream_mut()
            .write_continue_response()
            .await?;
        // Answered here: the target must not send another.
        session
            .req_header_mut()
            .remove_header(&http::header::EXPECT);
    }
    // Pingora fills this buffer with what is read and sends it upstream before streaming the rest.
    session.as_downstream_mut().enable_retry_buffering();
    let mut held = Vec::new();
    let mut read = 0usize;
    loop {
        match session.read_request_body().await {
            Ok(None) if keep => return Ok(ReadAhead::Forward(KeptBody::read(joined(&held)))),
            Ok(None) => return Ok(ReadAhead::Forward(KeptBody::Absent)),
            Ok(Some(part)) => {
                read += part.len();
                held.push(part);
                if read > READ_AHEAD_BYTES {
                    if session.is_body_done() {
                        // Pingora's buffer overflowed and no more pieces will pass the body
                        // filter: the body could not be forwarded whole. (A chunked body's end is
                        // only seen by a read that returns no data, and a `Content-Length` body
                        // is read only when it fits, so this does not happen.)
                        return Ok(ReadAhead::Refuse(
                            413,
                            "the chunked request body could not be buffered; send it with Content-Length",
                        ));
                    }
                    return Ok(ReadAhead::Stream(Held(held)));
                }
            }
            Err(e) => return refusal(e, chunked),
        }
    }
}

/// The parts read, in one piece.
fn joined(parts: &[Bytes]) -> Vec<u8> {
    let mut body = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
    for p in parts {
        body.extend_from_slice(p);
    }
    body
}

fn refusal(e: Box<Error>, chunked: bool) -> pingora::Result<ReadAhead> {
    match e.etype() {
        ErrorType::ReadTimedout => {
            crate::metrics::METRICS
                .client_timeouts
                .with_label_values(&["body"])
                .inc();
            Ok(ReadAhead::Refuse(
                408,
                "the request body did not arrive in time",
            ))
        }
        // The client is gone: nothing to answer, nothing to blame on the gateway.
        ErrorType::ConnectionClosed | ErrorType::ReadError => Err(e.into_down()),
        _ if chunked => Ok(ReadAhead::Refuse(
            400,
            "the chunked request body is malformed",
        )),
        _ => Ok(ReadAhead::Refuse(400, "the request body is malformed")),
    }
}

/// Whether the request's body is framed by `Transfer-Encoding` (`framing` has already refused
/// anything but one `chunked`, in `early_request_filter`).
fn is_chunked(req: &pingora::http::RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
}

#[cfg(test)]
mod tests {
    use super::Held;
    use bytes::Bytes;

    #[test]
    fn held_parts_go_in_front_of_the_next_piece_in_order() {
        let held = Held(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        let mut data = Some(Bytes::from_static(b"ef"));
        held.prepend(&mut data);
        assert_eq!(data.as_deref(), Some(&b"abcdef"[..]));

        let held = Held(vec![Bytes::from_static(b"ab")]);
        let mut end = None;
        held.prepend(&mut end);
        assert_eq!(end.as_deref(), Some(&b"ab"[..]));
    }
}
