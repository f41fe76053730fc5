//! Unit tests of AssignMessage, run against [`TestMessage`], a plain struct standing in for the
//! proxy's request and response. This file holds the test message and the helpers that build
//! policies; the tests themselves are grouped by what they change.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::compile::CompiledAssignMessage;
use super::error::{escaped, AssignError};
use super::message::Message;
use crate::diag::{Located, Pos};
use crate::policy::model::{
    Add, AssignMessage, AssignTo, AssignVariable, MessageTarget, NameValue, Payload, Remove, Set,
};

mod headers;
mod query;
mod start_line;
mod variables;

/// A message with everything AssignMessage can change; `response` makes it behave like a
/// response (no query, ignores method/path) and otherwise like a request (ignores status).
#[derive(Debug, Clone, PartialEq)]
struct TestMessage {
    response: bool,
    headers: HeaderMap,
    query: String,
    payload: Option<(Option<String>, Bytes)>,
    status: StatusCode,
    reason: Option<String>,
    method: Method,
    path: String,
    set_query_calls: usize,
}

impl TestMessage {
    fn request(query: &str) -> Self {
        Self {
            response: false,
            headers: HeaderMap::new(),
            query: query.to_owned(),
            payload: Some((None, Bytes::from_static(b"original"))),
            status: StatusCode::OK,
            reason: None,
            method: Method::GET,
            path: "/items".to_owned(),
            set_query_calls: 0,
        }
    }

    fn response() -> Self {
        Self {
            response: true,
            query: String::new(),
            ..Self::request("")
        }
    }

    fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.append(name, HeaderValue::from_static(value));
        self
    }

    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }
}

impl Message for TestMessage {
    fn set_header(&mut self, name: &HeaderName, value: HeaderValue) {
        self.headers.insert(name.clone(), value);
    }
    fn append_header(&mut self, name: &HeaderName, value: HeaderValue) {
        self.headers.append(name.clone(), value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
    fn remove_all_headers(&mut self) {
        self.headers.clear();
    }
    fn query(&self) -> Option<String> {
        (!self.response).then(|| self.query.clone())
    }
    fn set_query(&mut self, query: &str) {
        if !self.response {
            self.query = query.to_owned();
            self.set_query_calls += 1;
        }
    }
    fn set_payload(&mut self, content_type: Option<&str>, body: Bytes) {
        self.payload = Some((content_type.map(str::to_owned), body));
    }
    fn remove_payload(&mut self) {
        self.payload = None;
    }
    fn set_status(&mut self, status: StatusCode, reason: Option<&str>) {
        if self.response {
            self.status = status;
            self.reason = reason.map(str::to_owned);
        }
    }
    fn set_method(&mut self, method: Method) {
        if !self.response {
            self.method = method;
        }
    }
    fn set_path(&mut self, path: &str) {
        if !self.response {
            self.path = path.to_owned();
        }
    }
}

fn pos() -> Pos {
    Pos::new(1, 1)
}

fn loc(s: &str) -> Located<String> {
    Located::new(s.to_owned(), pos())
}

fn nv(name: &str, value: &str) -> NameValue {
    NameValue {
        pos: pos(),
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn no_vars() -> HashMap<String, String> {
    HashMap::new()
}

fn set_headers(list: Vec<NameValue>) -> AssignMessage {
    AssignMessage {
        set: Some(Set {
            headers: list,
            ..Set::default()
        }),
        ..AssignMessage::default()
    }
}

fn set_only(set: Set) -> AssignMessage {
    AssignMessage {
        set: Some(set),
        ..AssignMessage::default()
    }
}

fn variable(
    name: &str,
    reference: Option<&str>,
    template: Option<&str>,
    value: Option<&str>,
) -> AssignVariable {
    AssignVariable {
        pos: pos(),
        name: loc(name),
        reference: reference.map(loc),
        template: template.map(loc),
        value: value.map(loc),
    }
}

fn run(am: &AssignMessage, msg: &mut TestMessage, vars: &HashMap<String, String>) {
    CompiledAssignMessage::compile(am).apply(msg, vars).unwrap();
}
