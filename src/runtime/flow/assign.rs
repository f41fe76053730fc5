//! Running an AssignMessage policy (the subset cachegate supports) against a message.
//!
//! The policy model ([`crate::policy::model::AssignMessage`]) is compiled once, when the
//! configuration is loaded: `{var}` templates are parsed and header names are turned into
//! [`http::HeaderName`]s. Per request, [`CompiledAssignMessage::apply`] renders every template and
//! checks every value *before* it changes anything, so a step that fails (an unresolved variable,
//! a header value carrying CR/LF, an invalid status code, …) leaves the message exactly as it was.
//!
//! The message itself is abstract ([`Message`]): the proxy implements it for the upstream request
//! and for the response to the client, and the tests below for a plain struct.
//!
//! Every template is rendered against the variables as they were when the step started: the
//! changes a step makes to its message are not visible to its own templates. `<AssignVariable>`s
//! are the exception in one way: each sees the variables assigned by the ones before it in the same
//! policy, as in Apigee.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::template::{Template, Unresolved};
use super::Variables;
use crate::policy::model::{AssignMessage, MessageTarget, NameValue};

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

/// Why an AssignMessage step failed. The message is left unchanged whenever one is returned.
///
/// Values quoted in these errors are escaped (`escape_debug`), so a CR/LF smuggled in through a
/// variable cannot forge log lines either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// A `{var}` did not resolve and `<IgnoreUnresolvedVariables>` is false.
    #[error("unresolved variable `{0}`")]
    Unresolved(String),
    /// A rendered header value (or a payload `contentType`) is not a valid header value, for
    /// example because it contains CR, LF or NUL (response splitting); it is never written.
    #[error("invalid header value for `{name}`")]
    InvalidHeaderValue {
        /// The header, lower case.
        name: String,
    },
    /// `<StatusCode>` did not render to a number in 100..=599.
    #[error("invalid status code `{0}`")]
    InvalidStatus(String),
    /// `<ReasonPhrase>` rendered to text with control characters (CR/LF would split the
    /// response's status line).
    #[error("invalid reason phrase `{0}`")]
    InvalidReasonPhrase(String),
    /// `<Verb>` did not render to an HTTP method token.
    #[error("invalid method `{0}`")]
    InvalidMethod(String),
    /// `<Path>` did not render to an absolute path of visible ASCII without `?` or `#`.
    #[error("invalid path `{0}`")]
    InvalidPath(String),
}

impl From<Unresolved> for AssignError {
    fn from(u: Unresolved) -> Self {
        AssignError::Unresolved(u.0)
    }
}

/// Escapes control characters for error messages (see [`AssignError`]).
fn escaped(s: &str) -> String {
    s.escape_debug().to_string()
}

/// Which headers or query parameters `<Remove>` drops.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selection<T> {
    /// No `<Headers>` / `<QueryParams>` element.
    Nothing,
    /// `<Headers/>`: all of them.
    All,
    /// The listed ones. May be empty when every listed header name was invalid — which still
    /// removes nothing, never everything.
    Listed(Vec<T>),
}

impl<T> Selection<T> {
    fn is_nothing(&self) -> bool {
        matches!(self, Selection::Nothing)
    }
}

/// A header name with its value template.
#[derive(Debug, Clone)]
struct HeaderTemplate {
    name: HeaderName,
    value: Template,
}

/// A query parameter name (plain text, not encoded) with its value template.
#[derive(Debug, Clone)]
struct ParamTemplate {
    name: String,
    value: Template,
}

/// `<Set><Payload>`.
#[derive(Debug, Clone)]
struct PayloadTemplate {
    content_type: Option<String>,
    body: Template,
}

/// One `<AssignVariable>`.
#[derive(Debug, Clone)]
struct VariableAssignment {
    name: String,
    reference: Option<String>,
    template: Option<Template>,
    value: Option<String>,
}

/// An AssignMessage compiled once at load time: templates parsed, header names validated.
///
/// Header names that are not valid HTTP header names (the parser rejects them, so this only
/// happens with a model built some other way) are skipped here, with a warning in the log, rather
/// than failing or panicking: such a header could never be written anyway.
#[derive(Debug, Clone)]
pub struct CompiledAssignMessage {
    assign_to: Option<MessageTarget>,
    remove_headers: Selection<HeaderName>,
    remove_params: Selection<String>,
    remove_payload: bool,
    add_headers: Vec<HeaderTemplate>,
    add_params: Vec<ParamTemplate>,
    set_headers: Vec<HeaderTemplate>,
    set_params: Vec<ParamTemplate>,
    set_payload: Option<PayloadTemplate>,
    set_status: Option<Template>,
    set_reason: Option<Template>,
    set_verb: Option<Template>,
    set_path: Option<Template>,
    variables: Vec<VariableAssignment>,
    ignore_unresolved: bool,
}

fn header_name(nv: &NameValue) -> Option<HeaderName> {
    match HeaderName::from_bytes(nv.name.trim().as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!(
                name = %escaped(&nv.name),
                line = nv.pos.line,
                "AssignMessage: skipping invalid header name"
            );
            None
        }
    }
}

