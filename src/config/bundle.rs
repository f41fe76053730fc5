//! A stage made of an Apigee API proxy bundle: `policies/<stage>/apiproxy/`, with an optional
//! `stage.toml` beside it for what Apigee keeps outside the bundle (stage caching, revision,
//! `skip_policies`).
//!
//! The bundle's ProxyEndpoint, TargetEndpoints and RouteRules become the stage's endpoints
//! (`config::source`), its policies the stage's policies, and then the stage is checked and
//! compiled exactly like a stage.toml stage. Policies of kinds cachegate does not run are
//! refused, each named with every step that uses it, unless `skip_policies` says to run the kind
//! as a no-op (`foreign.rs`).
//!
//! [`read_bundle_stage`] stops before compiling, so that `cachegate import` (`import/`) sees
//! exactly what the loader sees: the bundle, the stage.toml beside it, and the stage's parts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::build::{build_stage, StageSettings};
use super::compile::{self, FileCtx, Timeouts};
use super::connection::{self, gateway_toml_path};
use super::file::{FileFlow, FileStage, FileSteps};
use super::files::{parse_toml, read};
use super::foreign::{self, Foreign};
use super::policies::Conditions;
use super::shared::{self, load_policy_files, LoadedPolicies, SharedFlows, StagePolicies};
use super::source::{
    Site, SrcEndpoint, SrcFaultRule, SrcFlow, SrcFlows, SrcRoute, SrcRouteTo, SrcStep, SrcSteps,
    SrcTarget,
};
use crate::diag::{Diagnostic, Diagnostics, Located, Pos};
use crate::policy::bundle::{self as model, Bundle, Connection, RouteTarget};
use crate::policy::model::PolicyFile;
use crate::runtime::stage::{self, Target};

/// A bundle stage read and checked, not compiled yet.
///
/// Each ProxyEndpoint is an entry point of its own, with its own base path, flows and
/// RouteRules, sharing the bundle's policies and TargetEndpoints (apigee-bundles.md §2.3, §2.4):
/// each becomes a runtime stage. The `default` ProxyEndpoint (else the first by file name) is
/// the stage named after the folder (`shop`) — so a one-endpoint bundle is exactly what it was —
/// and every other one is `<stage>.<endpoint>` (`shop.admin`, see
/// `runtime::stage::folder_stage`). Routing by base path (longest first, whole segments) then
/// picks the ProxyEndpoint as Apigee does.
pub(super) struct BundleStage {
    /// The bundle as parsed.
    pub bundle: Bundle,
    /// `stage.toml` beside the bundle (possibly absent: then empty), its text and its model.
    pub stage_toml: (PathBuf, String, FileStage),
    /// The settings of the first ProxyEndpoint's stage (base path, API name, revision, …).
    pub settings: StageSettings,
    /// Its endpoints and routes, the steps of skipped policies removed.
    pub src: SrcFlows,
    /// Its ProxyEndpoint's file.
    pub proxy_file: PathBuf,
    /// The stages of the bundle's other ProxyEndpoints.
    pub more: Vec<EndpointStage>,
    /// The policies cachegate runs, by name.
    pub policies: BTreeMap<String, Arc<PolicyFile>>,
    /// Policies of kinds cachegate does not run, by name.
    pub foreign: BTreeMap<String, Foreign>,
    /// Names of policies that failed to load or are refused.
    pub failed: BTreeSet<String>,
}

/// The stage of one of a bundle's ProxyEndpoints after the first.
pub(super) struct EndpointStage {
    /// Its settings: its own name and base path, the bundle's API name and revision.
    pub settings: StageSettings,
    /// Its ProxyEndpoint and RouteRules, with the bundle's TargetEndpoints.
    pub src: SrcFlows,
    /// Its ProxyEndpoint's file.
    pub proxy_file: PathBuf,
}

