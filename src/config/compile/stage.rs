//! A stage's endpoint: its base path, its target (resolved at load time) and its declared
//! resource templates.

use std::net::ToSocketAddrs;
use std::time::Duration;

use toml::Spanned;

use super::ctx::FileCtx;
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
    match target_url(t.get_ref(), timeouts) {
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

/// Deadlines of the connections to a target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// To connect.
    pub connect: Duration,
    /// Between two reads.
    pub read: Duration,
    /// Between two writes.
    pub write: Duration,
}

/// Parses and resolves a target URL (stage.toml `target`, a bundle's `HTTPTargetConnection/URL`
/// or RouteRule `URL`). `Err((message, hint))` says what is wrong with it.
pub(crate) fn target_url(url: &str, timeouts: Timeouts) -> Result<Target, (String, String)> {
    let hint = || {
        "write an http:// URL such as http://127.0.0.1:9000 (optionally with a path: http://host:port/api)"
            .to_owned()
    };
    let Some(rest) = url.strip_prefix("http://") else {
        if url.starts_with("https://") {
            return Err((
                "https targets are not supported by this build (it has no TLS)".to_owned(),
                "point it at a plain-HTTP target, e.g. a local TLS-terminating sidecar".to_owned(),
            ));
        }
        return Err((format!("target `{url}` is not an http:// URL"), hint()));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err((
            "credentials in the target URL are not supported".to_owned(),
            "remove `user:password@` from the target".to_owned(),
        ));
    }
    if path.contains(['?', '#']) {
        return Err((
            "the target URL must not have a query string or fragment".to_owned(),
            hint(),
        ));
    }
    if url.contains(['{', '}']) {
        return Err((
            format!("target `{url}` contains a `{{variable}}` template, which cachegate does not expand"),
            "write the URL the variable would give".to_owned(),
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err(("unterminated IPv6 address in target".to_owned(), hint()));
        };
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(("the target URL has no host".to_owned(), hint()));
    }
    let port: u16 = match port {
        None => 80,
        Some(p) => match p.parse() {
            Ok(p) if p > 0 => p,
            _ => return Err((format!("`{p}` is not a valid port"), hint())),
        },
    };
    let addr = match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs.next(),
        Err(_) => None,
    };
    let Some(addr) = addr else {
        return Err((
            format!("cannot resolve target host `{host}`"),
            "use a resolvable host name or an IP address".to_owned(),
        ));
    };
    let host_header = if authority.starts_with('[') {
        if port == 80 {
            format!("[{host}]")
        } else {
            format!("[{host}]:{port}")
        }
    } else if port == 80 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    Ok(Target {
        url: url.to_owned(),
        addr,
        host_header,
        path_prefix: path.trim_end_matches('/').to_owned(),
        connect_timeout: timeouts.connect,
        read_timeout: timeouts.read,
        write_timeout: timeouts.write,
    })
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
