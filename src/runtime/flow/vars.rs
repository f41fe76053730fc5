//! Flow variables: the catalog of built-in names (for validation) and their values for one request.
//!
//! Names follow Apigee's flow-variable reference. Header and query parameter names are
//! case-insensitive for headers (HTTP) and case-sensitive for query parameters, as in Apigee.

use std::borrow::Cow;
use std::collections::HashMap;

use http::HeaderMap;

use super::Variables;

/// Fixed built-in variable names.
pub const FIXED: &[&str] = &[
    "request.verb",
    "request.uri",
    "request.path",
    "request.querystring",
    "request.content",
    "request.formparams.count",
    "request.formparams.names",
    "request.queryparams.count",
    "request.queryparams.names",
    "request.headers.count",
    "request.headers.names",
    "proxy.basepath",
    "proxy.pathsuffix",
    "proxy.url",
    "client.ip",
    "environment.name",
    "organization.name",
    "apiproxy.name",
    "apiproxy.revision",
    "current.flow.name",
    "system.timestamp",
    "system.time",
    "system.uuid",
    "system.time.year",
    "system.time.month",
    "system.time.day",
    "system.time.hour",
    "system.time.minute",
    "system.time.second",
    "system.time.millisecond",
    "system.time.zone",
    "proxy.name",
    "target.name",
    "target.url",
    "loadbalancing.targetserver",
    "loadbalancing.isfallback",
    "loadbalancing.failedservers",
    "route.name",
    "route.target",
    "is.error",
    "fault.name",
    "fault.category",
    "fault.reason",
    "error.message",
    "error.content",
    "error.status.code",
    "error.reason.phrase",
    "response.status.code",
    "response.reason.phrase",
    "response.content",
    "response.headers.count",
    "response.headers.names",
    "messageid",
    "message.verb",
    "message.uri",
    "message.path",
    "message.querystring",
    "message.content",
    "message.formparams.count",
    "message.formparams.names",
    "message.queryparams.count",
    "message.queryparams.names",
    "message.headers.count",
    "message.headers.names",
    "message.status.code",
    "message.reason.phrase",
];

/// Built-in families whose last part is a header or parameter name.
pub const FAMILIES: &[&str] = &[
    "request.header.",
    "request.queryparam.",
    "request.formparam.",
    "request.path.",
    "response.header.",
    "message.header.",
    "message.queryparam.",
    "error.header.",
    "message.formparam.",
];

/// Whether a reference to `name` needs the request body (`request.content`, the form
/// parameters) — `message.*` only where it is the request (`message_is_request`: a request step,
/// a flow, route or request step condition). Compiled into `Stage::reads_request_body`, so a
/// stage that never reads the body never waits for it.
pub fn reads_request_body(name: &str, message_is_request: bool) -> bool {
    let rest = match name.strip_prefix("request.") {
        Some(rest) => rest,
        None if message_is_request => match name.strip_prefix("message.") {
            Some(rest) => rest,
            None => return false,
        },
        None => return false,
    };
    rest == "content"
        || rest == "formparams.count"
        || rest == "formparams.names"
        || rest
            .strip_prefix("formparam.")
            .is_some_and(|p| !p.is_empty())
}

/// Variables set by policies: `<kind>.<policy name>.<field>`.
pub const POLICY_VARIABLES: &[(&str, &[&str])] = &[
    (
        "responsecache",
        &["cachehit", "cachekey", "cachename", "invalidentry"],
    ),
    (
        "lookupcache",
        &["cachehit", "cachekey", "cachename", "assignto"],
    ),
    ("populatecache", &["cachekey", "cachename"]),
    (
        "invalidatecache",
        &["cachekey", "cachename", "purgechildentries"],
    ),
];

/// Prefixes reserved by the gateway: a name under one of these that is not in the catalog can
/// never resolve, which validation reports.
pub const RESERVED_PREFIXES: &[&str] = &[
    "request.",
    "message.",
    "response.",
    "proxy.",
    "client.",
    "environment.",
    "organization.",
    "apiproxy.",
    "system.",
    "current.",
    "responsecache.",
    "lookupcache.",
    "populatecache.",
    "invalidatecache.",
];

/// What validation knows about a variable name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarKind {
    /// A built-in the gateway always provides (it may still be unset for a given request, such as
    /// an absent header).
    Builtin,
    /// Set by the named policy of the given kind (`responsecache.X.cachehit`): the caller checks
    /// that such a policy exists.
    Policy {
        /// `responsecache`, `lookupcache`, …
        kind: &'static str,
        /// The policy name.
        policy: String,
    },
    /// Under a reserved prefix but not a known variable: cannot exist.
    Unknown,
    /// A custom variable: exists only if some policy assigns it.
    Custom,
}

