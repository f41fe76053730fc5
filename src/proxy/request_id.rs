//! `X-Request-Id`: kept when the client sent one valid value, else generated; sent to the
//! target with the request, returned on every response and written to the access log.
//!
//! A Pingora downstream module does it, because every answer passes through the modules: those
//! proxied, those served from the cache (Pingora's hit path and the fast hit), and those the
//! gateway writes itself (404, faults, null routes). The id is added to the response as it is
//! sent, after the store has its copy, and an id in the target's response is removed before it is
//! stored (`strip_stored`), so a hit carries the id of the request it answers, never the one of
//! the request that filled the entry.

use std::any::Any;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::Result;

/// The header's name.
pub(super) const HEADER: &str = "x-request-id";

/// Longest client id kept; a longer one is replaced.
const MAX_LEN: usize = 128;

/// One request's id, and its path and query as the client sent them (policies may change the
/// request's afterwards; the access log writes what the client asked for).
#[derive(Debug, Default)]
pub(super) struct RequestId {
    pub(super) id: String,
    pub(super) target: Option<http::Uri>,
}

/// Whether a client's id is kept: 1 to 128 visible ASCII characters (no spaces or control
/// bytes, which could split a log line or a header).
pub(super) fn valid(v: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&v.len()) && v.iter().all(|b| (0x21..0x7f).contains(b))
}

/// The id of a request: its single valid `X-Request-Id`, else a new random UUID.
pub(super) fn choose(req: &RequestHeader) -> String {
    let mut values = req.headers.get_all(HEADER).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if valid(v.as_bytes()) => String::from_utf8_lossy(v.as_bytes()).into(),
        _ => crate::util::uuid_v4(),
    }
}

/// Removes a target's `X-Request-Id` from a response before it can be stored.
pub(super) fn strip_stored(resp: &mut ResponseHeader) {
    resp.remove_header(HEADER);
}

#[async_trait]
impl HttpModule for RequestId {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        self.target = Some(req.uri.clone());
        self.id = choose(req);
        req.insert_header(HEADER, self.id.as_str())?;
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        if !self.id.is_empty() {
            resp.insert_header(HEADER, self.id.as_str())?;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Builds each request's [`RequestId`].
pub(super) struct Builder;

impl HttpModuleBuilder for Builder {
    fn init(&self) -> Module {
        Box::new(RequestId::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ids: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for id in ids {
            r.append_header(HEADER, *id).unwrap();
        }
        r
    }

    #[test]
    fn a_single_valid_client_id_is_kept_anything_else_replaced() {
        assert_eq!(choose(&req(&["abc-123"])), "abc-123");
        let long = "a".repeat(128);
        assert_eq!(choose(&req(&[&long])), long);
        for bad in [
            &["a".repeat(129)][..],
            &["a b".to_owned()],
            &["x".into(), "y".into()],
        ] {
            let ids: Vec<&str> = bad.iter().map(String::as_str).collect();
            let got = choose(&req(&ids));
            assert_eq!(got.len(), 36, "{bad:?} → {got}");
            assert!(!ids.contains(&got.as_str()));
        }
        assert_ne!(choose(&req(&[])), choose(&req(&[])));
    }
}
