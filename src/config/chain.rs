//! Proxy chaining (`LocalTargetConnection`), resolved once every stage is loaded.
//!
//! Apigee sends a chained request to the other proxy in-process ("Chaining API proxies
//! together"). cachegate sends it to its own proxy listener on loopback, under the other stage's
//! base path (or the `<Path>` written): the other stage then runs completely — its flows, its
//! cache policies, its target — exactly as for a client, and its request counts as one, as
//! Apigee bills each proxy of a chain as one call. Its `client.ip` is the loopback address, as
//! Apigee documents for chained calls ("the IP address will be local").
//!
//! Apigee deploys proxies one by one and does not check a chain's other end when deploying,
//! so a chain to a proxy that is not in the environment loads with a warning and its requests
//! are answered `502`, saying which proxy is missing; adding the stage (a reload) makes it work.
//! A chain that leads back to the stage it starts from is refused: its requests would call each
//! other without end (Apigee's page warns about exactly that).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::diag::{Diagnostic, Diagnostics};
use crate::runtime::stage::Stage;
use crate::runtime::target::{Destination, Host, LocalTarget, TargetPath};

/// One chain: stage `from`'s TargetEndpoint `target` calls stage `to`.
struct Link {
    from: usize,
    target: usize,
    to: usize,
}

/// Resolves every `LocalTargetConnection` of `stages` into this gateway's own listener
/// (`listen`), or into a `502` naming the missing proxy; refuses loops.
pub(super) fn resolve(stages: &mut [Stage], listen: Option<SocketAddr>, diags: &mut Diagnostics) {
    let Some(listen) = listen else {
        // gateway.toml has an error, reported already: nothing is served.
        return;
    };
    let own = loopback(listen);
    let mut links = Vec::new();
    let mut resolved = Vec::new();
    for (si, s) in stages.iter().enumerate() {
        for (ti, t) in s.targets.iter().enumerate() {
            let Destination::Local(local) = &t.target.to else {
                continue;
            };
            match find(stages, local) {
                Ok((to, path)) => {
                    links.push(Link {
                        from: si,
                        target: ti,
                        to,
                    });
                    resolved.push((si, ti, Destination::Host(own.clone()), path));
                }
                Err(message) => {
                    let (file, pos) = &local.at;
                    diags.push(
                        Diagnostic::warning(file, *pos, format!("{message}: its requests are answered 502 until a stage serves it"))
                            .with_hint("add that proxy's stage (its bundle in a stage folder) to this gateway, or point the TargetEndpoint at an <HTTPTargetConnection>"),
                    );
                    resolved.push((si, ti, Destination::Unavailable(message), String::new()));
                }
            }
        }
    }
    for link in &links {
        if let Some(cycle) = path_back(&links, link.to, link.from) {
            let Destination::Local(local) = &stages[link.from].targets[link.target].target.to
            else {
                continue;
            };
            let names: Vec<&str> = std::iter::once(link.from)
                .chain(cycle)
                .map(|i| stages[i].name.as_str())
                .collect();
            let (file, pos) = &local.at;
            diags.push(
                Diagnostic::error(
                    file,
                    *pos,
                    format!("proxy chaining loop: stage {} calls itself again, so its requests would never end", names.join(" → ")),
                )
                .with_hint("a LocalTargetConnection must lead to another proxy that does not lead back"),
            );
        }
    }
    for (si, ti, to, path) in resolved {
        let t = &mut stages[si].targets[ti].target;
        if matches!(to, Destination::Host(_)) {
            t.url = format!("http://{}{path}", own.host_header);
        }
        t.to = to;
        t.path = TargetPath::Fixed(path);
    }
}

/// The stage `local` names and the path its requests go to: the stage's base path, or the
/// `<Path>` written. `Err`: why none is found.
fn find(stages: &[Stage], local: &LocalTarget) -> Result<(usize, String), String> {
    let trim = |p: &str| {
        if p == "/" {
            String::new()
        } else {
            p.trim_end_matches('/').to_owned()
        }
    };
    if let Some(api) = &local.api {
        let endpoint = local.endpoint.as_deref();
        let of_api: Vec<usize> = (0..stages.len())
            .filter(|i| stages[*i].api_name == *api)
            .collect();
        let matching: Vec<usize> = of_api
            .iter()
            .copied()
            .filter(|i| endpoint.is_none_or(|e| stages[*i].proxy.name == e))
            .collect();
        return match matching.as_slice() {
            [one] => Ok((*one, trim(&stages[*one].base_path))),
            [] if of_api.is_empty() => Err(format!("the chained API proxy `{api}` is not deployed in this environment (no stage has that API name)")),
            [] => {
                let have: Vec<&str> = of_api.iter().map(|i| stages[*i].proxy.name.as_str()).collect();
                Err(format!(
                    "the chained API proxy `{api}` has no ProxyEndpoint `{}` (it has: {})",
                    endpoint.unwrap_or("default"),
                    have.join(", ")
                ))
            }
            several => {
                let names: Vec<&str> = several.iter().map(|i| stages[*i].name.as_str()).collect();
                Err(format!("the chained API proxy `{api}` is served by several stages ({}); name it by <Path> instead", names.join(", ")))
            }
        };
    }
    let path = local.path.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.strip_base(&path).is_some())
        .max_by_key(|(_, s)| s.base_path.len())
        .map(|(i, _)| (i, trim(&path)))
        .ok_or_else(|| format!("no stage serves the chained path `{path}`"))
}

/// The stages from `from` to `to` along `links` (excluding `from`, ending with `to`), if `to`
/// can be reached.
fn path_back(links: &[Link], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut seen = vec![from];
    let mut stack = vec![(from, vec![from])];
    while let Some((at, trail)) = stack.pop() {
        if at == to {
            return Some(trail);
        }
        for l in links.iter().filter(|l| l.from == at) {
            if !seen.contains(&l.to) {
                seen.push(l.to);
                let mut t = trail.clone();
                t.push(l.to);
                stack.push((l.to, t));
            }
        }
    }
    None
}

/// Where this gateway's own proxy listener is reached: its address, or loopback when it
/// listens on every interface.
fn loopback(listen: SocketAddr) -> Host {
    let ip = match listen.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, listen.port());
    Host {
        addr,
        host_header: addr.to_string(),
        // This gateway's own listener is plain HTTP.
        tls: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_on_every_interface_is_reached_on_loopback() {
        let h = loopback("0.0.0.0:8080".parse().unwrap());
        assert_eq!(h.host_header, "127.0.0.1:8080");
        let h = loopback("[::]:8080".parse().unwrap());
        assert_eq!(h.host_header, "[::1]:8080");
        let h = loopback("10.0.0.5:81".parse().unwrap());
        assert_eq!(h.addr.to_string(), "10.0.0.5:81");
    }

    #[test]
    fn a_loop_is_found_through_other_stages() {
        let links = [
            Link {
                from: 0,
                target: 0,
                to: 1,
            },
            Link {
                from: 1,
                target: 0,
                to: 2,
            },
            Link {
                from: 2,
                target: 0,
                to: 0,
            },
            Link {
                from: 3,
                target: 0,
                to: 0,
            },
        ];
        assert_eq!(path_back(&links, 1, 0), Some(vec![1, 2, 0]));
        assert_eq!(path_back(&links, 0, 3), None);
        // A stage chaining to itself.
        assert_eq!(
            path_back(
                &[Link {
                    from: 4,
                    target: 0,
                    to: 4
                }],
                4,
                4
            ),
            Some(vec![4])
        );
    }
}
