//! What a stage.toml cannot say about a bundle that loads, each named at its file and line.
//!
//! A stage.toml stage has one ProxyEndpoint, one TargetEndpoint and one unconditional RouteRule
//! to it (each named as the bundle names it: `proxy_endpoint`, `[target_endpoint] name`,
//! `route_rule`). A bundle with more TargetEndpoints, RouteRules that choose (a Condition, a
//! URL, a null route, a second rule), or steps in FaultRules, a DefaultFaultRule or a
//! PostClientFlow means more than that, and the import refuses it rather than drop any of it:
//! cachegate runs the bundle as it is.

use std::path::Path;

use crate::config::bundle::BundleStage;
use crate::diag::{Diagnostic, Pos};
use crate::policy::bundle::{EndpointFile, RouteTarget};

/// The hint of every refusal.
pub(super) const KEEP_THE_BUNDLE: &str =
    "keep this proxy as a bundle (policies/<stage>/apiproxy/): cachegate runs it as it is";

/// Every part of the bundle stage.toml cannot express; empty when the import can be exact.
pub(super) fn inexpressible(b: &BundleStage) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let refuse = |out: &mut Vec<Diagnostic>, path: &Path, pos: Pos, what: String| {
        out.push(Diagnostic::error(path, Some(pos), what).with_hint(KEEP_THE_BUNDLE));
    };
    let bundle = &b.bundle;
    for e in &b.more {
        let p = bundle.proxies.iter().find(|p| p.path == e.proxy_file);
        refuse(
            &mut out,
            &e.proxy_file,
            p.map_or(Pos::new(1, 1), |p| p.endpoint.name.pos),
            format!(
                "a second ProxyEndpoint (stage `{}`, base path `{}`): a stage.toml stage has one",
                e.settings.name, e.settings.base_path
            ),
        );
    }
    if let [_, rest @ ..] = bundle.targets.as_slice() {
        let names: Vec<&str> = bundle
            .targets
            .iter()
            .map(|t| t.endpoint.name.value.as_str())
            .collect();
        for t in rest {
            refuse(
                &mut out,
                &t.path,
                t.endpoint.name.pos,
                format!(
                    "a second TargetEndpoint (`{}`; the bundle has {}): a stage.toml stage has one",
                    t.endpoint.name.value,
                    names.join(", ")
                ),
            );
        }
    }
    if let Some(proxy) = bundle.proxies.first() {
        let rules = &proxy.endpoint.route_rules;
        if rules.is_empty() {
            refuse(
                &mut out,
                &proxy.path,
                proxy.endpoint.pos,
                "no RouteRule (every request is a null route): a stage.toml stage always forwards to its target".into(),
            );
        }
        for (i, r) in rules.iter().enumerate() {
            let name = &r.name.value;
            if i > 0 {
                refuse(
                    &mut out,
                    &proxy.path,
                    r.name.pos,
                    format!("a second RouteRule (`{name}`): a stage.toml stage has one route"),
                );
            }
            if let Some(c) = &r.condition {
                refuse(
                    &mut out,
                    &proxy.path,
                    c.pos,
                    format!("RouteRule `{name}` has a Condition: a stage.toml stage's route is unconditional"),
                );
            }
            match &r.to {
                RouteTarget::Endpoint(_) => {}
                RouteTarget::Url(u) => refuse(
                    &mut out,
                    &proxy.path,
                    u.pos,
                    format!("RouteRule `{name}` goes to a URL, bypassing the TargetEndpoints: a stage.toml stage's route goes to its TargetEndpoint"),
                ),
                RouteTarget::Null => refuse(
                    &mut out,
                    &proxy.path,
                    r.name.pos,
                    format!("RouteRule `{name}` has no target (a null route): a stage.toml stage always forwards to its target"),
                ),
            }
        }
    }
    for e in bundle.proxies.iter().chain(&bundle.targets) {
        unrun_steps(e, &mut out);
    }
    out
}

/// FaultRules, the DefaultFaultRule and the PostClientFlow: part of what the bundle means
/// (the first two run in its error flow), and stage.toml has no place for them.
fn unrun_steps(e: &EndpointFile, out: &mut Vec<Diagnostic>) {
    let ep = &e.endpoint;
    let what = format!("{} `{}`", ep.kind.element(), ep.name.value);
    for rule in ep.fault_rules.iter().chain(&ep.default_fault_rule) {
        let Some(first) = rule.steps.first() else {
            continue;
        };
        let pos = rule.name.as_ref().map_or(first.name.pos, |n| n.pos);
        out.push(
            Diagnostic::error(
                &e.path,
                Some(pos),
                format!("the fault rules of {what} have steps: stage.toml has no fault rules"),
            )
            .with_hint(KEEP_THE_BUNDLE),
        );
    }
    let client = &ep.post_client_flow;
    if let Some(first) = client.request.iter().chain(&client.response).next() {
        out.push(
            Diagnostic::error(
                &e.path,
                Some(first.name.pos),
                format!("the PostClientFlow of {what} has steps: stage.toml has no PostClientFlow"),
            )
            .with_hint(KEEP_THE_BUNDLE),
        );
    }
}

/// The file a policy named `name` is written to (`ext` = `toml` or `xml`), unless the name
/// cannot be a file of a stage folder: one the loader ignores (a leading `.`), `stage.toml`
/// itself, or one that is not a single file name.
pub(super) fn policy_file_name(name: &str, ext: &str) -> Result<String, String> {
    let file = format!("{name}.{ext}");
    if name.starts_with('.') {
        return Err(format!(
            "`{file}` starts with `.`, and the loader ignores such files"
        ));
    }
    if file == "stage.toml" {
        return Err("`stage.toml` is the stage's own file".into());
    }
    if name.is_empty() || name.contains(['/', '\\', '\0']) {
        return Err(format!("`{file}` is not a file name"));
    }
    Ok(file)
}
