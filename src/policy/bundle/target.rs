//! A TargetEndpoint's connection: `HTTPTargetConnection` (a `URL` or a `LoadBalancer` of
//! TargetServers) or `LocalTargetConnection`.
//!
//! A further `impl EndpointMapper` block, called by `endpoint.rs`; it uses the shared checks of
//! `mapper.rs`. Kept apart because it is about backends, not flows.

use super::mapper::EndpointMapper;
use super::model::Connection;
use crate::diag::Located;
use crate::policy::xml::tree::Node;

/// `HTTPTargetConnection` children cachegate does not implement.
const TARGET_UNSUPPORTED: &[&str] = &["SSLInfo", "Authentication", "HealthMonitor"];

/// `LoadBalancer` settings cachegate does not implement (the Server list is read).
const BALANCER_SETTINGS: &[&str] = &[
    "Algorithm",
    "MaxFailures",
    "RetryEnabled",
    "TargetDisableSecs",
    "ServerUnhealthyResponse",
];

/// Per-`Server` settings cachegate does not implement.
const SERVER_SETTINGS: &[&str] = &["IsEnabled", "IsFallback", "Weight"];

impl EndpointMapper<'_, '_> {
    /// Exactly one of `HTTPTargetConnection` and `LocalTargetConnection` (Edge's `HostedTarget`
    /// is unsupported and then stands in for the missing connection).
    pub(super) fn target_connection(&mut self, root: &Node) -> Option<Connection> {
        let hosted = self.single(root, "HostedTarget");
        if let Some(h) = hosted {
            self.unsupported("HostedTarget", h.pos);
        }
        let http = self.single(root, "HTTPTargetConnection");
        let local = self.single(root, "LocalTargetConnection");
        match (http, local) {
            (Some(h), Some(l)) => {
                self.sink.error(
                    h.pos.max(l.pos),
                    "a <TargetEndpoint> with both <HTTPTargetConnection> and <LocalTargetConnection>",
                    Some("keep one: a TargetEndpoint reaches exactly one backend".into()),
                );
                None
            }
            (Some(h), None) => self.http_connection(h),
            (None, Some(l)) => {
                self.expect(l, &["APIProxy", "ProxyEndpoint", "Path"]);
                Some(Connection::Local(l.pos))
            }
            (None, None) => {
                if hosted.is_none() {
                    self.sink.error(
                        root.pos,
                        "missing <HTTPTargetConnection> in <TargetEndpoint>",
                        Some("add <HTTPTargetConnection><URL>https://backend.example</URL></HTTPTargetConnection>".into()),
                    );
                }
                None
            }
        }
    }

    /// `URL` xor `LoadBalancer` (apigeelint TD014), a URL not empty (TD017).
    fn http_connection(&mut self, conn: &Node) -> Option<Connection> {
        let mut known = vec!["URL", "LoadBalancer", "Path"];
        known.extend(TARGET_UNSUPPORTED);
        self.expect(conn, &known);
        for name in TARGET_UNSUPPORTED {
            if let Some(n) = self.single(conn, name) {
                self.unsupported(format!("HTTPTargetConnection/{name}"), n.pos);
            }
        }
        let path = self.text(conn, "Path");
        let url_node = self.single(conn, "URL");
        let balancer = self.single(conn, "LoadBalancer");
        match (url_node, balancer) {
            (Some(_), Some(lb)) => {
                self.sink.error(
                    lb.pos,
                    "both <URL> and <LoadBalancer> in <HTTPTargetConnection>",
                    Some("keep one: a <URL>, or a <LoadBalancer> of TargetServers with a <Path> (apigeelint TD014)".into()),
                );
                None
            }
            (Some(u), None) => {
                self.text_only(u);
                let Some(url) = u.located_text() else {
                    self.sink.error(
                        u.pos,
                        "empty <URL> in <HTTPTargetConnection>",
                        Some("write the backend URL, e.g. <URL>https://backend.example/v1</URL> (apigeelint TD017)".into()),
                    );
                    return None;
                };
                if let Some(p) = path {
                    self.sink.warning(
                        p.pos,
                        "<Path> is used only with a <LoadBalancer>; it is ignored next to <URL>",
                        Some("put the path in the <URL>".into()),
                    );
                }
                Some(Connection::Url(url))
            }
            (None, Some(lb)) => {
                let servers = self.balancer(lb)?;
                Some(Connection::LoadBalancer { servers, path })
            }
            (None, None) => {
                self.sink.error(
                    conn.pos,
                    "missing <URL> in <HTTPTargetConnection>",
                    Some("add <URL>https://backend.example</URL>, or a <LoadBalancer> of TargetServers (apigeelint TD014)".into()),
                );
                None
            }
        }
    }

    /// The `Server@name`s of a `LoadBalancer`; at least one. Its other settings are unsupported.
    fn balancer(&mut self, lb: &Node) -> Option<Vec<Located<String>>> {
        let mut known = vec!["Server"];
        known.extend(BALANCER_SETTINGS);
        self.expect(lb, &known);
        for name in BALANCER_SETTINGS {
            if let Some(n) = self.single(lb, name) {
                self.unsupported(format!("HTTPTargetConnection/LoadBalancer/{name}"), n.pos);
            }
        }
        let mut servers = Vec::new();
        let mut failed = false;
        for s in lb.children_named("Server") {
            self.expect(s, SERVER_SETTINGS);
            for name in SERVER_SETTINGS {
                if let Some(n) = self.single(s, name) {
                    self.unsupported(
                        format!("HTTPTargetConnection/LoadBalancer/Server/{name}"),
                        n.pos,
                    );
                }
            }
            match s.attr_value("name") {
                Some(n) => servers.push(Located::new(n.to_string(), s.pos)),
                None => {
                    failed = true;
                    self.sink.error(
                        s.pos,
                        "missing name attribute on <Server>",
                        Some("name a TargetServer, e.g. <Server name=\"backend-1\"/>".into()),
                    );
                }
            }
        }
        if servers.is_empty() && !failed {
            self.sink.error(
                lb.pos,
                "a <LoadBalancer> without a <Server>",
                Some("add <Server name=\"…\"/> naming a TargetServer".into()),
            );
        }
        (!failed && !servers.is_empty()).then_some(servers)
    }
}