fn header_templates(list: &[NameValue]) -> Vec<HeaderTemplate> {
    list.iter()
        .filter_map(|nv| {
            header_name(nv).map(|name| HeaderTemplate {
                name,
                value: Template::compile(&nv.value),
            })
        })
        .collect()
}

fn param_templates(list: &[NameValue]) -> Vec<ParamTemplate> {
    list.iter()
        .map(|nv| ParamTemplate {
            name: nv.name.clone(),
            value: Template::compile(&nv.value),
        })
        .collect()
}

/// The ordered changes of one `apply`, all rendered and checked before any is made.
struct Plan<'a> {
    add_headers: Vec<(&'a HeaderName, HeaderValue)>,
    add_params: Vec<(&'a str, String)>,
    set_headers: Vec<(&'a HeaderName, HeaderValue)>,
    set_params: Vec<(&'a str, String)>,
    payload: Option<(Option<&'a str>, Bytes)>,
    status: Option<(StatusCode, Option<String>)>,
    method: Option<Method>,
    path: Option<String>,
}

/// Variables seen by an `<AssignVariable>`: those assigned earlier in the same policy (latest
/// first), then the caller's.
struct Overlay<'a> {
    base: &'a dyn Variables,
    assigned: &'a [(String, String)],
}

impl Variables for Overlay<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        match self.assigned.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Some(Cow::Borrowed(v.as_str())),
            None => self.base.get(name),
        }
    }
}

impl CompiledAssignMessage {
    /// Compiles `am` once, at load time, so that requests only render templates. Never fails:
    /// invalid header names are skipped (see the type's documentation).
    pub fn compile(am: &AssignMessage) -> Self {
        let (remove_headers, remove_params, remove_payload) = match &am.remove {
            None => (Selection::Nothing, Selection::Nothing, false),
            Some(r) => {
                let headers = match &r.headers {
                    None => Selection::Nothing,
                    Some(list) if list.is_empty() => Selection::All,
                    Some(list) => Selection::Listed(list.iter().filter_map(header_name).collect()),
                };
                let params = match &r.query_params {
                    None => Selection::Nothing,
                    Some(list) if list.is_empty() => Selection::All,
                    Some(list) => {
                        Selection::Listed(list.iter().map(|nv| nv.name.clone()).collect())
                    }
                };
                (headers, params, r.payload)
            }
        };
        let (add_headers, add_params) = match &am.add {
            None => (Vec::new(), Vec::new()),
            Some(a) => (
                header_templates(&a.headers),
                param_templates(&a.query_params),
            ),
        };
        let set = am.set.as_ref();
        let set_headers = set
            .map(|s| header_templates(&s.headers))
            .unwrap_or_default();
        let set_params = set
            .map(|s| param_templates(&s.query_params))
            .unwrap_or_default();
        let set_payload = set
            .and_then(|s| s.payload.as_ref())
            .map(|p| PayloadTemplate {
                content_type: p.content_type.clone(),
                body: Template::compile(&p.template),
            });
        let located =
            |v: Option<&crate::diag::Located<String>>| v.map(|l| Template::compile(l.value.trim()));
        let variables = am
            .assign_variables
            .iter()
            .map(|v| VariableAssignment {
                name: v.name.value.clone(),
                reference: v
                    .reference
                    .as_ref()
                    .map(|r| r.value.trim().to_owned())
                    .filter(|r| !r.is_empty()),
                template: v.template.as_ref().map(|t| Template::compile(&t.value)),
                value: v.value.as_ref().map(|l| l.value.clone()),
            })
            .collect();
        Self {
            assign_to: am.assign_to.as_ref().map(|a| a.target),
            remove_headers,
            remove_params,
            remove_payload,
            add_headers,
            add_params,
            set_headers,
            set_params,
            set_payload,
            set_status: located(set.and_then(|s| s.status_code.as_ref())),
            set_reason: located(set.and_then(|s| s.reason_phrase.as_ref())),
            set_verb: located(set.and_then(|s| s.verb.as_ref())),
            set_path: located(set.and_then(|s| s.path.as_ref())),
            variables,
            ignore_unresolved: am.ignore_unresolved_variables,
        }
    }

    /// Which message the policy changes: its <AssignTo> if present, else the message of the side
    /// the step is attached to.
    pub fn target(&self, side: MessageTarget) -> MessageTarget {
        self.assign_to.unwrap_or(side)
    }

    /// Applies Remove, then Add, then Set (Apigee's order), rendering `{var}` templates with
    /// `vars`. Returns the variables assigned by <AssignVariable>s (applied by the caller into its
    /// variable map, in order), or an error.
    ///
    /// Everything is rendered and checked first, so on error the message is unchanged. Query
    /// parameter changes are skipped for messages without a query ([`Message::query`] is `None`,
    /// i.e. responses). `<ReasonPhrase>` is only written together with `<StatusCode>` (the message
    /// offers no way to read the current status).
    pub fn apply(
        &self,
        msg: &mut dyn Message,
        vars: &dyn Variables,
    ) -> Result<Vec<(String, String)>, AssignError> {
        let plan = self.plan(vars)?;
        let assigned = self.assign_variables(vars)?;
        self.execute(plan, msg);
        Ok(assigned)
    }