/// Loads the stages in `dir`, whose bundle is `dir/apiproxy`: one per ProxyEndpoint, each with
/// the file of its ProxyEndpoint (where its base path is written).
pub(super) fn load_bundle_stage(
    dir: &Path,
    name: String,
    gateway: Option<&stage::GatewaySettings>,
    registry: &SharedFlows,
    conditions: &mut Conditions,
    diags: &mut Diagnostics,
) -> Vec<(stage::Stage, PathBuf)> {
    let no_hooks = stage::FlowHooks::default();
    let hooks = gateway.map_or(&no_hooks, |g| &g.flow_hooks);
    let Some(b) = read_bundle_stage(dir, name, gateway, Some((registry, hooks)), diags) else {
        return Vec::new();
    };
    let first = diags.0.len();
    let parts = std::iter::once((b.settings, b.src, b.proxy_file)).chain(
        b.more
            .into_iter()
            .map(|e| (e.settings, e.src, e.proxy_file)),
    );
    let mut out = Vec::new();
    for (settings, src, file) in parts {
        let built = build_stage(
            settings,
            &src,
            &b.policies,
            &b.failed,
            gateway,
            conditions,
            diags,
        );
        out.extend(built.map(|s| (s, file)));
    }
    // The endpoints share policies and TargetEndpoints: what those say is said once.
    dedup_since(diags, first);
    out
}

/// Drops the diagnostics after `first` that repeat an earlier one of them.
fn dedup_since(diags: &mut Diagnostics, first: usize) {
    let first = first.min(diags.0.len());
    let tail = diags.0.split_off(first);
    for d in tail {
        if !diags.0[first..].contains(&d) {
            diags.0.push(d);
        }
    }
}

