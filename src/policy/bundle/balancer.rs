//! `HTTPTargetConnection/LoadBalancer` and `HTTPTargetConnection/HealthMonitor`, mapped into
//! [`LoadBalancerSpec`] with every value checked (Apigee's "Load balancing across backend
//! servers" page is the reference for each element and its default).
//!
//! A further `impl EndpointMapper` block, called by `target.rs`.

use super::connection::{LoadBalancerSpec, MonitorSpec, ServerSpec};
use super::mapper::EndpointMapper;
use crate::diag::{Located, Pos};
use crate::policy::check::{self, quoted};
use crate::policy::xml::tree::Node;
use crate::runtime::balance::{Algorithm, Check, HttpCheck, MAX_SERVERS};

const BALANCER_CHILDREN: &[&str] = &[
    "Algorithm",
    "Server",
    "MaxFailures",
    "RetryEnabled",
    "TargetDisableSecs",
    "ServerUnhealthyResponse",
];
const ALGORITHMS: &[&str] = &["RoundRobin", "Weighted", "LeastConnections"];
/// Apigee's timeout for a HealthMonitor's `ConnectTimeoutInSec`/`SocketReadTimeoutInSec` of 0.
const MONITOR_DEFAULT_TIMEOUT_SECS: u64 = 30;

