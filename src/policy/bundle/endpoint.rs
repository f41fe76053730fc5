//! One endpoint file's element tree → [`Endpoint`].
//!
//! Apigee's own import is lenient, and real bundles (the fixtures) carry elements that the X
//! schema forbids: two `<Properties>`, empty per-Step `<FaultRules/>`, `<VirtualHost>`s,
//! `<Description>`s everywhere. So this mapping is lenient in the same places and strict only
//! where a loose reading would change what runs:
//!
//! - children may come in any order; empty elements (`<Flows/>`, `<Request/>`, `<PreFlow/>`,
//!   `<Condition/>`) count as absent; `<Properties>` and `<Description>` are ignored anywhere;
//! - an unknown element is a warning that names it (it is ignored, as Apigee ignores it);
//! - a missing required element (endpoint `name`, `BasePath`, a connection, a Step's `Name`), an
//!   element written twice where one is allowed, an element of the other endpoint kind, and a
//!   contradiction (`URL` and `LoadBalancer`, a RouteRule with two destinations) are errors;
//! - elements Apigee has and cachegate does not implement are listed in
//!   [`Endpoint::unsupported`] for the integrator to refuse or warn about by name.
//!
//! Every [`Located`] carries the position of the element it was read from (the `<` of its start
//! tag), also for attribute values and text.
//!
//! The checks every element shares are in `mapper.rs`, the TargetEndpoint's connection in
//! `target.rs`; both are further `impl EndpointMapper` blocks that this file uses.

use super::mapper::EndpointMapper;
use super::model::{
    Endpoint, EndpointKind, FaultRule, Flow, FlowSteps, RouteRule, RouteTarget, Step,
};
use crate::diag::Located;
use crate::policy::check::{self, shown, Sink};
use crate::policy::xml::tree::Node;

/// What a ProxyEndpoint may contain.
const PROXY_CHILDREN: &[&str] = &[
    "HTTPProxyConnection",
    "PreFlow",
    "Flows",
    "PostFlow",
    "PostClientFlow",
    "EventFlow",
    "FaultRules",
    "DefaultFaultRule",
    "RouteRule",
];

/// What a TargetEndpoint may contain.
const TARGET_CHILDREN: &[&str] = &[
    "PreFlow",
    "Flows",
    "PostFlow",
    "EventFlow",
    "FaultRules",
    "DefaultFaultRule",
    "HTTPTargetConnection",
    "LocalTargetConnection",
    "HostedTarget",
];

/// The endpoint kind whose files sit in the other folder.
fn other(kind: EndpointKind) -> EndpointKind {
    match kind {
        EndpointKind::Proxy => EndpointKind::Target,
        EndpointKind::Target => EndpointKind::Proxy,
    }
}

/// What an endpoint of `kind` may contain.
fn children(kind: EndpointKind) -> &'static [&'static str] {
    match kind {
        EndpointKind::Proxy => PROXY_CHILDREN,
        EndpointKind::Target => TARGET_CHILDREN,
    }
}

/// Maps `root` (the root element of a file in `kind`'s folder) to an [`Endpoint`], recording every
/// problem in `sink`. `None` when the root element is not `kind`'s or has no name; otherwise the
/// endpoint, with any part that had an error left out (the caller refuses the bundle on errors).
pub(super) fn endpoint(root: &Node, kind: EndpointKind, sink: &mut Sink<'_>) -> Option<Endpoint> {
    if root.name != kind.element() {
        let hint = if root.name == other(kind).element() {
            format!(
                "move this file to {}/; {}/ holds one <{}> per file",
                other(kind).folder(),
                kind.folder(),
                kind.element()
            )
        } else {
            format!("{}/ holds one <{}> per file", kind.folder(), kind.element())
        };
        sink.error(
            root.pos,
            format!(
                "expected <{}> as the root element, found <{}>",
                kind.element(),
                shown(&root.name)
            ),
            Some(hint),
        );
        return None;
    }
    let mut m = EndpointMapper {
        sink,
        unsupported: Vec::new(),
    };
    m.endpoint(root, kind)
}