/// Reads the stage in `dir` (`dir/apiproxy` and `dir/stage.toml`) up to compilation, reporting
/// every problem found so far. `None` when it cannot be built at all.
pub(super) fn read_bundle_stage(
    dir: &Path,
    name: String,
    gateway: Option<&stage::GatewaySettings>,
    flows: Option<(&SharedFlows, &stage::FlowHooks)>,
    diags: &mut Diagnostics,
) -> Option<BundleStage> {
    let stage_toml = dir.join("stage.toml");
    let text = if stage_toml.exists() {
        read(&stage_toml, diags)?
    } else {
        String::new()
    };
    let file: FileStage = parse_toml(&stage_toml, &text, diags)?;
    let mut cx = FileCtx {
        path: &stage_toml,
        text: &text,
        diags,
    };
    let flows_at = first_flow_or_step(&file.flows, [&file.preflow, &file.postflow]);
    let target_endpoint_at = file.target_endpoint.as_ref().and_then(|t| {
        t.name
            .as_ref()
            .map(Spanned::span)
            .or_else(|| first_flow_or_step(&t.flows, [&t.preflow, &t.postflow]))
    });
    let owned: [(Option<std::ops::Range<usize>>, &str, &str); 7] = [
        (
            file.target.as_ref().map(|t| t.span()),
            "target",
            "the bundle's TargetEndpoints and RouteRules say where requests go",
        ),
        (
            file.base_path.as_ref().map(|t| t.span()),
            "base_path",
            "the bundle's ProxyEndpoint sets it (HTTPProxyConnection/BasePath)",
        ),
        (
            file.api_name.as_ref().map(|t| t.span()),
            "api_name",
            "the bundle's <APIProxy name> is the API name",
        ),
        (
            flows_at,
            "flows",
            "the bundle's ProxyEndpoint and TargetEndpoints hold the flows",
        ),
        (
            file.proxy_endpoint.as_ref().map(|t| t.span()),
            "proxy_endpoint",
            "the bundle's <ProxyEndpoint name> is the endpoint's name",
        ),
        (
            file.route_rule.as_ref().map(|t| t.span()),
            "route_rule",
            "the bundle's RouteRules say where requests go",
        ),
        (
            target_endpoint_at,
            "target_endpoint",
            "the bundle's TargetEndpoints hold their names and flows",
        ),
    ];
    for (span, key, what) in owned {
        if let Some(span) = span {
            cx.error(
                &Spanned::new(span, ()),
                format!("`{key}` cannot be set beside an Apigee bundle: {what}"),
                Some(format!("remove `{key}` from stage.toml")),
            );
        }
    }
    let resources = compile::resources(&mut cx, &file);
    let cache = compile::cache(&mut cx, &file, &resources);
    let timeouts = compile::timeouts(&mut cx, &file);
    let lists = foreign::skip_lists(&mut cx, &file);

    let bundle_dir = dir.join("apiproxy");
    let (bundle, bundle_diags) = model::load_bundle(&bundle_dir);
    diags.extend(bundle_diags);
    let bundle = bundle?;
    let proxies = endpoint_order(&bundle, diags)?;
    let base_paths: Vec<Option<String>> =
        proxies.iter().map(|p| bundle_base_path(p, diags)).collect();

    // Policies: the kinds cachegate runs are parsed; the others are refused or skipped.
    let LoadedPolicies {
        mut policies,
        mut foreign,
        mut failed,
    } = load_policy_files(&bundle.policy_files, diags);

    let targets = targets_of(&bundle, timeouts, gateway, diags);
    let first = diags.0.len();
    let mut srcs: Vec<SrcFlows> = proxies
        .iter()
        .map(|p| proxy_flows(p, targets.clone(), timeouts, diags))
        .collect();
    for src in &mut srcs {
        if file.cache.enabled && src.routes.len() > 1 {
            diags.push(
                Diagnostic::error(&stage_toml, None, format!("[cache] enabled: stage caching keys requests by path and key parameters only, but this bundle has {} RouteRules, so responses of different targets would share entries", src.routes.len()))
                    .with_hint("cache with the bundle's ResponseCache policies instead (their keys are yours), or leave [cache] off"),
            );
        }
        // Shared flows first: their policies of other kinds are skipped or refused like the
        // bundle's own. (The import reads the bundle as written: `flows` is None.)
        if let Some((registry, hooks)) = flows {
            shared::expand(
                src,
                hooks,
                registry,
                StagePolicies {
                    policies: &mut policies,
                    foreign: &mut foreign,
                    failed: &mut failed,
                },
                diags,
            );
        }
    }
    // The TargetEndpoints (and the shared flows they call) are in every endpoint's source.
    dedup_since(diags, first);
    if file.cache.enabled {
        let targets = targets.iter().map(|t| &t.target);
        connection::templated_with_stage_caching(targets, &stage_toml, diags);
    }
    let skipped = foreign::dispose(&srcs, &foreign, &lists, (&stage_toml, &text), diags);
    failed.extend(foreign.keys().filter(|n| !skipped.contains(*n)).cloned());
    for src in &mut srcs {
        foreign::remove_steps(src, &skipped);
    }
    unused_policies(&srcs, &policies, diags);
    foreign::unused_skips(&lists, &foreign, (&stage_toml, &text), "bundle", diags);

    let api_name = match &bundle.name {
        Some(n) if compile::is_name(&n.value) => n.value.clone(),
        Some(n) => {
            diags.push(Diagnostic::error(
                bundle.descriptor.as_deref().unwrap_or(&bundle_dir),
                Some(n.pos),
                format!(
                    "the API proxy name `{}` must be letters, digits, `-`, `_` or `.`",
                    n.value
                ),
            ));
            name.clone()
        }
        None => name.clone(),
    };
    let revision = match (&file.revision, &bundle.revision) {
        (Some(r), _) => *r.get_ref(),
        (None, Some(r)) => match r.value.parse::<u32>() {
            Ok(v) => v,
            Err(_) => {
                diags.push(Diagnostic::warning(bundle.descriptor.as_deref().unwrap_or(&bundle_dir), Some(r.pos), format!("revision `{}` is not a number; the revision is derived from the bundle's content instead", r.value)));
                content_revision(&bundle)
            }
        },
        (None, None) => content_revision(&bundle),
    };
    // The first ProxyEndpoint's stage is named after the folder; the others after it and
    // their endpoint (`runtime::stage::folder_stage`).
    let mut more = Vec::new();
    let mut first = None;
    let parts = proxies.iter().zip(base_paths).zip(srcs);
    for (i, ((proxy, base_path), src)) in parts.enumerate() {
        let settings = StageSettings {
            name: match i {
                0 => name.clone(),
                _ => format!(
                    "{name}{}{}",
                    stage::ENDPOINT_SEPARATOR,
                    proxy.endpoint.name.value
                ),
            },
            base_path: base_path?,
            api_name: api_name.clone(),
            revision,
            preserve_host: file.preserve_host,
            resources: resources.clone(),
            cache: cache.clone(),
        };
        let proxy_file = proxy.path.clone();
        match first {
            None => first = Some((settings, src, proxy_file)),
            Some(_) => more.push(EndpointStage {
                settings,
                src,
                proxy_file,
            }),
        }
    }
    let (settings, src, proxy_file) = first?;
    Some(BundleStage {
        bundle,
        stage_toml: (stage_toml, text, file),
        settings,
        src,
        proxy_file,
        more,
        policies,
        foreign,
        failed,
    })
}