/// Classifies `name` for validation.
pub fn classify(name: &str) -> VarKind {
    if FIXED.contains(&name) {
        return VarKind::Builtin;
    }
    if FAMILIES
        .iter()
        .any(|f| name.strip_prefix(f).is_some_and(|rest| !rest.is_empty()))
    {
        return VarKind::Builtin;
    }
    for (kind, fields) in POLICY_VARIABLES {
        if let Some(rest) = name.strip_prefix(kind).and_then(|r| r.strip_prefix('.')) {
            if let Some((policy, field)) = rest.rsplit_once('.') {
                if fields.contains(&field) && !policy.is_empty() {
                    return VarKind::Policy {
                        kind,
                        policy: policy.to_owned(),
                    };
                }
            }
            return VarKind::Unknown;
        }
    }
    if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return VarKind::Unknown;
    }
    VarKind::Custom
}

/// The closest built-in name to `name`, for "did you mean" hints.
pub fn suggest(name: &str) -> Option<&'static str> {
    FIXED
        .iter()
        .copied()
        .chain(FAMILIES.iter().copied())
        .map(|c| (crate::util::edit_distance(name, c), c))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The request body as the flow variables see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Body<'a> {
    /// No body, or a stage whose policies never read it (it is not read at all).
    #[default]
    Absent,
    /// The body, as text.
    Text(&'a str),
    /// A body the gateway did not read for the variables: longer than the read-ahead bound
    /// (`engine::MAX_REQUEST_CONTENT`) or not UTF-8. Its variables are null, as in a request
    /// without it; a cache key reading one is not used ([`Variables::withheld`]), since every
    /// such request, whatever its body, would share the entry.
    Withheld,
}

/// Everything needed to resolve variables for one request. Built once per request in the proxy;
/// borrowing, so resolving a variable allocates only when a value must be computed.
pub struct RequestVars<'a> {
    /// Request method.
    pub method: &'a str,
    /// Path and query as received (`/prod/items/1?a=b`).
    pub uri: &'a str,
    /// Path as received (`/prod/items/1`).
    pub path: &'a str,
    /// Raw query string without `?` (empty when none).
    pub query: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The request body (`request.content`), for a stage whose policies read it.
    pub body: Body<'a>,
    /// The body is an `application/x-www-form-urlencoded` form: its fields are
    /// `request.formparam.<name>`, `request.formparams.count`/`.names`.
    pub form: bool,
    /// Stage base path.
    pub base_path: &'a str,
    /// Path after the base path.
    pub path_suffix: &'a str,
    /// Path parameters bound by the matched resource template.
    pub path_params: &'a [(&'a str, &'a str)],
    /// Client IP address.
    pub client_ip: &'a str,
    /// Stage name.
    pub stage: &'a str,
    /// Organisation.
    pub organization: &'a str,
    /// API name.
    pub api_name: &'a str,
    /// Revision.
    pub revision: u32,
    /// Matched flow, if any.
    pub flow: Option<&'a str>,
    /// The ProxyEndpoint's name (`proxy.name`).
    pub proxy_name: &'a str,
    /// The TargetEndpoint chosen, once the RouteRules ran (`target.name`).
    pub target_name: Option<&'a str>,
    /// The RouteRule chosen (`route.name`).
    pub route_name: Option<&'a str>,
    /// The URL the request is forwarded to (`target.url`: the TargetEndpoint's, or the
    /// RouteRule's), once the RouteRules ran.
    pub target_url: Option<&'a str>,
    /// Response status, once there is a response.
    pub response_status: Option<u16>,
    /// Response headers, once there is a response.
    pub response_headers: Option<&'a HeaderMap>,
    /// Response reason phrase (the target's, else the status's canonical one).
    pub response_reason: Option<&'a str>,
    /// Variables set by policies during this request.
    pub custom: &'a HashMap<String, String>,
    /// `messageid`: made on first use, then the same for the whole request (a cache keyed on
    /// it must give every request its own entry, as in Apigee).
    pub message_id: &'a std::sync::OnceLock<String>,
}

impl RequestVars<'_> {
    fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
        // Apigee joins repeated headers with ", ".
        let mut values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = format!("{first}, {second}");
                for v in values {
                    joined.push_str(", ");
                    joined.push_str(v);
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    /// The body as text, if it was read.
    fn content(&self) -> Option<&str> {
        match self.body {
            Body::Text(s) => Some(s),
            Body::Absent | Body::Withheld => None,
        }
    }

    /// The body when it is a form.
    fn form(&self) -> Option<&str> {
        self.content().filter(|_| self.form)
    }

    /// A query or form parameter: the first occurrence wins, as in Apigee; names compare
    /// case-sensitively after decoding, values are percent-decoded (`+` is a space).
    fn param<'q>(list: &str, name: &str) -> Option<Cow<'q, str>> {
        crate::util::query_values(list, name)
            .next()
            .map(|v| Cow::Owned(crate::util::percent_decode(v)))
    }
}

/// Header names joined with `, ` (each once).
fn header_names(headers: &HeaderMap) -> String {
    let names: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
    names.join(", ")
}

