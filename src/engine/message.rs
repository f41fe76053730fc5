//! AssignMessage's view of the messages it may change: the request forwarded to the target and
//! the response sent to the client.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};

use crate::runtime::flow::assign::Message;

/// The request, before it is forwarded.
pub struct RequestMessage<'a> {
    pub header: &'a mut RequestHeader,
    /// A new path below the base path, when `<Set><Path>` ran.
    pub new_suffix: Option<String>,
    /// Whether the policy tried to set a request body (not supported; reported by the caller).
    pub payload_ignored: bool,
}

impl Message for RequestMessage<'_> {
    fn set_header(&mut self, name: &HeaderName, value: HeaderValue) {
        let _ = self.header.insert_header(name.clone(), value);
    }
    fn append_header(&mut self, name: &HeaderName, value: HeaderValue) {
        let _ = self.header.append_header(name.clone(), value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.header.remove_header(name);
    }
    fn remove_all_headers(&mut self) {
        let names: Vec<HeaderName> = self.header.headers.keys().cloned().collect();
        for n in names {
            // Host is needed to route the request; AssignMessage cannot remove it.
            if n != http::header::HOST {
                self.header.remove_header(&n);
            }
        }
    }
    fn query(&self) -> Option<String> {
        Some(self.header.uri.query().unwrap_or("").to_owned())
    }
    fn set_query(&mut self, query: &str) {
        let path = self.header.uri.path().to_owned();
        let pq = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        if let Ok(uri) = pq.parse::<http::Uri>() {
            self.header.set_uri(uri);
        }
    }
    fn set_payload(&mut self, _content_type: Option<&str>, _body: Bytes) {
        self.payload_ignored = true;
    }
    fn remove_payload(&mut self) {
        self.payload_ignored = true;
    }
    fn set_status(&mut self, _status: StatusCode, _reason: Option<&str>) {}
    fn set_method(&mut self, method: Method) {
        self.header.set_method(method);
    }
    fn set_path(&mut self, path: &str) {
        self.new_suffix = Some(path.to_owned());
    }
}

/// The response, before it is sent to the client.
pub struct ResponseMessage<'a> {
    pub header: &'a mut ResponseHeader,
    /// A replacement body, when `<Set><Payload>` or `<Remove><Payload/>` ran.
    pub payload: Option<Bytes>,
}

impl Message for ResponseMessage<'_> {
    fn set_header(&mut self, name: &HeaderName, value: HeaderValue) {
        let _ = self.header.insert_header(name.clone(), value);
    }
    fn append_header(&mut self, name: &HeaderName, value: HeaderValue) {
        let _ = self.header.append_header(name.clone(), value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.header.remove_header(name);
    }
    fn remove_all_headers(&mut self) {
        let names: Vec<HeaderName> = self.header.headers.keys().cloned().collect();
        for n in names {
            self.header.remove_header(&n);
        }
    }
    fn query(&self) -> Option<String> {
        None
    }
    fn set_query(&mut self, _query: &str) {}
    fn set_payload(&mut self, content_type: Option<&str>, body: Bytes) {
        if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
            let _ = self.header.insert_header(http::header::CONTENT_TYPE, ct);
        }
        self.payload = Some(body);
    }
    fn remove_payload(&mut self) {
        self.payload = Some(Bytes::new());
    }
    fn set_status(&mut self, status: StatusCode, reason: Option<&str>) {
        let _ = self.header.set_status(status);
        if let Some(r) = reason {
            let _ = self.header.set_reason_phrase(Some(r));
        }
    }
    fn set_method(&mut self, _method: Method) {}
    fn set_path(&mut self, _path: &str) {}
}