/// The bundle's ProxyEndpoints, the one that names the folder's stage first: `default` if there
/// is one, else the first by file name. Their names become stage names, so they must be plain
/// names and distinct (Apigee refuses two ProxyEndpoints of one name, too). `None` when there
/// is none, or a name is refused.
fn endpoint_order<'b>(
    bundle: &'b Bundle,
    diags: &mut Diagnostics,
) -> Option<Vec<&'b model::EndpointFile>> {
    let mut proxies: Vec<&model::EndpointFile> = bundle.proxies.iter().collect();
    if let Some(i) = proxies
        .iter()
        .position(|p| p.endpoint.name.value == crate::runtime::key::DEFAULT_ENDPOINT)
    {
        let default = proxies.remove(i);
        proxies.insert(0, default);
    }
    let mut ok = !proxies.is_empty();
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for p in proxies.iter().filter(|_| bundle.proxies.len() > 1) {
        let n = &p.endpoint.name;
        if !compile::is_name(&n.value) {
            ok = false;
            diags.push(Diagnostic::error(&p.path, Some(n.pos), format!("ProxyEndpoint name `{}` must be letters, digits, `-`, `_` or `.`: a bundle's ProxyEndpoints each become a stage named after them", n.value)));
        } else if let Some(other) = seen.insert(&n.value, &p.path) {
            ok = false;
            diags.push(
                Diagnostic::error(
                    &p.path,
                    Some(n.pos),
                    format!(
                        "a second ProxyEndpoint named `{}` (the first is in {})",
                        n.value,
                        other.display()
                    ),
                )
                .with_hint("give each ProxyEndpoint its own name"),
            );
        }
    }
    ok.then_some(proxies)
}

/// Where the first flow, else the first step, of an endpoint is written in stage.toml.
fn first_flow_or_step(
    flows: &[FileFlow],
    steps: [&FileSteps; 2],
) -> Option<std::ops::Range<usize>> {
    flows.first().map(|f| f.name.span()).or_else(|| {
        steps
            .iter()
            .flat_map(|f| f.request.iter().chain(&f.response))
            .map(|s| s.span())
            .next()
    })
}

/// The ProxyEndpoint's base path, checked as stage.toml's `base_path` is.
fn bundle_base_path(proxy: &model::EndpointFile, diags: &mut Diagnostics) -> Option<String> {
    let Some(bp) = &proxy.endpoint.base_path else {
        // The parser reported the missing BasePath.
        return None;
    };
    let v = bp.value.trim();
    let bad = |m: String| Diagnostic::error(&proxy.path, Some(bp.pos), m);
    if !v.starts_with('/') {
        diags.push(bad(format!("BasePath `{v}` must start with `/`")));
        return None;
    }
    if v.contains(['?', '#', '*', '{', '}', ' '])
        || v.contains("//")
        || v.split('/').any(|s| s == "." || s == "..")
    {
        diags.push(bad(format!("BasePath `{v}` must be a plain path (no `?`, `#`, wildcards, spaces, `//` or dot segments)")).with_hint("cachegate does not support wildcard base paths yet"));
        return None;
    }
    let v = if v.len() > 1 {
        v.trim_end_matches('/')
    } else {
        v
    };
    Some(v.to_owned())
}