impl EndpointMapper<'_, '_> {
    fn endpoint(&mut self, root: &Node, kind: EndpointKind) -> Option<Endpoint> {
        let name = self.required_name(root);
        // The other kind's elements are errors, not unknown: they would silently do nothing here.
        let others: Vec<&str> = children(other(kind))
            .iter()
            .copied()
            .filter(|c| !children(kind).contains(c))
            .collect();
        for c in root
            .children
            .iter()
            .filter(|c| others.contains(&c.name.as_str()))
        {
            self.sink.error(
                c.pos,
                format!(
                    "<{}> belongs in a <{}>, not in a <{}>",
                    c.name,
                    other(kind).element(),
                    kind.element()
                ),
                Some(format!(
                    "move it to a {} file under {}/",
                    other(kind).element(),
                    other(kind).folder()
                )),
            );
        }
        let mut known = children(kind).to_vec();
        known.extend(&others);
        self.expect(root, &known);

        let preflow = self.flow_steps(root, "PreFlow");
        let flows = self.flows(root);
        let postflow = self.flow_steps(root, "PostFlow");
        let fault_rules = self
            .single(root, "FaultRules")
            .map(|n| self.fault_rules(n))
            .unwrap_or_default();
        let default_fault_rule = self
            .single(root, "DefaultFaultRule")
            .and_then(|n| self.fault_rule(n, true));
        if let Some(n) = self.single(root, "EventFlow") {
            self.unsupported("EventFlow", n.pos);
        }
        let (mut base_path, mut post_client_flow) = (None, FlowSteps::default());
        let (mut route_rules, mut connection, mut ssl) = (Vec::new(), None, None);
        match kind {
            EndpointKind::Proxy => {
                base_path = self.base_path(root);
                post_client_flow = self.post_client_flow(root);
                route_rules = root
                    .children_named("RouteRule")
                    .filter_map(|n| self.route_rule(n))
                    .collect();
            }
            EndpointKind::Target => {
                connection = self.target_connection(root);
                ssl = self.ssl_info(root);
            }
        }
        Some(Endpoint {
            kind,
            name: name?,
            pos: root.pos,
            base_path,
            preflow,
            flows,
            postflow,
            post_client_flow,
            fault_rules,
            default_fault_rule,
            route_rules,
            connection,
            ssl,
            unsupported: std::mem::take(&mut self.unsupported),
        })
    }

    // --- Flows and Steps ---

    /// `PreFlow` or `PostFlow` of `parent`: its Request and Response steps.
    fn flow_steps(&mut self, parent: &Node, name: &str) -> FlowSteps {
        let Some(node) = self.single(parent, name) else {
            return FlowSteps::default();
        };
        self.expect(node, &["Request", "Response"]);
        self.sides(node)
    }

    /// The `Request` and `Response` steps of a flow element (checked by the caller).
    fn sides(&mut self, node: &Node) -> FlowSteps {
        FlowSteps {
            request: self.steps_in(node, "Request"),
            response: self.steps_in(node, "Response"),
        }
    }

    /// The Steps of the child `name` (`Request` or `Response`) of `flow`.
    fn steps_in(&mut self, flow: &Node, name: &str) -> Vec<Step> {
        let Some(node) = self.single(flow, name) else {
            return Vec::new();
        };
        self.expect(node, &["Step"]);
        node.children_named("Step")
            .filter_map(|s| self.step(s))
            .collect()
    }

    /// A `<Step>`: `Name` required and not blank, `Condition` optional. An empty per-Step
    /// `<FaultRules/>` is ignored; a non-empty one is unsupported.
    pub(super) fn step(&mut self, node: &Node) -> Option<Step> {
        self.expect(node, &["Name", "Condition", "FaultRules"]);
        if let Some(fr) = self.single(node, "FaultRules") {
            if !fr.children.is_empty() || fr.text_pos.is_some() {
                self.unsupported("Step/FaultRules", fr.pos);
            }
        }
        let condition = self.text(node, "Condition");
        let name = self.text(node, "Name");
        if name.is_none() {
            let what = if node.child("Name").is_some() {
                "empty <Name> in <Step>"
            } else {
                "missing <Name> in <Step>"
            };
            self.sink.error(
                node.pos,
                what,
                Some("name the policy this step runs, e.g. <Name>RC-cache</Name>".into()),
            );
        }
        Some(Step {
            name: name?,
            condition,
        })
    }

    /// `Flows/Flow` of `parent`, in document order.
    fn flows(&mut self, parent: &Node) -> Vec<Flow> {
        let Some(node) = self.single(parent, "Flows") else {
            return Vec::new();
        };
        self.expect(node, &["Flow"]);
        node.children_named("Flow")
            .filter_map(|f| {
                self.expect(f, &["Condition", "Request", "Response"]);
                let name = self.required_name(f);
                let condition = self.text(f, "Condition");
                let steps = self.sides(f);
                Some(Flow {
                    name: name?,
                    condition,
                    steps,
                })
            })
            .collect()
    }

    /// ProxyEndpoint `PostClientFlow`: Response steps only (it runs after the response is sent,
    /// so a Request side cannot run; that is an error rather than steps that silently never run).
    fn post_client_flow(&mut self, root: &Node) -> FlowSteps {
        let Some(node) = self.single(root, "PostClientFlow") else {
            return FlowSteps::default();
        };
        self.expect(node, &["Request", "Response"]);
        if let Some(req) = node.child("Request") {
            self.sink.error(
                req.pos,
                "<PostClientFlow> has no <Request>: it runs after the response is sent",
                Some("move these steps to the PostFlow's <Request>".into()),
            );
        }
        FlowSteps {
            request: Vec::new(),
            response: self.steps_in(node, "Response"),
        }
    }

    // --- Fault handling ---