impl Variables for RequestVars<'_> {
    fn withheld(&self, name: &str) -> bool {
        self.body == Body::Withheld
            && !self.custom.contains_key(name)
            && reads_request_body(name, self.response_status.is_none())
    }

    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(v) = self.custom.get(name) {
            return Some(Cow::Borrowed(v.as_str()));
        }
        if let Some(h) = name.strip_prefix("request.header.") {
            return Self::header(self.headers, h);
        }
        if let Some(q) = name.strip_prefix("request.queryparam.") {
            return Self::param(self.query, q);
        }
        if let Some(f) = name.strip_prefix("request.formparam.") {
            return Self::param(self.form()?, f);
        }
        if let Some(p) = name.strip_prefix("request.path.") {
            return self
                .path_params
                .iter()
                .find(|(n, _)| *n == p)
                .map(|(_, v)| Cow::Borrowed(*v));
        }
        if let Some(h) = name.strip_prefix("response.header.") {
            return Self::header(self.response_headers?, h);
        }
        // In the error flow, Apigee's `error` is the error response being built (which is the
        // response here); `error.message` and the `fault.*` names are set as variables.
        if let Some(rest) = name.strip_prefix("error.") {
            return self.get(&format!("response.{rest}"));
        }
        // Apigee's `message` is the request in the request flow and the response once there is
        // one.
        if let Some(rest) = name.strip_prefix("message.") {
            let side = if self.response_status.is_some() {
                "response."
            } else {
                "request."
            };
            return self.get(&format!("{side}{rest}"));
        }
        let v = match name {
            "request.verb" => Cow::Borrowed(self.method),
            "request.uri" => Cow::Borrowed(self.uri),
            "request.path" => Cow::Borrowed(self.path),
            "request.querystring" => Cow::Borrowed(self.query),
            "request.content" => Cow::Borrowed(self.content()?),
            "request.formparams.count" => {
                Cow::Owned(crate::util::query_names(self.form()?).len().to_string())
            }
            "request.formparams.names" => {
                Cow::Owned(crate::util::query_names(self.form()?).join(", "))
            }
            "proxy.basepath" => Cow::Borrowed(self.base_path),
            "proxy.pathsuffix" => Cow::Borrowed(self.path_suffix),
            "client.ip" => Cow::Borrowed(self.client_ip),
            "environment.name" => Cow::Borrowed(self.stage),
            "organization.name" => Cow::Borrowed(self.organization),
            "apiproxy.name" => Cow::Borrowed(self.api_name),
            "apiproxy.revision" => Cow::Owned(self.revision.to_string()),
            "current.flow.name" => Cow::Borrowed(self.flow?),
            "system.timestamp" => Cow::Owned(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis().to_string())
                    .unwrap_or_default(),
            ),
            "system.uuid" => Cow::Owned(crate::util::uuid_v4()),
            "messageid" => {
                Cow::Borrowed(self.message_id.get_or_init(crate::util::uuid_v4).as_str())
            }
            "system.time" => Cow::Owned(crate::util::http_date(std::time::SystemTime::now())),
            "proxy.name" => Cow::Borrowed(self.proxy_name),
            "target.name" => Cow::Borrowed(self.target_name?),
            "route.name" => Cow::Borrowed(self.route_name?),
            // The TargetEndpoint's name, or the URL of a RouteRule that bypasses them.
            "route.target" => Cow::Borrowed(self.target_name.or(self.target_url)?),
            "target.url" => Cow::Borrowed(self.target_url?),
            // The error flow sets it (`engine::fault`); everywhere else it is false.
            "is.error" => Cow::Borrowed("false"),
            "system.time.zone" => Cow::Borrowed("UTC"),
            "response.status.code" => Cow::Owned(self.response_status?.to_string()),
            "response.reason.phrase" => Cow::Borrowed(self.response_reason?),
            // Apigee's collections, as `a, b` (distinct names, in order of arrival).
            "request.headers.names" => Cow::Owned(header_names(self.headers)),
            "request.headers.count" => Cow::Owned(self.headers.keys_len().to_string()),
            "response.headers.names" => Cow::Owned(header_names(self.response_headers?)),
            "response.headers.count" => Cow::Owned(self.response_headers?.keys_len().to_string()),
            "request.queryparams.names" => {
                Cow::Owned(crate::util::query_names(self.query).join(", "))
            }
            "request.queryparams.count" => {
                Cow::Owned(crate::util::query_names(self.query).len().to_string())
            }
            // The gateway's own URL as the client addressed it (plain HTTP only in this build).
            "proxy.url" => {
                let host = self.headers.get(http::header::HOST)?.to_str().ok()?;
                Cow::Owned(format!("http://{host}{}", self.uri))
            }
            other => {
                let part = other.strip_prefix("system.time.")?;
                let c = crate::util::civil(std::time::SystemTime::now());
                let n = match part {
                    "year" => c.year,
                    "month" => i64::from(c.month),
                    "day" => i64::from(c.day),
                    "hour" => i64::from(c.hour),
                    "minute" => i64::from(c.minute),
                    "second" => i64::from(c.second),
                    "millisecond" => i64::from(c.millisecond),
                    _ => return None,
                };
                Cow::Owned(n.to_string())
            }
        };
        Some(v)
    }
}

#[cfg(test)]
#[path = "vars_tests.rs"]
mod tests;