/// A revision derived from the bundle's files, so an edited bundle is a new revision (Apigee
/// moves Proxy/Target/Exclusive entries to a fresh namespace on every deployment) while every
/// instance serving the same files computes the same number.
fn content_revision(bundle: &Bundle) -> u32 {
    let mut files: Vec<&PathBuf> = bundle
        .proxies
        .iter()
        .chain(&bundle.targets)
        .map(|e| &e.path)
        .chain(&bundle.policy_files)
        .chain(bundle.descriptor.as_ref())
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        if let Ok(rel) = f.strip_prefix(&bundle.root) {
            h.update(rel.to_string_lossy().as_bytes());
        }
        h.update([0]);
        h.update(std::fs::read(f).unwrap_or_default());
        h.update([0]);
    }
    let d = h.finalize();
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    // Readable in keys, never 0.
    n % 100_000_000 + 1
}

fn site(path: &Path, pos: Pos) -> Site {
    Site {
        file: Arc::from(path),
        pos: Some(pos),
    }
}

fn steps_of(path: &Path, list: &[model::Step]) -> Vec<SrcStep> {
    list.iter()
        .map(|s| SrcStep {
            policy: s.name.value.clone(),
            condition: s
                .condition
                .as_ref()
                .map(|c| (c.value.clone(), site(path, c.pos))),
            at: site(path, s.name.pos),
            span: 0,
            tolerant: false,
        })
        .collect()
}

fn both(path: &Path, s: &model::FlowSteps) -> SrcSteps {
    SrcSteps {
        request: steps_of(path, &s.request),
        response: steps_of(path, &s.response),
    }
}

fn endpoint_of(file: &model::EndpointFile, diags: &mut Diagnostics) -> SrcEndpoint {
    let e = &file.endpoint;
    let path = file.path.as_path();
    for u in &e.unsupported {
        diags.push(
            Diagnostic::error(
                path,
                Some(u.pos),
                format!("{} is not supported by cachegate", u.value),
            )
            .with_hint("remove it, or keep this proxy on Apigee"),
        );
    }
    let fault_rule = |r: &model::FaultRule| SrcFaultRule {
        name: r.name.as_ref().map(|n| n.value.clone()).unwrap_or_default(),
        at: site(path, r.name.as_ref().map_or(e.pos, |n| n.pos)),
        condition: r
            .condition
            .as_ref()
            .map(|c| (c.value.clone(), site(path, c.pos))),
        steps: steps_of(path, &r.steps),
        always_enforce: r.always_enforce,
    };
    if !e.post_client_flow.request.is_empty() {
        diags.push(
            Diagnostic::warning(path, Some(e.pos), format!("the <Request> steps of the PostClientFlow of {} `{}` never run: it runs after the response is sent, on the response only", e.kind.element(), e.name.value))
                .with_hint("move them to <Response> in the PostClientFlow"),
        );
    }
    SrcEndpoint {
        name: e.name.value.clone(),
        preflow: both(path, &e.preflow),
        flows: e
            .flows
            .iter()
            .map(|f| SrcFlow {
                name: f.name.value.clone(),
                at: site(path, f.name.pos),
                condition: f
                    .condition
                    .as_ref()
                    .map(|c| (c.value.clone(), site(path, c.pos))),
                steps: both(path, &f.steps),
            })
            .collect(),
        postflow: both(path, &e.postflow),
        post_client_flow: steps_of(path, &e.post_client_flow.response),
        fault_rules: e.fault_rules.iter().map(fault_rule).collect(),
        default_fault_rule: e.default_fault_rule.as_ref().map(fault_rule),
    }
}

/// The URL of a TargetEndpoint or RouteRule, reported when refused.
fn url(
    u: &Located<String>,
    path: &Path,
    timeouts: Timeouts,
    diags: &mut Diagnostics,
) -> Option<Target> {
    match compile::target_url(u.value.trim(), timeouts, true) {
        Ok(t) => Some(t),
        Err((m, h)) => {
            diags.push(Diagnostic::error(path, Some(u.pos), m).with_hint(h));
            None
        }
    }
}

