//! A bundle TargetEndpoint's connection, compiled: a `<LoadBalancer>` of the environment's
//! TargetServers into a runtime [`Balancer`], a `LocalTargetConnection` into a
//! [`Destination::Local`] that `chain.rs` resolves once every stage is loaded.
//!
//! A LoadBalancer naming a server gateway.toml does not define is refused, naming both files
//! (Apigee cannot deploy it either). A disabled server (`enabled = false`, Apigee's
//! `isEnabled`) is kept and never chosen: in Apigee that is how a server is taken out of
//! rotation without touching the proxies, so it is a warning, not a refusal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::compile::Timeouts;
use crate::diag::{Diagnostic, Diagnostics};
use crate::policy::bundle::{LoadBalancerSpec, LocalSpec};
use crate::runtime::balance::{Balancer, Check, Monitor, Server, DEFAULT_READMIT_AFTER};
use crate::runtime::stage::{GatewaySettings, Target, TargetServer};
use crate::runtime::target::{Destination, LocalTarget, TargetPath};

/// The TargetEndpoint `file`'s LoadBalancer, with its servers resolved against gateway.toml
/// (`gateway_toml` names it in messages). `None` when a server is unknown or the path is wrong.
pub(super) fn balanced(
    spec: &LoadBalancerSpec,
    gateway: Option<&GatewaySettings>,
    gateway_toml: &Path,
    file: &Path,
    timeouts: Timeouts,
    diags: &mut Diagnostics,
) -> Option<Target> {
    let known: &[TargetServer] = gateway.map_or(&[], |g| g.target_servers.as_slice());
    let path_text = spec.path.as_ref().map_or("", |p| p.value.as_str());
    if path_text.contains(['?', '#']) {
        let pos = spec.path.as_ref().map(|p| p.pos);
        diags.push(
            Diagnostic::error(file, pos, format!("the LoadBalancer <Path> `{path_text}` must not have a query string or fragment"))
                .with_hint("write a path such as <Path>/v1</Path>"),
        );
        return None;
    }
    let path_text = match path_text {
        "" => String::new(),
        p if p.starts_with(['/', '{']) => p.to_owned(),
        p => format!("/{p}"),
    };
    let mut servers = Vec::new();
    let mut failed = false;
    for s in &spec.servers {
        let Some(ts) = known.iter().find(|t| t.name == s.name.value) else {
            failed = true;
            let defined: Vec<&str> = known.iter().map(|t| t.name.as_str()).collect();
            let hint = if defined.is_empty() {
                format!(
                    "define it in {}: [[target_servers]] name = \"{}\", host = \"…\", port = …",
                    gateway_toml.display(),
                    s.name.value
                )
            } else {
                format!(
                    "{} defines: {}; or add [[target_servers]] name = \"{}\" there",
                    gateway_toml.display(),
                    defined.join(", "),
                    s.name.value
                )
            };
            diags.push(
                Diagnostic::error(
                    file,
                    Some(s.name.pos),
                    format!("<Server name=\"{}\"> is not a target server of the environment ({} has no [[target_servers]] named `{}`)", s.name.value, gateway_toml.display(), s.name.value),
                )
                .with_hint(hint),
            );
            continue;
        };
        if !ts.enabled {
            diags.push(
                Diagnostic::warning(
                    file,
                    Some(s.name.pos),
                    format!("target server `{}` is disabled in {} (enabled = false): this LoadBalancer sends it nothing", ts.name, gateway_toml.display()),
                )
                .with_hint("set enabled = true to put it back in rotation"),
            );
        }
        servers.push(Server {
            name: ts.name.clone(),
            url: format!(
                "{}://{}{path_text}",
                if ts.host.tls.is_some() {
                    "https"
                } else {
                    "http"
                },
                ts.host.host_header
            ),
            host: ts.host.clone(),
            weight: s.weight.unwrap_or(1),
            fallback: s.fallback,
            enabled: ts.enabled && s.enabled,
        });
    }
    if failed {
        return None;
    }
    if !servers.iter().any(|s| s.enabled) {
        diags.push(
            Diagnostic::warning(
                file,
                Some(spec.pos),
                "every server of this <LoadBalancer> is disabled: its requests are answered 503",
            )
            .with_hint("enable a target server in gateway.toml"),
        );
    }
    if let Some(m) = &spec.monitor {
        let tls = servers.iter().find(|s| s.host.tls.is_some());
        if let (Check::Http(_), Some(s)) = (&m.check, tls) {
            // The health checker speaks plain HTTP/1.1 on a TCP socket (proxy/health.rs).
            diags.push(
                Diagnostic::error(file, Some(m.pos), format!("an <HTTPMonitor> cannot poll target server `{}`: it uses TLS (ssl), and cachegate's HTTP health checks are plain HTTP", s.name))
                    .with_hint("use a <TCPMonitor> (it checks that the port accepts connections), or remove the <HealthMonitor>"),
            );
            return None;
        }
    }
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let url = format!("LoadBalancer({}){path_text}", names.join(", "));
    let monitor = spec.monitor.as_ref().map(|m| Monitor {
        interval: Duration::from_secs(m.interval_secs),
        check: m.check.clone(),
    });
    let balancer = Balancer::new(
        spec.algorithm,
        servers,
        spec.max_failures,
        spec.retry,
        spec.unhealthy.clone(),
        spec.target_disable_secs
            .map_or(DEFAULT_READMIT_AFTER, Duration::from_secs),
        monitor,
    );
    Some(Target {
        url,
        to: Destination::Balanced(Arc::new(balancer)),
        path: TargetPath::new(&path_text),
        connect_timeout: timeouts.connect,
        read_timeout: timeouts.read,
        write_timeout: timeouts.write,
    })
}