    /// Only the <AssignVariable> part (for steps attached where no message can be changed).
    ///
    /// Each variable gets the first of `<Ref>` (a variable lookup), `<Template>` (rendered; when a
    /// variable in it does not resolve and unresolved variables are not ignored, `<Value>` is used
    /// instead if present, else the step fails) and `<Value>` (a literal) that resolves. When none
    /// resolves (say, only a `<Ref>` to an unset variable), the variable is left unset and nothing
    /// is reported, as in Apigee.
    pub fn assign_variables(
        &self,
        vars: &dyn Variables,
    ) -> Result<Vec<(String, String)>, AssignError> {
        let mut assigned: Vec<(String, String)> = Vec::new();
        for v in &self.variables {
            let value = {
                let seen = Overlay {
                    base: vars,
                    assigned: &assigned,
                };
                self.variable_value(v, &seen)?
            };
            if let Some(value) = value {
                assigned.push((v.name.clone(), value));
            }
        }
        Ok(assigned)
    }

    fn variable_value(
        &self,
        v: &VariableAssignment,
        vars: &dyn Variables,
    ) -> Result<Option<String>, AssignError> {
        if let Some(found) = v.reference.as_deref().and_then(|r| vars.get(r)) {
            return Ok(Some(found.into_owned()));
        }
        if let Some(t) = &v.template {
            match t.render(vars, self.ignore_unresolved) {
                Ok(s) => return Ok(Some(s.into_owned())),
                Err(u) if v.value.is_none() => return Err(u.into()),
                Err(_) => {}
            }
        }
        Ok(v.value.clone())
    }

    fn render<'t>(
        &self,
        t: &'t Template,
        vars: &dyn Variables,
    ) -> Result<Cow<'t, str>, AssignError> {
        Ok(t.render(vars, self.ignore_unresolved)?)
    }

    fn header_values<'a>(
        &self,
        list: &'a [HeaderTemplate],
        vars: &dyn Variables,
    ) -> Result<Vec<(&'a HeaderName, HeaderValue)>, AssignError> {
        list.iter()
            .map(|h| {
                let text = self.render(&h.value, vars)?;
                // from_bytes (not from_str) so that UTF-8 text is allowed; it still rejects every
                // control character but tab, CR, LF and NUL included.
                let value = HeaderValue::from_bytes(text.as_bytes()).map_err(|_| {
                    AssignError::InvalidHeaderValue {
                        name: h.name.as_str().to_owned(),
                    }
                })?;
                Ok((&h.name, value))
            })
            .collect()
    }

    fn param_values<'a>(
        &self,
        list: &'a [ParamTemplate],
        vars: &dyn Variables,
    ) -> Result<Vec<(&'a str, String)>, AssignError> {
        list.iter()
            .map(|p| Ok((p.name.as_str(), self.render(&p.value, vars)?.into_owned())))
            .collect()
    }

    fn plan<'a>(&'a self, vars: &dyn Variables) -> Result<Plan<'a>, AssignError> {
        let add_headers = self.header_values(&self.add_headers, vars)?;
        let add_params = self.param_values(&self.add_params, vars)?;
        let set_headers = self.header_values(&self.set_headers, vars)?;
        let set_params = self.param_values(&self.set_params, vars)?;
        let payload = match &self.set_payload {
            None => None,
            Some(p) => {
                let body = self.render(&p.body, vars)?;
                let content_type = p.content_type.as_deref();
                if let Some(ct) = content_type {
                    if HeaderValue::from_str(ct).is_err() {
                        return Err(AssignError::InvalidHeaderValue {
                            name: http::header::CONTENT_TYPE.as_str().to_owned(),
                        });
                    }
                }
                Some((content_type, Bytes::from(body.into_owned())))
            }
        };
        let status = match &self.set_status {
            None => None,
            Some(t) => {
                let code = parse_status(&self.render(t, vars)?)?;
                let reason = match &self.set_reason {
                    None => None,
                    Some(r) => Some(check_reason(&self.render(r, vars)?)?),
                };
                Some((code, reason))
            }
        };
        let method = match &self.set_verb {
            None => None,
            Some(t) => Some(parse_method(&self.render(t, vars)?)?),
        };
        let path = match &self.set_path {
            None => None,
            Some(t) => Some(check_path(&self.render(t, vars)?)?),
        };
        Ok(Plan {
            add_headers,
            add_params,
            set_headers,
            set_params,
            payload,
            status,
            method,
            path,
        })
    }

    fn execute(&self, plan: Plan<'_>, msg: &mut dyn Message) {
        // Remove.
        match &self.remove_headers {
            Selection::Nothing => {}
            Selection::All => msg.remove_all_headers(),
            Selection::Listed(names) => names.iter().for_each(|n| msg.remove_header(n)),
        }
        if self.remove_payload {
            msg.remove_payload();
        }
        // Add.
        for (name, value) in plan.add_headers {
            msg.append_header(name, value);
        }
        // Set.
        for (name, value) in plan.set_headers {
            msg.set_header(name, value);
        }
        // Query parameters: Remove, Add and Set in one pass over the parsed query.
        let touches_query = !self.remove_params.is_nothing()
            || !plan.add_params.is_empty()
            || !plan.set_params.is_empty();
        if touches_query {
            if let Some(query) = msg.query() {
                let mut pairs = parse_query(&query);
                let parsed = pairs.len();
                match &self.remove_params {
                    Selection::Nothing => {}
                    Selection::All => pairs.clear(),
                    Selection::Listed(names) => pairs.retain(|p| !names.contains(&p.name)),
                }
                for (name, value) in &plan.add_params {
                    pairs.push(QueryPair::new(name, value));
                }
                for (name, value) in &plan.set_params {
                    set_query_param(&mut pairs, name, value);
                }
                // A Remove that matched nothing leaves the query as received, byte for byte.
                let changed = pairs.len() != parsed
                    || !plan.add_params.is_empty()
                    || !plan.set_params.is_empty();
                if changed {
                    let rebuilt = build_query(&pairs);
                    if rebuilt != query {
                        msg.set_query(&rebuilt);
                    }
                }
            }
        }
        if let Some((content_type, body)) = plan.payload {
            msg.set_payload(content_type, body);
        }
        if let Some((status, reason)) = plan.status {
            msg.set_status(status, reason.as_deref());
        }
        if let Some(method) = plan.method {
            msg.set_method(method);
        }
        if let Some(path) = plan.path {
            msg.set_path(&path);
        }
    }
}

