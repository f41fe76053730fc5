//! Applying a [`CompiledAssignMessage`] to a [`Message`] for one request: every template is
//! rendered and every value checked first (the plan), and only then is the message changed, so a
//! step that fails leaves the message exactly as it was.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::compile::{
    CompiledAssignMessage, HeaderTemplate, ParamTemplate, Selection, VariableAssignment,
};
use super::error::{escaped, AssignError};
use super::message::Message;
use super::query::{build_query, parse_query, set_query_param, QueryPair};
use crate::runtime::flow::template::Template;
use crate::runtime::flow::Variables;

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

    fn withheld(&self, name: &str) -> bool {
        !self.assigned.iter().any(|(n, _)| n == name) && self.base.withheld(name)
    }
}

impl CompiledAssignMessage {
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