/// gateway.toml beside the stage folders, for messages: the bundle is at
/// `<policies>/<stage>/apiproxy`.
pub(super) fn gateway_toml_path(bundle_root: &Path) -> std::path::PathBuf {
    bundle_root.parent().and_then(Path::parent).map_or_else(
        || Path::new("gateway.toml").to_path_buf(),
        |d| d.join("gateway.toml"),
    )
}

/// A `LocalTargetConnection`, still unresolved: `chain.rs` finds the stage it names. `None`
/// when it uses a `{variable}` template, which Apigee allows there but cachegate cannot follow:
/// it resolves a chain (and refuses its loops) when it loads.
pub(super) fn local(
    spec: &LocalSpec,
    file: &Path,
    timeouts: Timeouts,
    diags: &mut Diagnostics,
) -> Option<Target> {
    for v in [&spec.api, &spec.endpoint, &spec.path]
        .into_iter()
        .flatten()
    {
        if v.value.contains('{') {
            diags.push(
                Diagnostic::error(file, Some(v.pos), format!("`{}` in a <LocalTargetConnection> is a {{variable}} template, which cachegate does not follow: it resolves a chained proxy when it loads", v.value))
                    .with_hint("name the proxy or its path literally"),
            );
            return None;
        }
    }
    let text = |v: &Option<crate::diag::Located<String>>| v.as_ref().map(|v| v.value.clone());
    let url = match (&spec.api, &spec.path) {
        (Some(a), _) => format!(
            "LocalTargetConnection({}/{})",
            a.value,
            spec.endpoint
                .as_ref()
                .map_or("default", |e| e.value.as_str())
        ),
        (None, Some(p)) => format!("LocalTargetConnection({})", p.value),
        (None, None) => "LocalTargetConnection".to_owned(),
    };
    Some(Target {
        url,
        to: Destination::Local(Box::new(LocalTarget {
            api: text(&spec.api),
            endpoint: text(&spec.endpoint),
            path: text(&spec.path),
            at: (file.to_path_buf(), Some(spec.pos)),
        })),
        path: TargetPath::Fixed(String::new()),
        connect_timeout: timeouts.connect,
        read_timeout: timeouts.read,
        write_timeout: timeouts.write,
    })
}

/// Stage caching keys requests by path and key parameters only: a target path made of request
/// variables would let responses for different paths share one entry.
pub(super) fn templated_with_stage_caching<'t>(
    targets: impl Iterator<Item = &'t Target>,
    stage_toml: &Path,
    diags: &mut Diagnostics,
) {
    for t in targets {
        if matches!(t.path, TargetPath::Template(_)) {
            diags.push(
                Diagnostic::error(stage_toml, None, format!("[cache] enabled: stage caching keys requests by path and key parameters only, but target `{}` builds its path from variables, so responses of different target paths would share entries", t.url))
                    .with_hint("cache with the bundle's ResponseCache policies instead (their keys are yours), or leave [cache] off"),
            );
        }
    }
}