/// `<StatusCode>`: a number in 100..=599.
fn parse_status(text: &str) -> Result<StatusCode, AssignError> {
    text.parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| AssignError::InvalidStatus(escaped(text)))
}

/// `<ReasonPhrase>`: `*( HTAB / SP / VCHAR / obs-text )` (RFC 9112), so no CR, LF or NUL.
fn check_reason(text: &str) -> Result<String, AssignError> {
    if text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)) {
        Ok(text.to_owned())
    } else {
        Err(AssignError::InvalidReasonPhrase(escaped(text)))
    }
}

/// `<Verb>`: an HTTP method token (case kept, as HTTP methods are case-sensitive).
fn parse_method(text: &str) -> Result<Method, AssignError> {
    Method::from_bytes(text.as_bytes()).map_err(|_| AssignError::InvalidMethod(escaped(text)))
}

/// `<Path>`: starts with '/', visible ASCII only (no whitespace, CR, LF or other control
/// characters; non-ASCII must be percent-encoded), and no `?` or `#`, which would change the query
/// or add a fragment — query parameters are set with `<QueryParams>`.
fn check_path(text: &str) -> Result<String, AssignError> {
    let ok = text.starts_with('/')
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(AssignError::InvalidPath(escaped(text)))
    }
}

/// One `name=value` pair of a query string: its text exactly as written (still encoded) and its
/// decoded name, used to match the names a policy gives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueryPair<'q> {
    name: String,
    raw: Cow<'q, str>,
}

impl QueryPair<'_> {
    /// A new pair from plain `name` and `value`, percent-encoded.
    fn new(name: &str, value: &str) -> QueryPair<'static> {
        QueryPair {
            name: name.to_owned(),
            raw: Cow::Owned(format!("{}={}", encode_query(name), encode_query(value))),
        }
    }
}

/// Splits a raw query (`a=1&b=2&a=3`) into its pairs, in order. Empty pieces (`a=1&&b=2`) are
/// dropped; a piece without `=` is a name with no value.
fn parse_query(query: &str) -> Vec<QueryPair<'_>> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let name = piece.split_once('=').map_or(piece, |(n, _)| n);
            QueryPair {
                name: crate::util::percent_decode(name),
                raw: Cow::Borrowed(piece),
            }
        })
        .collect()
}

/// Joins pairs back into a raw query string (no leading '?').
fn build_query(pairs: &[QueryPair<'_>]) -> String {
    let mut out = String::new();
    for (i, p) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&p.raw);
    }
    out
}

/// `<Set><QueryParams>`: the first occurrence of `name` is replaced in place, later ones removed;
/// appended when absent.
fn set_query_param(pairs: &mut Vec<QueryPair<'_>>, name: &str, value: &str) {
    match pairs.iter().position(|p| p.name == name) {
        Some(first) => {
            let mut i = 0;
            pairs.retain(|p| {
                let keep = i <= first || p.name != name;
                i += 1;
                keep
            });
            if let Some(slot) = pairs.get_mut(first) {
                *slot = QueryPair::new(name, value);
            }
        }
        None => pairs.push(QueryPair::new(name, value)),
    }
}

