//! Where a TargetEndpoint (or a RouteRule `<URL>`) sends requests: one resolved address, a
//! LoadBalancer of TargetServers, or another proxy of the environment (proxy chaining).
//!
//! Addresses are resolved when the configuration is loaded, never per request (no DNS on the
//! request path). A target's path may be a `{variable}` template (Apigee message templates in
//! `HTTPTargetConnection/URL` and in a LoadBalancer's `<Path>`, shared reference
//! `apigee-bundles.md` §3); it is rendered per request, and what the variables bring in is
//! percent-encoded so that a value can never add a query, a fragment or a dot segment.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::balance::Balancer;
use crate::runtime::flow::template::Template;
use crate::runtime::flow::Variables;
pub use crate::runtime::host::{Host, Tls};

/// A resolved upstream.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as written (messages, `target.url`); for a LoadBalancer, its servers' names.
    pub url: String,
    /// Where requests go.
    pub to: Destination,
    /// The path in front of the path suffix: the URL's path, the LoadBalancer's `<Path>`, or a
    /// chained proxy's base path. Without trailing slash (`""` for none).
    pub path: TargetPath,
    /// Connect deadline.
    pub connect_timeout: Duration,
    /// Read deadline (between reads).
    pub read_timeout: Duration,
    /// Write deadline (between writes).
    pub write_timeout: Duration,
}

/// Equal when they send requests to the same place in the same way (a LoadBalancer compares
/// by identity: its health state is its own).
impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.to == other.to
            && self.path == other.path
            && (self.connect_timeout, self.read_timeout, self.write_timeout)
                == (
                    other.connect_timeout,
                    other.read_timeout,
                    other.write_timeout,
                )
    }
}

impl Target {
    /// A stand-in for a target that could not be resolved, so that a load with errors can still
    /// run its other checks. A configuration holding one is never used: its load had an error.
    pub fn unresolved(url: &str) -> Self {
        Target {
            url: url.to_owned(),
            to: Destination::Unavailable("the target could not be resolved".to_owned()),
            path: TargetPath::Fixed(String::new()),
            connect_timeout: Duration::ZERO,
            read_timeout: Duration::ZERO,
            write_timeout: Duration::ZERO,
        }
    }
}

/// Where a target's requests go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// One address: an `http://` URL, or this gateway's own listener for a chained proxy.
    Host(Host),
    /// `HTTPTargetConnection/LoadBalancer`: a TargetServer is chosen for each attempt.
    Balanced(Arc<Balancer>),
    /// `LocalTargetConnection` as written; the loader resolves it into a [`Destination::Host`]
    /// (or [`Destination::Unavailable`]) once every stage is known, so none is ever served.
    Local(Box<LocalTarget>),
    /// Nothing can be reached: requests are answered `502` with this message (a chained proxy
    /// that is not deployed in the environment).
    Unavailable(String),
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Host(a), Self::Host(b)) => a == b,
            (Self::Balanced(a), Self::Balanced(b)) => Arc::ptr_eq(a, b),
            (Self::Local(a), Self::Local(b)) => a == b,
            (Self::Unavailable(a), Self::Unavailable(b)) => a == b,
            _ => false,
        }
    }
}

/// A TargetServer of the environment (gateway.toml `[[target_servers]]`, Apigee's environment
/// resource of that name): a named backend address that LoadBalancers list by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetServer {
    /// Its name, as `<Server name>` writes it.
    pub name: String,
    /// Its resolved address and `Host` header.
    pub host: Host,
    /// `enabled` (Apigee `isEnabled`): false takes it out of every LoadBalancer's rotation.
    pub enabled: bool,
}

/// `LocalTargetConnection`: another API proxy of the environment, by name or by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    /// `<APIProxy>`: the other proxy's name (`apiproxy.name`).
    pub api: Option<String>,
    /// `<ProxyEndpoint>`: its ProxyEndpoint's name.
    pub endpoint: Option<String>,
    /// `<Path>`: a path the gateway routes like a client's request (base path and below).
    pub path: Option<String>,
    /// Where it is written, for the loader's diagnostics (a `LocalTarget` is resolved while
    /// loading and never reaches a served configuration).
    pub at: (std::path::PathBuf, Option<crate::diag::Pos>),
}

/// A target's path: literal, or a `{variable}` template rendered per request.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetPath {
    /// Literal, without trailing slash.
    Fixed(String),
    /// With `{variable}` references (as written, without trailing slash).
    Template(Template),
}

/// A rendered target path that would not be one path (a `.` or `..` segment).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the target path `{0}` has a `.` or `..` segment once its variables are filled in")]
pub struct BadTargetPath(pub String);

impl TargetPath {
    /// `text` as a target path: a template when it holds `{variable}` references.
    pub fn new(text: &str) -> Self {
        let text = text.trim_end_matches('/');
        let t = Template::compile(text);
        if t.variables().next().is_some() {
            TargetPath::Template(t)
        } else {
            TargetPath::Fixed(text.to_owned())
        }
    }

    /// The path for one request. Variable values are percent-encoded except `/` (a variable may
    /// hold several segments); an unresolved variable is empty, as in Apigee's templates.
    pub fn render(&self, vars: &dyn Variables) -> Result<Cow<'_, str>, BadTargetPath> {
        let t = match self {
            TargetPath::Fixed(p) => return Ok(Cow::Borrowed(p)),
            TargetPath::Template(t) => t,
        };
        let encoded = EncodedVars(vars);
        let path = t
            .render(&encoded, true)
            .map(Cow::into_owned)
            .unwrap_or_default();
        if path.split('/').any(|s| s == "." || s == "..") {
            return Err(BadTargetPath(path));
        }
        let path = path.trim_end_matches('/');
        Ok(Cow::Owned(if path.is_empty() || path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        }))
    }
}

/// Variables whose values are percent-encoded for a URL path.
struct EncodedVars<'v>(&'v dyn Variables);

impl Variables for EncodedVars<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name).map(|v| Cow::Owned(encode_path(&v)))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `/`.
fn encode_path(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_literal_path_is_fixed_and_loses_its_trailing_slash() {
        assert_eq!(TargetPath::new("/v1/"), TargetPath::Fixed("/v1".into()));
        assert_eq!(TargetPath::new(""), TargetPath::Fixed(String::new()));
        let p = TargetPath::new("/v1");
        assert_eq!(p.render(&vars(&[])).unwrap(), "/v1");
    }

    #[test]
    fn variables_are_encoded_and_cannot_escape_the_path() {
        let p = TargetPath::new("/t/{request.header.tenant}/x");
        let v = vars(&[("request.header.tenant", "a b?c#d")]);
        assert_eq!(p.render(&v).unwrap(), "/t/a%20b%3Fc%23d/x");
        let v = vars(&[("request.header.tenant", "..")]);
        assert!(p.render(&v).is_err());
        // Unresolved: empty, as Apigee renders it.
        assert_eq!(p.render(&vars(&[])).unwrap(), "/t//x");
        // A variable may bring several segments.
        let p = TargetPath::new("{mypath}");
        assert_eq!(p.render(&vars(&[("mypath", "a/b")])).unwrap(), "/a/b");
        assert_eq!(p.render(&vars(&[])).unwrap(), "");
    }
}
