//! [`Message`]: what an AssignMessage step can change, abstracted from Pingora's types so that
//! the policy logic can be tested against a plain struct.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};

/// What AssignMessage can change. Implemented by the proxy for the upstream request and for the
/// response to the client, so that the policy logic does not depend on Pingora's types.
pub trait Message {
    /// Sets header `name` to `value`, replacing all of its existing values (`<Set><Headers>`).
    fn set_header(&mut self, name: &HeaderName, value: HeaderValue);
    /// Adds one more value for header `name`, keeping the existing ones (`<Add><Headers>`).
    fn append_header(&mut self, name: &HeaderName, value: HeaderValue);
    /// Removes every value of header `name` (`<Remove><Headers>` with a list).
    fn remove_header(&mut self, name: &HeaderName);
    /// Removes every header (`<Remove><Headers/>`, as in Apigee).
    fn remove_all_headers(&mut self);
    /// Raw query string without '?' (request only; responses return None and ignore sets).
    fn query(&self) -> Option<String>;
    /// Replaces the raw query string (without '?'; empty = no query). Responses ignore it.
    fn set_query(&mut self, query: &str);
    /// Replaces the body; `content_type` (when given) also sets the `Content-Type` header.
    fn set_payload(&mut self, content_type: Option<&str>, body: Bytes);
    /// Removes the body (`<Remove><Payload/>`).
    fn remove_payload(&mut self);
    /// Sets the status line. Response only (requests ignore).
    fn set_status(&mut self, status: StatusCode, reason: Option<&str>);
    /// Sets the method. Request only (responses ignore).
    fn set_method(&mut self, method: Method);
    /// Sets the path (without query). Request only (responses ignore).
    fn set_path(&mut self, path: &str);
}

/// Which message an AssignMessage changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageTarget {
    /// The request (to the target).
    Request,
    /// The response (to the client).
    Response,
}
