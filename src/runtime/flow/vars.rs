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
    "request.header.names",
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
    "messageid",
    "message.verb",
    "message.uri",
    "message.path",
    "message.querystring",
    "message.content",
    "message.header.names",
    "message.status.code",
    "message.reason.phrase",
];

/// Built-in families whose last part is a header or parameter name.
pub const FAMILIES: &[&str] = &[
    "request.header.",
    "request.queryparam.",
    "request.path.",
    "response.header.",
    "message.header.",
    "message.queryparam.",
    "error.header.",
];

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

    fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        // First occurrence wins, as in Apigee; values are percent-decoded.
        crate::util::query_values(self.query, name)
            .next()
            .map(|v| Cow::Owned(crate::util::percent_decode(v)))
    }
}

impl Variables for RequestVars<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(v) = self.custom.get(name) {
            return Some(Cow::Borrowed(v.as_str()));
        }
        if let Some(h) = name.strip_prefix("request.header.") {
            return Self::header(self.headers, h);
        }
        if let Some(q) = name.strip_prefix("request.queryparam.") {
            return self.query_param(q);
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
            "request.header.names" => {
                let mut names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
                names.dedup();
                Cow::Owned(names.join(", "))
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
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify("request.verb"), VarKind::Builtin);
        assert_eq!(classify("request.header.x-a"), VarKind::Builtin);
        assert_eq!(classify("request.header."), VarKind::Unknown);
        assert_eq!(classify("request.verbb"), VarKind::Unknown);
        assert_eq!(
            classify("responsecache.RC-1.cachehit"),
            VarKind::Policy {
                kind: "responsecache",
                policy: "RC-1".into()
            }
        );
        assert_eq!(
            classify("lookupcache.LC.tier.cachehit"),
            VarKind::Policy {
                kind: "lookupcache",
                policy: "LC.tier".into()
            }
        );
        assert_eq!(classify("responsecache.RC-1.nope"), VarKind::Unknown);
        assert_eq!(classify("client.tier"), VarKind::Unknown);
        assert_eq!(classify("tier"), VarKind::Custom);
        assert_eq!(suggest("request.verbb"), Some("request.verb"));
    }

    #[test]
    fn resolves_request_variables() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        let custom = HashMap::new();
        let mid = std::sync::OnceLock::new();
        let vars = RequestVars {
            method: "GET",
            uri: "/prod/items/7?w=a%20b&w=c",
            path: "/prod/items/7",
            query: "w=a%20b&w=c",
            headers: &headers,
            base_path: "/prod",
            path_suffix: "/items/7",
            path_params: &[("id", "7")],
            client_ip: "127.0.0.1",
            stage: "prod",
            organization: "org",
            api_name: "api",
            revision: 3,
            flow: Some("items"),
            proxy_name: "edge",
            target_name: Some("backend"),
            route_name: Some("default"),
            target_url: Some("http://127.0.0.1:9/api"),
            response_status: None,
            response_headers: None,
            custom: &custom,
            message_id: &mid,
        };
        assert_eq!(vars.get("request.header.x-a").as_deref(), Some("1, 2"));
        assert_eq!(vars.get("request.header.X-A").as_deref(), Some("1, 2"));
        assert_eq!(vars.get("request.queryparam.w").as_deref(), Some("a b"));
        assert_eq!(vars.get("request.path.id").as_deref(), Some("7"));
        assert_eq!(vars.get("proxy.pathsuffix").as_deref(), Some("/items/7"));
        assert_eq!(vars.get("proxy.name").as_deref(), Some("edge"));
        assert_eq!(vars.get("target.name").as_deref(), Some("backend"));
        assert_eq!(vars.get("route.target").as_deref(), Some("backend"));
        assert_eq!(
            vars.get("target.url").as_deref(),
            Some("http://127.0.0.1:9/api")
        );
        assert_eq!(vars.get("is.error").as_deref(), Some("false"));
        let year: i64 = vars
            .get("system.time.year")
            .and_then(|y| y.parse().ok())
            .unwrap();
        assert!(year >= 2026, "{year}");
        let month: u32 = vars
            .get("system.time.month")
            .and_then(|m| m.parse().ok())
            .unwrap();
        assert!((1..=12).contains(&month));
        assert_eq!(vars.get("system.time.nope"), None);
        assert_eq!(vars.get("apiproxy.revision").as_deref(), Some("3"));
        assert_eq!(vars.get("response.status.code"), None);
        assert_eq!(vars.get("nope"), None);
        // `message.*` is the request before there is a response.
        assert_eq!(vars.get("message.header.x-a").as_deref(), Some("1, 2"));
        assert_eq!(vars.get("message.verb").as_deref(), Some("GET"));
        assert_eq!(
            vars.get("message.uri").as_deref(),
            Some("/prod/items/7?w=a%20b&w=c")
        );
        // One messageid per request, whoever asks.
        let id = vars.get("messageid").map(|c| c.into_owned());
        assert_eq!(id.as_ref().map(String::len), Some(36));
        assert_eq!(vars.get("messageid").map(|c| c.into_owned()), id);
        assert_eq!(classify("messageid"), VarKind::Builtin);
        assert_eq!(classify("message.header.x-b"), VarKind::Builtin);
        assert_eq!(classify("message.nope"), VarKind::Unknown);
    }
}
