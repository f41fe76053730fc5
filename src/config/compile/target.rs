//! Target addresses: `http://` and `https://` URLs (stage.toml `target`, a bundle's `HTTPTargetConnection/URL`
//! and RouteRule `<URL>`), the environment's `[[target_servers]]`, and the connection deadlines.
//!
//! Every host is resolved here, at load time, so the request path never does DNS (and
//! Pingora's `HttpPeer::new` would panic on a failed lookup).

use std::net::ToSocketAddrs;
use std::time::Duration;

use super::ctx::FileCtx;
use super::values::is_name;
use crate::config::file::FileTargetServer;
use crate::runtime::stage::Target;
use crate::runtime::target::{Destination, Host, TargetPath, TargetServer, Tls};

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

/// What is wrong with a target, and what to write instead.
type Problem = (String, String);

/// Parses and resolves a target URL. `templates`: whether its path may hold `{variable}`
/// references (a bundle's URLs may, as in Apigee; stage.toml's `target` may not, since stage
/// caching keys requests by path and key parameters only). `Err((message, hint))` says what is
/// wrong with it.
pub(crate) fn target_url(
    url: &str,
    timeouts: Timeouts,
    templates: bool,
) -> Result<Target, Problem> {
    let hint = || {
        "write an http:// or https:// URL such as http://127.0.0.1:9000 (optionally with a path: https://host:port/api)"
            .to_owned()
    };
    let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, true)
    } else {
        return Err((
            format!("target `{url}` is not an http:// or https:// URL"),
            hint(),
        ));
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
    if authority.contains(['{', '}']) {
        return Err((
            format!("target `{url}` has a `{{variable}}` in its host or port: cachegate resolves target hosts once, when it loads, never per request"),
            "write the host and port out; a variable may appear in the path (after the first `/`)".to_owned(),
        ));
    }
    if !templates && path.contains(['{', '}']) {
        return Err((
            format!("target `{url}` contains a `{{variable}}` template, which a stage.toml target cannot have"),
            "write the URL the variable would give (stage caching keys requests by path and key parameters only)".to_owned(),
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
        None if tls => 443,
        None => 80,
        Some(p) => match p.parse() {
            Ok(p) if p > 0 => p,
            _ => return Err((format!("`{p}` is not a valid port"), hint())),
        },
    };
    Ok(Target {
        url: url.to_owned(),
        to: Destination::Host(resolve(host, port, tls)?),
        path: TargetPath::new(path),
        connect_timeout: timeouts.connect,
        read_timeout: timeouts.read,
        write_timeout: timeouts.write,
    })
}

/// Resolves `host` (a name, an IPv4 address, or an IPv6 address without brackets) and makes
/// the `Host` header sent to it. `tls`: the connection is TLS, with `host` as its SNI and the
/// name its certificate must carry; verified (`tls.rs` turns that off for Apigee's
/// `IgnoreValidationErrors`).
pub(crate) fn resolve(host: &str, port: u16, tls: bool) -> Result<Host, Problem> {
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
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let default_port = if tls { 443 } else { 80 };
    let host_header = if port == default_port {
        shown
    } else {
        format!("{shown}:{port}")
    };
    let tls = tls.then(|| Tls {
        sni: host.to_owned(),
        verify: true,
    });
    Ok(Host {
        addr,
        host_header,
        tls,
    })
}

/// `[[target_servers]]`: validated and resolved. A server that is wrong is reported and left
/// out (LoadBalancers naming it then say so too).
pub(crate) fn target_servers(cx: &mut FileCtx, list: &[FileTargetServer]) -> Vec<TargetServer> {
    let mut out: Vec<TargetServer> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in list {
        let name = s.name.get_ref();
        if !seen.insert(name.as_str()) {
            cx.error(
                &s.name,
                format!("a second target server named `{name}`"),
                Some("give each [[target_servers]] its own name".into()),
            );
            continue;
        }
        if !is_name(name) {
            cx.error(
                &s.name,
                format!("target server name `{name}` must be letters, digits, `-`, `_` or `.`"),
                Some("write e.g. name = \"backend-1\"".into()),
            );
            continue;
        }
        let tls = match &s.ssl {
            Some(ssl) => match super::tls::server_ssl(cx, name, ssl) {
                Some(t) => t,
                None => continue,
            },
            None => super::tls::ServerTls {
                enabled: false,
                verify: true,
            },
        };
        let host = s.host.get_ref().trim();
        if host.is_empty() || host.contains("://") || host.contains(['/', '?', '#', '@', ' ']) {
            cx.error(
                &s.host,
                format!("target server `{name}`: host `{host}` must be a host name or an IP address alone"),
                Some("write the scheme, port and path elsewhere: host = \"backend-1.internal\", port = 8080 (the path goes in the LoadBalancer's <Path>)".into()),
            );
            continue;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = *s.port.get_ref();
        let Some(port) = u16::try_from(port).ok().filter(|p| *p > 0) else {
            cx.error(
                &s.port,
                format!("target server `{name}`: port {port} is not a port"),
                Some("write a number from 1 to 65535".into()),
            );
            continue;
        };
        match resolve(host, port, tls.enabled) {
            Ok(mut h) => out.push(TargetServer {
                name: name.clone(),
                host: {
                    if let Some(t) = &mut h.tls {
                        t.verify = tls.verify;
                    }
                    h
                },
                enabled: *s.enabled.get_ref(),
            }),
            Err((m, hint)) => cx.error(&s.host, format!("target server `{name}`: {m}"), Some(hint)),
        }
    }
    out
}
