//! A stage's endpoint: its base path, its target (resolved at load time) and its declared
//! resource templates.

use std::time::Duration;

use toml::Spanned;

use super::ctx::FileCtx;
use super::target::{target_url, Timeouts};
use super::values::pattern;
use crate::config::file::FileStage;
use crate::diag::Diagnostic;
use crate::runtime::resource::ResourcePattern;
use crate::runtime::stage::Target;

/// The stage's base path: validated, defaulting to `/<stage>`.
pub(crate) fn base_path(cx: &mut FileCtx, stage: &str, s: &FileStage) -> Option<String> {
    let Some(bp) = &s.base_path else {
        return Some(format!("/{stage}"));
    };
    let v = bp.get_ref();
    let hint = Some(format!(
        "write base_path = \"/{stage}\", or \"/\" to serve the whole host"
    ));
    if !v.starts_with('/') {
        cx.error(bp, format!("base_path `{v}` must start with `/`"), hint);
        return None;
    }
    if v.len() > 1 && v.ends_with('/') {
        cx.error(
            bp,
            format!("base_path `{v}` must not end with `/`"),
            Some(format!("write base_path = \"{}\"", v.trim_end_matches('/'))),
        );
        return None;
    }
    if v.contains(['?', '#', '*', '{', '}', ' '])
        || v.contains("//")
        || v.split('/').any(|seg| seg == "." || seg == "..")
    {
        cx.error(bp, format!("base_path `{v}` must be a plain path (no `?`, `#`, wildcards, spaces, `//` or dot segments)"), hint);
        return None;
    }
    Some(v.clone())
}

/// Checks the Apigee endpoint and RouteRule names a stage.toml may give (`proxy_endpoint`,
/// `route_rule`, `[target_endpoint] name`). They become variable values (`proxy.name`, …) and
/// parts of key prefixes, so, like flow names, they must be 1 to 255 printable characters.
pub(crate) fn endpoint_names(cx: &mut FileCtx, s: &FileStage) {
    let names = [
        (s.proxy_endpoint.as_ref(), "proxy_endpoint"),
        (s.route_rule.as_ref(), "route_rule"),
        (
            s.target_endpoint.as_ref().and_then(|t| t.name.as_ref()),
            "[target_endpoint] name",
        ),
    ];
    for (name, key) in names {
        let Some(n) = name else { continue };
        let v = n.get_ref();
        if v.is_empty() || v.len() > 255 || v.chars().any(char::is_control) {
            cx.error(
                n,
                format!(
                    "{key} `{}` must be 1 to 255 printable characters",
                    v.escape_debug()
                ),
                Some("write the Apigee endpoint's name, such as \"default\"".into()),
            );
        }
    }
}

/// Parses and resolves `target`. Resolution happens here, at load time, so the request path
/// never does DNS (and Pingora's `HttpPeer::new` would panic on a failed lookup).
pub(crate) fn target(cx: &mut FileCtx, s: &FileStage) -> Option<Target> {
    let Some(t) = &s.target else {
        cx.diags.push(
            Diagnostic::error(cx.path, None, "stage.toml has no target").with_hint(
                "write target = \"http://host:port\": where this stage forwards requests",
            ),
        );
        return None;
    };
    let timeouts = timeouts(cx, s);
    match target_url(t.get_ref(), timeouts, false) {
        Ok(target) => Some(target),
        Err((message, hint)) => {
            cx.error(t, message, Some(hint));
            None
        }
    }
}

/// The stage's connection deadlines (each must be greater than 0).
pub(crate) fn timeouts(cx: &mut FileCtx, s: &FileStage) -> Timeouts {
    let ms = |v: &Spanned<u64>, key: &str, cx: &mut FileCtx| {
        if *v.get_ref() == 0 {
            cx.error(v, format!("{key} must be greater than 0"), None);
        }
        Duration::from_millis(*v.get_ref())
    };
    Timeouts {
        connect: ms(&s.connect_timeout_ms, "connect_timeout_ms", cx),
        read: ms(&s.read_timeout_ms, "read_timeout_ms", cx),
        write: ms(&s.write_timeout_ms, "write_timeout_ms", cx),
    }
}

/// Declared resource templates.
pub(crate) fn resources(cx: &mut FileCtx, s: &FileStage) -> Vec<ResourcePattern> {
    let mut out: Vec<ResourcePattern> = Vec::new();
    for r in &s.resources {
        if let Some(p) = pattern(cx, r) {
            if out.iter().any(|o| o.as_str() == p.as_str()) {
                cx.error(r, format!("resource `{p}` is declared twice"), None);
            }
            out.push(p);
        }
    }
    out
}