impl EndpointMapper<'_, '_> {
    /// The `<LoadBalancer>` `lb` of the connection `conn`. `None` when it has an error.
    pub(super) fn balancer(
        &mut self,
        conn: &Node,
        lb: &Node,
        path: Option<Located<String>>,
    ) -> Option<Box<LoadBalancerSpec>> {
        self.expect(lb, BALANCER_CHILDREN);
        let errors_before = self.errors();
        let algorithm = match self.text(lb, "Algorithm") {
            None => Algorithm::RoundRobin,
            Some(a) => match a.value.as_str() {
                "RoundRobin" => Algorithm::RoundRobin,
                "Weighted" => Algorithm::Weighted,
                "LeastConnections" => Algorithm::LeastConnections,
                other => {
                    let hint = match check::did_you_mean(other, ALGORITHMS) {
                        Some(s) => format!("did you mean {s}? write RoundRobin (the default), Weighted or LeastConnections"),
                        None => "write RoundRobin (the default), Weighted or LeastConnections".to_owned(),
                    };
                    self.sink.error(
                        a.pos,
                        format!("unknown load balancing algorithm {}", quoted(other)),
                        Some(hint),
                    );
                    Algorithm::RoundRobin
                }
            },
        };
        let max_failures = self.number(lb, "MaxFailures").unwrap_or(0);
        let max_failures = u32::try_from(max_failures).unwrap_or(u32::MAX);
        let retry = self.flag(lb, "RetryEnabled").unwrap_or(true);
        let target_disable_secs = self.number(lb, "TargetDisableSecs");
        let mut unhealthy = Vec::new();
        if let Some(u) = self.single(lb, "ServerUnhealthyResponse") {
            self.expect(u, &["ResponseCode"]);
            for c in u.children_named("ResponseCode") {
                self.text_only(c);
                let Some(t) = c.located_text() else { continue };
                match t.value.parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => unhealthy.push(code),
                    _ => self.sink.error(
                        t.pos,
                        format!("invalid status code {} in <ResponseCode>", quoted(&t.value)),
                        Some(
                            "write a number from 100 to 599, e.g. <ResponseCode>503</ResponseCode>"
                                .into(),
                        ),
                    ),
                }
            }
        }
        let servers = self.servers(lb, algorithm);
        let monitor = self
            .single(conn, "HealthMonitor")
            .and_then(|m| self.monitor(m));
        if let Some(m) = &monitor {
            if max_failures == 0 {
                self.sink.warning(
                    m.pos,
                    "a <HealthMonitor> without <MaxFailures> in the <LoadBalancer> changes nothing: with MaxFailures 0 no server is ever taken out of rotation",
                    Some("add <MaxFailures>5</MaxFailures> (Apigee requires MaxFailures > 0 with a health monitor)".into()),
                );
            }
        }
        if self.errors() > errors_before {
            return None;
        }
        Some(Box::new(LoadBalancerSpec {
            pos: lb.pos,
            algorithm,
            servers: servers?,
            max_failures,
            retry,
            unhealthy,
            target_disable_secs,
            path,
            monitor,
        }))
    }

    /// The `<Server>`s: at least one, each named once, at most one fallback.
    fn servers(&mut self, lb: &Node, algorithm: Algorithm) -> Option<Vec<ServerSpec>> {
        let mut servers: Vec<ServerSpec> = Vec::new();
        for s in lb.children_named("Server") {
            self.expect(s, &["Weight", "IsFallback", "IsEnabled"]);
            let Some(name) = s.attr_value("name").filter(|n| !n.trim().is_empty()) else {
                self.sink.error(
                    s.pos,
                    "missing name attribute on <Server>",
                    Some("name a TargetServer, e.g. <Server name=\"backend-1\"/>".into()),
                );
                continue;
            };
            let name = Located::new(name.trim().to_owned(), s.pos);
            if let Some(first) = servers.iter().find(|o| o.name.value == name.value) {
                self.sink.error(
                    s.pos,
                    format!("<Server name=\"{}\"> is listed twice", name.value),
                    Some(format!(
                        "list each server once (the first is at line {}); use <Weight> to send it more requests",
                        first.name.pos.line
                    )),
                );
                continue;
            }
            let weight = self.number(s, "Weight").map(|w| {
                let at = pos_of(s, "Weight");
                if w == 0 || w > 1000 {
                    self.sink.error(
                        at,
                        format!("<Weight>{w}</Weight> is out of range"),
                        Some("write a whole number from 1 to 1000".into()),
                    );
                } else if algorithm != Algorithm::Weighted {
                    self.sink.warning(
                        at,
                        "<Weight> is used only by the Weighted algorithm; it is ignored",
                        Some("add <Algorithm>Weighted</Algorithm> to the <LoadBalancer>, or remove <Weight>".into()),
                    );
                }
                u32::try_from(w).unwrap_or(1)
            });
            if algorithm == Algorithm::Weighted && weight.is_none() {
                self.sink.warning(
                    s.pos,
                    format!("<Server name=\"{}\"> has no <Weight>; it counts as 1", name.value),
                    Some("the Weighted algorithm needs a <Weight> for each server, e.g. <Weight>2</Weight>".into()),
                );
            }
            let fallback = self.flag(s, "IsFallback").unwrap_or(false);
            let enabled = self.flag(s, "IsEnabled").unwrap_or(true);
            servers.push(ServerSpec {
                name,
                weight,
                fallback,
                enabled,
            });
        }
        let fallbacks: Vec<&ServerSpec> = servers.iter().filter(|s| s.fallback).collect();
        if let [_, second, ..] = fallbacks.as_slice() {
            self.sink.error(
                second.name.pos,
                format!(
                    "a second fallback server (`{}` is one already)",
                    fallbacks[0].name.value
                ),
                Some(
                    "mark one server <IsFallback>true</IsFallback>: Apigee allows one and only one"
                        .into(),
                ),
            );
        }
        if servers.len() > MAX_SERVERS {
            self.sink.error(
                lb.pos,
                format!(
                    "a <LoadBalancer> of {} servers; cachegate balances at most {MAX_SERVERS}",
                    servers.len()
                ),
                Some("split the servers between TargetEndpoints".into()),
            );
        }
        if servers.is_empty() {
            if !lb.children_named("Server").any(|_| true) {
                self.sink.error(
                    lb.pos,
                    "a <LoadBalancer> without a <Server>",
                    Some("add <Server name=\"…\"/> naming a TargetServer".into()),
                );
            }
            return None;
        }
        Some(servers)
    }

    /// An enabled `<HealthMonitor>`: `IntervalInSec` and exactly one of `TCPMonitor` and
    /// `HTTPMonitor`. `None` when it is disabled (Apigee's default) or has an error.
    fn monitor(&mut self, m: &Node) -> Option<MonitorSpec> {
        self.expect(
            m,
            &["IsEnabled", "IntervalInSec", "HTTPMonitor", "TCPMonitor"],
        );
        if !self.flag(m, "IsEnabled").unwrap_or(false) {
            return None;
        }
        let interval = self.number(m, "IntervalInSec");
        let tcp = self.single(m, "TCPMonitor");
        let http = self.single(m, "HTTPMonitor");
        let check = match (tcp, http) {
            (Some(t), None) => self.tcp_monitor(t)?,
            (None, Some(h)) => self.http_monitor(h)?,
            _ => {
                self.sink.error(
                    m.pos,
                    "a <HealthMonitor> needs exactly one of <TCPMonitor> and <HTTPMonitor>",
                    Some("e.g. <TCPMonitor><ConnectTimeoutInSec>5</ConnectTimeoutInSec></TCPMonitor>".into()),
                );
                return None;
            }
        };
        let Some(interval_secs) = interval.filter(|i| *i > 0) else {
            self.sink.error(
                m.pos,
                "a <HealthMonitor> needs <IntervalInSec> greater than 0",
                Some(
                    "write e.g. <IntervalInSec>5</IntervalInSec>: the seconds between two polls"
                        .into(),
                ),
            );
            return None;
        };
        Some(MonitorSpec {
            pos: m.pos,
            interval_secs,
            check,
        })
    }

    fn tcp_monitor(&mut self, t: &Node) -> Option<Check> {
        self.expect(t, &["ConnectTimeoutInSec", "Port"]);
        let connect = self.number(t, "ConnectTimeoutInSec");
        let Some(connect) = connect.filter(|c| *c > 0) else {
            self.sink.error(
                t.pos,
                "a <TCPMonitor> needs <ConnectTimeoutInSec> greater than 0",
                Some("write e.g. <ConnectTimeoutInSec>5</ConnectTimeoutInSec>".into()),
            );
            return None;
        };
        Some(Check::Tcp {
            connect_timeout: std::time::Duration::from_secs(connect),
            port: self.port(t),
        })
    }

    fn http_monitor(&mut self, h: &Node) -> Option<Check> {
        self.expect(h, &["Request", "SuccessResponse"]);
        let Some(req) = self.single(h, "Request") else {
            self.sink.error(
                h.pos,
                "an <HTTPMonitor> needs a <Request>",
                Some("e.g. <Request><Verb>GET</Verb><Path>/health</Path></Request>".into()),
            );
            return None;
        };
        self.expect(
            req,
            &[
                "ConnectTimeoutInSec",
                "SocketReadTimeoutInSec",
                "Port",
                "Verb",
                "Path",
                "Header",
                "Payload",
                "IncludeHealthCheckIdHeader",
                "UseTargetServerSSLInfo",
                "IsSSL",
                "TrustAllSSL",
            ],
        );
        for tls in ["UseTargetServerSSLInfo", "IsSSL"] {
            if self.flag(req, tls) == Some(true) {
                let at = pos_of(req, tls);
                self.unsupported(
                    format!("HTTPTargetConnection/HealthMonitor/HTTPMonitor/Request/{tls}"),
                    at,
                );
            }
        }
        let secs = |v: Option<u64>| {
            std::time::Duration::from_secs(
                v.filter(|v| *v > 0).unwrap_or(MONITOR_DEFAULT_TIMEOUT_SECS),
            )
        };
        let connect_timeout = secs(self.number(req, "ConnectTimeoutInSec"));
        let read_timeout = secs(self.number(req, "SocketReadTimeoutInSec"));
        let verb = self
            .text(req, "Verb")
            .map_or("GET".to_owned(), |v| v.value.to_ascii_uppercase());
        if !matches!(
            verb.as_str(),
            "GET" | "PUT" | "POST" | "DELETE" | "HEAD" | "OPTIONS"
        ) {
            let at = pos_of(req, "Verb");
            self.sink.error(
                at,
                format!("unknown <Verb> {}", quoted(&verb)),
                Some("write GET, PUT, POST or DELETE".into()),
            );
            return None;
        }
        let path = self.text(req, "Path").map_or("/".to_owned(), |p| p.value);
        if !path.starts_with('/') || path.contains(['{', ' ', '#']) {
            let at = pos_of(req, "Path");
            self.sink.error(
                at,
                format!("the health check <Path> {} must be a plain path", quoted(&path)),
                Some("write e.g. <Path>/healthcheck</Path> (no variables: Apigee does not expand them here)".into()),
            );
            return None;
        }
        let headers = self.headers(req)?;
        let payload = self.text(req, "Payload").map(|p| p.value);
        let port = self.port(req);
        let mut codes = Vec::new();
        let mut expect_headers = Vec::new();
        if let Some(sr) = self.single(h, "SuccessResponse") {
            self.expect(sr, &["ResponseCode", "Header"]);
            for c in sr.children_named("ResponseCode") {
                let Some(t) = c.located_text() else { continue };
                match t.value.parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => codes.push(code),
                    _ => {
                        self.sink.error(
                            t.pos,
                            format!("invalid status code {} in <ResponseCode>", quoted(&t.value)),
                            Some("write a number from 100 to 599".into()),
                        );
                        return None;
                    }
                }
            }
            expect_headers = self.headers(sr)?;
        }
        Some(Check::Http(HttpCheck {
            connect_timeout,
            read_timeout,
            port,
            verb,
            path,
            headers,
            payload,
            codes,
            expect_headers,
        }))
    }

    /// `<Header name="…">value</Header>` children.
    fn headers(&mut self, parent: &Node) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        for hd in parent.children_named("Header") {
            let value = hd.located_text().map(|t| t.value).unwrap_or_default();
            let name = hd.attr_value("name").map(str::trim).unwrap_or_default();
            let valid = !name.is_empty()
                && http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && http::HeaderValue::from_str(&value).is_ok();
            if !valid {
                self.sink.error(
                    hd.pos,
                    format!("<Header name={}> is not a valid HTTP header", quoted(name)),
                    Some("write <Header name=\"X-Check\">value</Header>".into()),
                );
                return None;
            }
            out.push((name.to_ascii_lowercase(), value));
        }
        Some(out)
    }

    /// `<Port>`: 1–65535.
    fn port(&mut self, parent: &Node) -> Option<u16> {
        let p = self.number(parent, "Port")?;
        match u16::try_from(p).ok().filter(|p| *p > 0) {
            Some(p) => Some(p),
            None => {
                let at = pos_of(parent, "Port");
                self.sink.error(
                    at,
                    format!("<Port>{p}</Port> is not a port"),
                    Some("write a number from 1 to 65535".into()),
                );
                None
            }
        }
    }

    fn errors(&self) -> usize {
        self.sink.diags.iter().filter(|d| d.is_error()).count()
    }

    /// A whole number in the child `name` (once), reported when it is not one.
    pub(super) fn number(&mut self, parent: &Node, name: &str) -> Option<u64> {
        let t = self.text(parent, name)?;
        match t.value.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.sink.error(
                    t.pos,
                    format!("<{name}> must be a whole number, not {}", quoted(&t.value)),
                    Some(format!("write e.g. <{name}>5</{name}>")),
                );
                None
            }
        }
    }

    /// `true`/`false` in the child `name` (once), reported when it is neither.
    pub(super) fn flag(&mut self, parent: &Node, name: &str) -> Option<bool> {
        let t = self.text(parent, name)?;
        match check::parse_bool(&t.value, &format!("<{name}>")) {
            Ok(b) => Some(b),
            Err(issue) => {
                self.sink.issue(t.pos, issue);
                None
            }
        }
    }
}

/// Where the child `name` of `parent` is (else `parent`), for a diagnostic about its value.
fn pos_of(parent: &Node, name: &str) -> Pos {
    parent
        .children_named(name)
        .next()
        .map_or(parent.pos, |n| n.pos)
}

/// Where `<HealthMonitor>` is, for the warning when it has no `<LoadBalancer>` to serve.
pub(super) fn monitor_pos(conn: &Node) -> Option<Pos> {
    conn.children_named("HealthMonitor").next().map(|m| m.pos)
}
