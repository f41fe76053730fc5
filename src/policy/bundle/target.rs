//! A TargetEndpoint's connection: `HTTPTargetConnection` (a `URL` or a `LoadBalancer` of
//! TargetServers, see `balancer.rs`) or `LocalTargetConnection`.
//!
//! A further `impl EndpointMapper` block, called by `endpoint.rs`; it uses the shared checks of
//! `mapper.rs`. Kept apart because it is about backends, not flows.

use super::balancer::monitor_pos;
use super::connection::LocalSpec;
use super::mapper::EndpointMapper;
use super::model::Connection;
use crate::policy::xml::tree::Node;

/// `HTTPTargetConnection` children cachegate does not implement.
const TARGET_UNSUPPORTED: &[&str] = &["Authentication"];

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
            (None, Some(l)) => self.local_connection(l),
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
        // `SSLInfo` is read by `ssl_info` (ssl.rs).
        let mut known = vec!["URL", "LoadBalancer", "Path", "HealthMonitor", "SSLInfo"];
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
                if let Some(m) = monitor_pos(conn) {
                    self.sink.warning(
                        m,
                        "<HealthMonitor> is used only with a <LoadBalancer>; it is ignored next to <URL> (apigeelint TD016)",
                        Some("remove it, or list the backends as TargetServers in a <LoadBalancer>".into()),
                    );
                }
                Some(Connection::Url(url))
            }
            (None, Some(lb)) => self.balancer(conn, lb, path).map(Connection::LoadBalancer),
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

    /// `LocalTargetConnection`: `<APIProxy>` (with `<ProxyEndpoint>`, default `default`) or
    /// `<Path>`, not both.
    fn local_connection(&mut self, l: &Node) -> Option<Connection> {
        self.expect(l, &["APIProxy", "ProxyEndpoint", "Path"]);
        let api = self.text(l, "APIProxy");
        let endpoint = self.text(l, "ProxyEndpoint");
        let path = self.text(l, "Path");
        match (&api, &path) {
            (Some(_), Some(p)) => {
                self.sink.error(
                    p.pos,
                    "a <LocalTargetConnection> with both <APIProxy> and <Path>",
                    Some("name the proxy (<APIProxy> and <ProxyEndpoint>) or its path (<Path>), not both".into()),
                );
                return None;
            }
            (None, None) => {
                self.sink.error(
                    l.pos,
                    "a <LocalTargetConnection> names no proxy",
                    Some("write <APIProxy>other-proxy</APIProxy><ProxyEndpoint>default</ProxyEndpoint>, or <Path>/other/base/path</Path>".into()),
                );
                return None;
            }
            (None, Some(_)) => {
                if let Some(e) = &endpoint {
                    self.sink.warning(
                        e.pos,
                        "<ProxyEndpoint> is used only with <APIProxy>; it is ignored next to <Path>",
                        None,
                    );
                }
            }
            (Some(_), None) => {}
        }
        Some(Connection::Local(LocalSpec {
            pos: l.pos,
            api,
            endpoint,
            path,
        }))
    }
}