/// Percent-encodes everything but the unreserved characters `A-Za-z0-9-._~` (RFC 3986), so a
/// value can never add a pair (`&`), a fragment (`#`) or a space to the query.
fn encode_query(s: &str) -> String {
    // Upper-case hex digit of a nibble (0..=15), without indexing.
    let hex = |n: u8| char::from(if n < 10 { b'0' + n } else { b'A' + (n - 10) });
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex(b >> 4));
            out.push(hex(b & 0x0f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{Located, Pos};
    use crate::policy::model::{Add, AssignTo, AssignVariable, Payload, Remove, Set};
    use http::HeaderMap;
    use std::collections::HashMap;

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

    #[test]
    fn target_is_assign_to_or_the_steps_side() {
        let plain = CompiledAssignMessage::compile(&AssignMessage::default());
        assert_eq!(plain.target(MessageTarget::Request), MessageTarget::Request);
        assert_eq!(
            plain.target(MessageTarget::Response),
            MessageTarget::Response
        );
        let to_request = CompiledAssignMessage::compile(&AssignMessage {
            assign_to: Some(AssignTo {
                pos: pos(),
                target: MessageTarget::Request,
            }),
            ..AssignMessage::default()
        });
        assert_eq!(
            to_request.target(MessageTarget::Response),
            MessageTarget::Request
        );
    }

    #[test]
    fn empty_policy_changes_nothing() {
        let mut msg = TestMessage::request("a=1&&b").with_header("x-a", "1");
        let before = msg.clone();
        let out = CompiledAssignMessage::compile(&AssignMessage::default())
            .apply(&mut msg, &no_vars())
            .unwrap();
        assert!(out.is_empty());
        assert_eq!(msg, before);
    }

    #[test]
    fn remove_listed_headers_only() {
        let am = AssignMessage {
            remove: Some(Remove {
                headers: Some(vec![nv("X-Drop", ""), nv("x-also", "")]),
                ..Remove::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("")
            .with_header("x-drop", "1")
            .with_header("x-drop", "2")
            .with_header("x-also", "3")
            .with_header("x-keep", "4");
        run(&am, &mut msg, &no_vars());
        assert!(msg.values("x-drop").is_empty());
        assert!(msg.values("x-also").is_empty());
        assert_eq!(msg.values("x-keep"), ["4"]);
    }

    #[test]
    fn remove_empty_headers_removes_all_and_none_removes_nothing() {
        let all = AssignMessage {
            remove: Some(Remove {
                headers: Some(Vec::new()),
                ..Remove::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("")
            .with_header("x-a", "1")
            .with_header("x-b", "2");
        run(&all, &mut msg, &no_vars());
        assert!(msg.headers.is_empty());

        let nothing = AssignMessage {
            remove: Some(Remove::default()),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("a=1").with_header("x-a", "1");
        let before = msg.clone();
        run(&nothing, &mut msg, &no_vars());
        assert_eq!(msg, before);
    }

    #[test]
    fn invalid_header_names_are_skipped_not_turned_into_remove_all() {
        let am = AssignMessage {
            remove: Some(Remove {
                headers: Some(vec![nv("bad name", "")]),
                ..Remove::default()
            }),
            add: Some(Add {
                headers: vec![nv("bad:name", "v"), nv("x-ok", "v")],
                ..Add::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("").with_header("x-keep", "1");
        run(&am, &mut msg, &no_vars());
        assert_eq!(msg.values("x-keep"), ["1"]);
        assert_eq!(msg.values("x-ok"), ["v"]);
        assert_eq!(msg.headers.len(), 2);
    }

    #[test]
    fn remove_payload() {
        let am = AssignMessage {
            remove: Some(Remove {
                payload: true,
                ..Remove::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("");
        run(&am, &mut msg, &no_vars());
        assert_eq!(msg.payload, None);
    }

    #[test]
    fn add_appends_header_values() {
        let am = AssignMessage {
            add: Some(Add {
                headers: vec![nv("X-Tier", "{client.tier}"), nv("x-tier", "second")],
                ..Add::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("").with_header("x-tier", "first");
        run(&am, &mut msg, &vars(&[("client.tier", "gold")]));
        assert_eq!(msg.values("x-tier"), ["first", "gold", "second"]);
    }

    #[test]
    fn set_replaces_header_values() {
        let am = set_headers(vec![nv("X-Api", "v{ver}"), nv("x-new", "n")]);
        let mut msg = TestMessage::request("")
            .with_header("x-api", "old1")
            .with_header("x-api", "old2");
        run(&am, &mut msg, &vars(&[("ver", "2")]));
        assert_eq!(msg.values("x-api"), ["v2"]);
        assert_eq!(msg.values("x-new"), ["n"]);
    }

    #[test]
    fn header_values_may_be_utf8() {
        let am = set_headers(vec![nv("x-name", "{who}")]);
        let mut msg = TestMessage::request("");
        run(&am, &mut msg, &vars(&[("who", "Zoë")]));
        assert_eq!(
            msg.headers.get("x-name").unwrap().as_bytes(),
            "Zoë".as_bytes()
        );
    }

    #[test]
    fn order_is_remove_then_add_then_set() {
        let am = AssignMessage {
            remove: Some(Remove {
                headers: Some(vec![nv("x-a", "")]),
                query_params: Some(vec![nv("p", "")]),
                payload: false,
            }),
            add: Some(Add {
                headers: vec![nv("x-a", "added"), nv("x-b", "added")],
                query_params: vec![nv("p", "added"), nv("q", "added")],
            }),
            set: Some(Set {
                headers: vec![nv("x-b", "set")],
                query_params: vec![nv("q", "set")],
                ..Set::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("p=old&x=1").with_header("x-a", "old");
        run(&am, &mut msg, &no_vars());
        // Remove ran before Add: the added value survives, the old one does not.
        assert_eq!(msg.values("x-a"), ["added"]);
        // Set ran after Add: it replaced the added value.
        assert_eq!(msg.values("x-b"), ["set"]);
        assert_eq!(msg.query, "x=1&p=added&q=set");
    }

    #[test]
    fn json_payload_keeps_its_braces() {
        let am = set_only(Set {
            payload: Some(Payload {
                pos: pos(),
                content_type: Some("application/json".into()),
                template: r#"{"tier":"{client.tier}"}"#.into(),
            }),
            ..Set::default()
        });
        let mut msg = TestMessage::response();
        run(&am, &mut msg, &vars(&[("client.tier", "gold")]));
        assert_eq!(
            msg.payload,
            Some((
                Some("application/json".to_owned()),
                Bytes::from_static(br#"{"tier":"gold"}"#)
            ))
        );
    }

    #[test]
    fn payload_without_content_type() {
        let am = set_only(Set {
            payload: Some(Payload {
                pos: pos(),
                content_type: None,
                template: "hello {name}".into(),
            }),
            ..Set::default()
        });
        let mut msg = TestMessage::request("");
        run(&am, &mut msg, &vars(&[("name", "world")]));
        assert_eq!(
            msg.payload,
            Some((None, Bytes::from_static(b"hello world")))
        );
    }

    #[test]
    fn payload_with_invalid_content_type_is_rejected() {
        let am = set_only(Set {
            payload: Some(Payload {
                pos: pos(),
                content_type: Some("text/plain\r\nx: y".into()),
                template: "x".into(),
            }),
            ..Set::default()
        });
        let mut msg = TestMessage::request("");
        let err = CompiledAssignMessage::compile(&am)
            .apply(&mut msg, &no_vars())
            .unwrap_err();
        assert_eq!(
            err,
            AssignError::InvalidHeaderValue {
                name: "content-type".into()
            }
        );
    }

    #[test]
    fn response_splitting_is_rejected_and_nothing_is_written() {
        let evil = vars(&[("evil", "a\r\nSet-Cookie: x=1")]);
        for ignore in [false, true] {
            for am in [
                AssignMessage {
                    remove: Some(Remove {
                        headers: Some(Vec::new()),
                        ..Remove::default()
                    }),
                    set: Some(Set {
                        headers: vec![nv("x-ok", "fine"), nv("X-Echo", "{evil}")],
                        ..Set::default()
                    }),
                    ignore_unresolved_variables: ignore,
                    ..AssignMessage::default()
                },
                AssignMessage {
                    add: Some(Add {
                        headers: vec![nv("x-echo", "pre-{evil}")],
                        ..Add::default()
                    }),
                    ignore_unresolved_variables: ignore,
                    ..AssignMessage::default()
                },
            ] {
                let mut msg = TestMessage::response().with_header("x-keep", "1");
                let before = msg.clone();
                let err = CompiledAssignMessage::compile(&am)
                    .apply(&mut msg, &evil)
                    .unwrap_err();
                assert_eq!(
                    err,
                    AssignError::InvalidHeaderValue {
                        name: "x-echo".into()
                    }
                );
                assert_eq!(err.to_string(), "invalid header value for `x-echo`");
                // Not even the valid header or the Remove was applied.
                assert_eq!(msg, before);
                assert!(msg.headers.get("set-cookie").is_none());
            }
        }
        for bad in ["a\nb", "a\rb", "a\0b"] {
            let am = set_headers(vec![nv("x-echo", "{v}")]);
            let mut msg = TestMessage::response();
            assert!(matches!(
                CompiledAssignMessage::compile(&am).apply(&mut msg, &vars(&[("v", bad)])),
                Err(AssignError::InvalidHeaderValue { .. })
            ));
        }
    }

    #[test]
    fn unresolved_variable_is_an_error_unless_ignored() {
        let mut am = set_headers(vec![nv("x-a", "[{missing}]")]);
        let mut msg = TestMessage::request("");
        let err = CompiledAssignMessage::compile(&am)
            .apply(&mut msg, &no_vars())
            .unwrap_err();
        assert_eq!(err, AssignError::Unresolved("missing".into()));
        assert_eq!(err.to_string(), "unresolved variable `missing`");
        assert!(msg.headers.is_empty());

        am.ignore_unresolved_variables = true;
        run(&am, &mut msg, &no_vars());
        assert_eq!(msg.values("x-a"), ["[]"]);
    }

    #[test]
    fn status_code_and_reason_phrase() {
        let am = set_only(Set {
            status_code: Some(loc("{code}")),
            reason_phrase: Some(loc("Not {what}")),
            ..Set::default()
        });
        let mut msg = TestMessage::response();
        run(&am, &mut msg, &vars(&[("code", "404"), ("what", "Here")]));
        assert_eq!(msg.status, StatusCode::NOT_FOUND);
        assert_eq!(msg.reason.as_deref(), Some("Not Here"));

        for bad in ["abc", "99", "600", "", "-1", "20 0"] {
            let mut msg = TestMessage::response();
            let err = CompiledAssignMessage::compile(&am)
                .apply(&mut msg, &vars(&[("code", bad), ("what", "x")]))
                .unwrap_err();
            assert_eq!(err, AssignError::InvalidStatus(bad.into()));
            assert_eq!(msg.status, StatusCode::OK);
        }
    }

    #[test]
    fn status_code_without_reason() {
        let am = set_only(Set {
            status_code: Some(loc("201")),
            ..Set::default()
        });
        let mut msg = TestMessage::response();
        run(&am, &mut msg, &no_vars());
        assert_eq!(msg.status, StatusCode::CREATED);
        assert_eq!(msg.reason, None);
    }

    #[test]
    fn reason_phrase_with_crlf_is_rejected() {
        let am = set_only(Set {
            status_code: Some(loc("200")),
            reason_phrase: Some(loc("{r}")),
            ..Set::default()
        });
        let mut msg = TestMessage::response();
        let err = CompiledAssignMessage::compile(&am)
            .apply(&mut msg, &vars(&[("r", "OK\r\nSet-Cookie: x=1")]))
            .unwrap_err();
        assert_eq!(
            err,
            AssignError::InvalidReasonPhrase("OK\\r\\nSet-Cookie: x=1".into())
        );
        assert_eq!(msg.reason, None);
    }

    #[test]
    fn verb() {
        let am = set_only(Set {
            verb: Some(loc("{v}")),
            ..Set::default()
        });
        let mut msg = TestMessage::request("");
        run(&am, &mut msg, &vars(&[("v", "POST")]));
        assert_eq!(msg.method, Method::POST);
        for bad in ["", "GE T", "GET\r\n", "(x)"] {
            let mut msg = TestMessage::request("");
            let err = CompiledAssignMessage::compile(&am)
                .apply(&mut msg, &vars(&[("v", bad)]))
                .unwrap_err();
            assert_eq!(err, AssignError::InvalidMethod(escaped(bad)));
            assert_eq!(msg.method, Method::GET);
        }
    }

    #[test]
    fn path() {
        let am = set_only(Set {
            path: Some(loc("/v2/items/{id}")),
            ..Set::default()
        });
        let mut msg = TestMessage::request("a=1");
        run(&am, &mut msg, &vars(&[("id", "7")]));
        assert_eq!(msg.path, "/v2/items/7");
        assert_eq!(msg.query, "a=1");
        for bad in ["7 8", "7\r\nx: y", "7?x=1", "7#f", "é"] {
            let mut msg = TestMessage::request("");
            let err = CompiledAssignMessage::compile(&am)
                .apply(&mut msg, &vars(&[("id", bad)]))
                .unwrap_err();
            assert_eq!(
                err,
                AssignError::InvalidPath(escaped(&format!("/v2/items/{bad}")))
            );
            assert_eq!(msg.path, "/items");
        }
        let relative = set_only(Set {
            path: Some(loc("items")),
            ..Set::default()
        });
        assert_eq!(
            CompiledAssignMessage::compile(&relative)
                .apply(&mut TestMessage::request(""), &no_vars())
                .unwrap_err(),
            AssignError::InvalidPath("items".into())
        );
    }

    #[test]
    fn error_text_escapes_control_characters() {
        let err = AssignError::InvalidPath(escaped("/a\r\nb"));
        assert_eq!(err.to_string(), "invalid path `/a\\r\\nb`");
    }

    #[test]
    fn assign_variable_precedence() {
        let base = vars(&[("a", "from-ref"), ("t", "tt")]);
        let am = AssignMessage {
            assign_variables: vec![
                // Ref resolves: it wins.
                variable("v1", Some("a"), Some("tpl-{t}"), Some("lit")),
                // Ref unresolved: Template.
                variable("v2", Some("nope"), Some("tpl-{t}"), Some("lit")),
                // Template unresolved (not ignoring): Value.
                variable("v3", None, Some("tpl-{nope}"), Some("lit")),
                // Only Value.
                variable("v4", None, None, Some("")),
                // Nothing resolves: left unset, no error.
                variable("v5", Some("nope"), None, None),
                // Sees the earlier assignment in the same policy.
                variable("v6", Some("v2"), None, None),
            ],
            ..AssignMessage::default()
        };
        let compiled = CompiledAssignMessage::compile(&am);
        let expected: Vec<(String, String)> = [
            ("v1", "from-ref"),
            ("v2", "tpl-tt"),
            ("v3", "lit"),
            ("v4", ""),
            ("v6", "tpl-tt"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(compiled.assign_variables(&base).unwrap(), expected);
        let mut msg = TestMessage::request("");
        let before = msg.clone();
        assert_eq!(compiled.apply(&mut msg, &base).unwrap(), expected);
        assert_eq!(msg, before);
    }

    #[test]
    fn assign_variable_unresolved_template_without_value() {
        let mut am = AssignMessage {
            assign_variables: vec![variable("v", Some("nope"), Some("x{nope}y"), None)],
            ..AssignMessage::default()
        };
        assert_eq!(
            CompiledAssignMessage::compile(&am).assign_variables(&no_vars()),
            Err(AssignError::Unresolved("nope".into()))
        );
        // An error in AssignVariable also leaves the message unchanged.
        am.set = Some(Set {
            headers: vec![nv("x-a", "1")],
            ..Set::default()
        });
        let mut msg = TestMessage::request("");
        assert!(CompiledAssignMessage::compile(&am)
            .apply(&mut msg, &no_vars())
            .is_err());
        assert!(msg.headers.is_empty());

        // Ignoring unresolved variables: the template renders them empty and wins over Value.
        am.ignore_unresolved_variables = true;
        am.assign_variables = vec![variable("v", None, Some("x{nope}y"), Some("lit"))];
        assert_eq!(
            CompiledAssignMessage::compile(&am)
                .assign_variables(&no_vars())
                .unwrap(),
            vec![("v".to_owned(), "xy".to_owned())]
        );
    }

    #[test]
    fn query_helpers_keep_raw_text() {
        let pairs = parse_query("a=1&b=x%20y&a=3&flag&&c=");
        let names: Vec<&str> = pairs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "a", "flag", "c"]);
        assert_eq!(pairs[1].raw, "b=x%20y");
        assert_eq!(build_query(&pairs), "a=1&b=x%20y&a=3&flag&c=");
        assert_eq!(build_query(&parse_query("")), "");
        assert_eq!(parse_query("my%20name=1")[0].name, "my name");
        assert_eq!(encode_query("a b&c=d/é~-._"), "a%20b%26c%3Dd%2F%C3%A9~-._");
    }

    #[test]
    fn query_set_replaces_first_in_place_and_drops_the_rest() {
        let mut pairs = parse_query("a=1&b=2&a=3&c=4&a=5");
        set_query_param(&mut pairs, "a", "new value");
        assert_eq!(build_query(&pairs), "a=new%20value&b=2&c=4");
        set_query_param(&mut pairs, "d", "&x=y");
        assert_eq!(build_query(&pairs), "a=new%20value&b=2&c=4&d=%26x%3Dy");
    }

    #[test]
    fn query_params_set_add_remove_with_encoding() {
        let am = AssignMessage {
            remove: Some(Remove {
                query_params: Some(vec![nv("drop", ""), nv("my key", "")]),
                ..Remove::default()
            }),
            add: Some(Add {
                query_params: vec![nv("tag", "{tag}"), nv("sp ace", "a&b")],
                ..Add::default()
            }),
            set: Some(Set {
                query_params: vec![nv("page", "{page}"), nv("new", "x y")],
                ..Set::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg =
            TestMessage::request("drop=1&page=1&Drop=keep&keep=a%2Fb&drop=2&page=9&my+key=z");
        run(&am, &mut msg, &vars(&[("tag", "café & co"), ("page", "2")]));
        assert_eq!(
            msg.query,
            "page=2&Drop=keep&keep=a%2Fb&tag=caf%C3%A9%20%26%20co&sp%20ace=a%26b&new=x%20y"
        );
    }

    #[test]
    fn query_remove_all() {
        let am = AssignMessage {
            remove: Some(Remove {
                query_params: Some(Vec::new()),
                ..Remove::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("a=1&b=2");
        run(&am, &mut msg, &no_vars());
        assert_eq!(msg.query, "");
    }

    #[test]
    fn query_untouched_when_unchanged_and_ignored_on_responses() {
        let am = AssignMessage {
            remove: Some(Remove {
                query_params: Some(vec![nv("absent", "")]),
                ..Remove::default()
            }),
            ..AssignMessage::default()
        };
        let mut msg = TestMessage::request("a=1&&b");
        run(&am, &mut msg, &no_vars());
        assert_eq!(msg.query, "a=1&&b");
        assert_eq!(msg.set_query_calls, 0);

        let add = AssignMessage {
            add: Some(Add {
                query_params: vec![nv("a", "1")],
                ..Add::default()
            }),
            ..AssignMessage::default()
        };
        let mut resp = TestMessage::response();
        run(&add, &mut resp, &no_vars());
        assert_eq!(resp.set_query_calls, 0);
        assert_eq!(resp.query, "");
    }
}