    fn fault_rules(&mut self, node: &Node) -> Vec<FaultRule> {
        self.expect(node, &["FaultRule"]);
        node.children_named("FaultRule")
            .filter_map(|f| self.fault_rule(f, false))
            .collect()
    }

    /// A `<FaultRule>`, or the `<DefaultFaultRule>` when `default` (the only one with
    /// `AlwaysEnforce`). `None` only when a part had an error.
    fn fault_rule(&mut self, node: &Node, default: bool) -> Option<FaultRule> {
        let known: &[&str] = if default {
            &["Step", "Condition", "AlwaysEnforce"]
        } else {
            &["Step", "Condition"]
        };
        self.expect(node, known);
        let name = node
            .attr_value("name")
            .map(|n| Located::new(n.to_string(), node.pos));
        let condition = self.text(node, "Condition");
        let steps: Vec<Option<Step>> = node.children_named("Step").map(|s| self.step(s)).collect();
        let mut always_enforce = false;
        if default {
            if let Some(a) = self.text(node, "AlwaysEnforce") {
                match check::parse_bool(&a.value, "<AlwaysEnforce>") {
                    Ok(b) => always_enforce = b,
                    Err(issue) => self.sink.issue(a.pos, issue),
                }
            }
        }
        Some(FaultRule {
            name,
            condition,
            steps: steps.into_iter().collect::<Option<Vec<_>>>()?,
            always_enforce,
        })
    }

    // --- ProxyEndpoint ---

    /// `HTTPProxyConnection/BasePath`, required. `VirtualHost`s are ignored: cachegate's own
    /// listeners decide where requests arrive.
    fn base_path(&mut self, root: &Node) -> Option<Located<String>> {
        const HINT: &str =
            "add <HTTPProxyConnection><BasePath>/v1/example</BasePath></HTTPProxyConnection>";
        let Some(conn) = self.single(root, "HTTPProxyConnection") else {
            self.sink.error(
                root.pos,
                "missing <HTTPProxyConnection> in <ProxyEndpoint>: it holds the BasePath that selects this endpoint",
                Some(HINT.into()),
            );
            return None;
        };
        self.expect(conn, &["BasePath", "VirtualHost"]);
        let node = conn.child("BasePath");
        let base_path = self.text(conn, "BasePath");
        match (&base_path, node) {
            (None, None) => self.sink.error(
                conn.pos,
                "missing <BasePath> in <HTTPProxyConnection>",
                Some("add <BasePath>/v1/example</BasePath>".into()),
            ),
            (None, Some(n)) => self.sink.error(
                n.pos,
                "empty <BasePath> in <HTTPProxyConnection>",
                Some("write the path prefix that selects this endpoint, e.g. /v1/example".into()),
            ),
            (Some(bp), _) if bp.value.contains('*') => self.unsupported("BasePath with *", bp.pos),
            (Some(_), _) => {}
        }
        base_path
    }

    /// A `<RouteRule>`: `TargetEndpoint`, `URL` or neither (a null route). `None` when it has an
    /// error.
    fn route_rule(&mut self, node: &Node) -> Option<RouteRule> {
        self.expect(
            node,
            &["Condition", "TargetEndpoint", "URL", "IntegrationEndpoint"],
        );
        let name = self.required_name(node);
        let condition = self.text(node, "Condition");
        if let Some(n) = self.single(node, "IntegrationEndpoint") {
            // Listed as unsupported; `to` is then Null, which must not run as a null route.
            self.unsupported("RouteRule/IntegrationEndpoint", n.pos);
        }
        let endpoint = self.destination(node, "TargetEndpoint", "a TargetEndpoint's name");
        let url = self.destination(node, "URL", "a backend URL");
        let to = match (endpoint, url) {
            (Some(Some(_)), Some(Some(_))) => {
                self.sink.error(
                    node.pos,
                    "a <RouteRule> with both <TargetEndpoint> and <URL>",
                    Some("keep one: <TargetEndpoint> names targets/<name>.xml, <URL> calls a URL directly".into()),
                );
                return None;
            }
            (Some(None), _) | (_, Some(None)) => return None,
            (Some(Some(e)), None) => RouteTarget::Endpoint(e),
            (None, Some(Some(u))) => RouteTarget::Url(u),
            (None, None) => RouteTarget::Null,
        };
        Some(RouteRule {
            name: name?,
            condition,
            to,
        })
    }

    /// A RouteRule destination: `None` when absent, `Some(None)` when present but blank (an
    /// error: read as absent it would silently make a null route).
    fn destination(
        &mut self,
        node: &Node,
        name: &str,
        what: &str,
    ) -> Option<Option<Located<String>>> {
        let present = node.child(name)?;
        let text = self.text(node, name);
        if text.is_none() {
            self.sink.error(
                present.pos,
                format!("empty <{name}> in <RouteRule>"),
                Some(format!(
                    "write {what}, or remove <{name}> for a null route (no target)"
                )),
            );
        }
        Some(text)
    }
}