/// The bundle's TargetEndpoints in the source model, shared by its ProxyEndpoints. A target
/// whose URL is refused is kept (unresolved, and reported) so that every other check still
/// runs; the stage is not built.
fn targets_of(
    bundle: &Bundle,
    timeouts: Timeouts,
    gateway: Option<&stage::GatewaySettings>,
    diags: &mut Diagnostics,
) -> Vec<SrcTarget> {
    let mut targets = Vec::new();
    for t in &bundle.targets {
        let mut target = match &t.endpoint.connection {
            Some(Connection::Url(u)) => url(u, &t.path, timeouts, diags),
            Some(Connection::LoadBalancer(lb)) => {
                let gateway_toml = gateway_toml_path(&bundle.root);
                connection::balanced(lb, gateway, &gateway_toml, &t.path, timeouts, diags)
            }
            Some(Connection::Local(l)) => connection::local(l, &t.path, timeouts, diags),
            // The parser reported the missing connection.
            None => None,
        };
        if let (Some(target), Some(ssl)) = (&mut target, &t.endpoint.ssl) {
            compile::apply_ssl_info(target, ssl, &t.path, diags);
        }
        let endpoint = endpoint_of(t, diags);
        let target = target.unwrap_or_else(|| Target::unresolved(&t.path.to_string_lossy()));
        targets.push(SrcTarget { endpoint, target });
    }
    targets
}

/// One ProxyEndpoint's flows and routes, with the bundle's `targets`.
fn proxy_flows(
    proxy: &model::EndpointFile,
    targets: Vec<SrcTarget>,
    timeouts: Timeouts,
    diags: &mut Diagnostics,
) -> SrcFlows {
    let mut routes = Vec::new();
    for r in &proxy.endpoint.route_rules {
        let to = match &r.to {
            RouteTarget::Endpoint(e) => SrcRouteTo::Endpoint(e.value.trim().to_owned()),
            RouteTarget::Url(u) => SrcRouteTo::Url(
                url(u, &proxy.path, timeouts, diags)
                    .unwrap_or_else(|| Target::unresolved(&u.value)),
            ),
            RouteTarget::Null => SrcRouteTo::Null,
        };
        routes.push(SrcRoute {
            name: r.name.value.clone(),
            at: site(&proxy.path, r.name.pos),
            condition: r
                .condition
                .as_ref()
                .map(|c| (c.value.clone(), site(&proxy.path, c.pos))),
            to,
        });
    }
    if proxy.endpoint.route_rules.is_empty() {
        diags.push(Diagnostic::warning(&proxy.path, Some(proxy.endpoint.pos), "the ProxyEndpoint has no RouteRule: every request gets the empty response its policies build (a null route)").with_hint("add <RouteRule name=\"default\"><TargetEndpoint>default</TargetEndpoint></RouteRule>"));
    }
    let proxy = endpoint_of(proxy, diags);
    SrcFlows {
        proxy,
        targets,
        routes,
    }
}

/// apigeelint's unused-policy warning (a policy only FaultRules use is used), over every
/// ProxyEndpoint.
fn unused_policies(
    srcs: &[SrcFlows],
    policies: &BTreeMap<String, Arc<PolicyFile>>,
    diags: &mut Diagnostics,
) {
    // By the name steps use: a shared flow's policies are keyed `<flow>/<policy>`.
    let used: BTreeSet<&str> = srcs
        .iter()
        .flat_map(SrcFlows::every_step)
        .map(|s| s.policy.as_str())
        .collect();
    for (key, p) in policies {
        if !used.contains(key.as_str()) {
            diags.push(
                Diagnostic::warning(
                    &p.path,
                    Some(p.pos),
                    format!("policy `{}` is not attached to any step", p.name()),
                )
                .with_hint("attach it in a flow, or delete the file"),
            );
        }
    }
}
