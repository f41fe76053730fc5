//! A stage made of an Apigee API proxy bundle: `policies/<stage>/apiproxy/`, with an optional
//! `stage.toml` beside it for what Apigee keeps outside the bundle (stage caching, revision,
//! `skip_policies`).
//!
//! The bundle's ProxyEndpoint, TargetEndpoints and RouteRules become the stage's endpoints
//! (`config::source`), its policies the stage's policies, and then the stage is checked and
//! compiled exactly like a stage.toml stage. Policies of kinds cachegate does not run are
//! refused, each named with every step that uses it, unless `skip_policies` says to run the kind
//! as a no-op (security kinds also need `acknowledge_unprotected`; see `policy::kinds`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::build::{build_stage, StageSettings};
use super::compile::{self, FileCtx, Timeouts};
use super::connection::{self, gateway_toml_path};
use super::file::FileStage;
use super::files::{parse_toml, read};
use super::policies::Conditions;
use super::source::{
    Site, SrcEndpoint, SrcFlow, SrcFlows, SrcRoute, SrcRouteTo, SrcStep, SrcSteps, SrcTarget,
};
use crate::diag::{Diagnostic, Diagnostics, Located, Pos};
use crate::policy::bundle::{self as model, Bundle, Connection, RouteTarget};
use crate::policy::kinds::{self, Disposition};
use crate::policy::model::PolicyFile;
use crate::runtime::stage::{self, Target};

/// A policy of a kind cachegate does not run.
struct Foreign {
    header: model::PolicyHeader,
    name: String,
}

/// Loads the stage in `dir`, whose bundle is `dir/apiproxy`.
pub(super) fn load_bundle_stage(
    dir: &Path,
    name: String,
    gateway: Option<&stage::GatewaySettings>,
    conditions: &mut Conditions,
    diags: &mut Diagnostics,
) -> Option<stage::Stage> {
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
    let flows_at = file.flows.first().map(|f| f.name.span()).or_else(|| {
        [&file.preflow, &file.postflow]
            .iter()
            .flat_map(|f| f.request.iter().chain(&f.response))
            .map(|s| s.span())
            .next()
    });
    let owned: [(Option<std::ops::Range<usize>>, &str, &str); 4] = [
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
    let skip = kind_list(&mut cx, &file.skip_policies, "skip_policies");
    let acknowledged = kind_list(
        &mut cx,
        &file.acknowledge_unprotected,
        "acknowledge_unprotected",
    );
    for (kind, at) in &acknowledged {
        if !skip.contains_key(kind) {
            cx.error(
                at,
                format!("`{kind}` is acknowledged but not in skip_policies"),
                Some(format!(
                    "add \"{kind}\" to skip_policies too, or remove it here"
                )),
            );
        } else if kinds::disposition(kind) != Disposition::Security {
            cx.warning(
                at,
                format!("`{kind}` is not a security kind; acknowledging it changes nothing"),
                None,
            );
        }
    }

    let bundle_dir = dir.join("apiproxy");
    let (bundle, bundle_diags) = model::load_bundle(&bundle_dir);
    diags.extend(bundle_diags);
    let bundle = bundle?;
    let proxy = match bundle.proxies.as_slice() {
        [one] => one,
        [] => return None,
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|p| format!("`{}` ({})", p.endpoint.name.value, p.path.display()))
                .collect();
            diags.push(
                Diagnostic::error(&bundle_dir, None, format!("the bundle has {} ProxyEndpoints ({}); cachegate runs one per stage so far", several.len(), names.join(", ")))
                    .with_hint("split the bundle: one stage folder per ProxyEndpoint, each with its own apiproxy/"),
            );
            return None;
        }
    };
    let base_path = bundle_base_path(proxy, diags);

    // Policies: the kinds cachegate runs are parsed; the others are refused or skipped.
    let mut policies: BTreeMap<String, Arc<PolicyFile>> = BTreeMap::new();
    let mut foreign: BTreeMap<String, Foreign> = BTreeMap::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for path in &bundle.policy_files {
        let header = match model::policy_header(path) {
            Ok(h) => h,
            Err(d) => {
                diags.push(d);
                if let Some(stem) = path.file_stem() {
                    failed.insert(stem.to_string_lossy().into_owned());
                }
                continue;
            }
        };
        let pname = header.name.as_ref().map(|n| n.value.clone());
        if let Some(n) = &pname {
            if policies.contains_key(n) || foreign.contains_key(n) {
                diags.push(
                    Diagnostic::error(
                        path,
                        header.name.as_ref().map(|n| n.pos),
                        format!("a second policy named `{n}`"),
                    )
                    .with_hint("policy names must be unique within a bundle"),
                );
                continue;
            }
        }
        if kinds::disposition(&header.kind.value) == Disposition::Run {
            let outcome = crate::policy::load_policy_file(path);
            diags.extend(outcome.diagnostics);
            match outcome.policy {
                Some(p) => {
                    policies.insert(p.name().to_owned(), Arc::new(p));
                }
                None => {
                    failed.extend(pname);
                }
            }
        } else if let Some(n) = pname {
            foreign.insert(n.clone(), Foreign { header, name: n });
        } else {
            diags.push(
                Diagnostic::error(
                    path,
                    Some(header.kind.pos),
                    format!("<{}> has no name attribute", header.kind.value),
                )
                .with_hint("steps name policies by their name attribute"),
            );
        }
    }

    let mut src = flows_of(&bundle, proxy, timeouts, gateway, diags);
    if file.cache.enabled && src.routes.len() > 1 {
        diags.push(
            Diagnostic::error(&stage_toml, None, format!("[cache] enabled: stage caching keys requests by path and key parameters only, but this bundle has {} RouteRules, so responses of different targets would share entries", src.routes.len()))
                .with_hint("cache with the bundle's ResponseCache policies instead (their keys are yours), or leave [cache] off"),
        );
    }
    if file.cache.enabled {
        let targets = src.targets.iter().map(|t| &t.target);
        connection::templated_with_stage_caching(targets, &stage_toml, diags);
    }
    let skipped = dispose(
        &src,
        &foreign,
        &skip,
        &acknowledged,
        (&stage_toml, &text),
        diags,
    );
    let fault_steps = fault_rule_steps(&bundle);
    failed.extend(foreign.keys().filter(|n| !skipped.contains(*n)).cloned());
    remove_steps(&mut src, &skipped);
    unused_policies(&src, &fault_steps, &policies, diags);
    for (kind, at) in &skip {
        let used = foreign.values().any(|f| f.header.kind.value == *kind);
        if !used {
            let mut d = Diagnostic::warning(
                &stage_toml,
                pos_of(&text, at),
                format!("skip_policies lists `{kind}`, which no policy of the bundle is"),
            );
            d.hint = Some("remove it".into());
            diags.push(d);
        }
    }

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
    let settings = StageSettings {
        name,
        base_path: base_path?,
        api_name,
        revision,
        preserve_host: file.preserve_host,
        resources,
        cache,
    };
    build_stage(
        settings, &src, &policies, &failed, gateway, conditions, diags,
    )
}

fn pos_of<T>(text: &str, at: &Spanned<T>) -> Option<Pos> {
    let span = at.span();
    (span.end > 0).then(|| Pos::from_offset(text, span.start))
}

/// `skip_policies` / `acknowledge_unprotected`: kind names, checked against the kinds cachegate
/// knows to run (listing one of those is a mistake).
fn kind_list(
    cx: &mut FileCtx,
    list: &[Spanned<String>],
    key: &str,
) -> BTreeMap<String, Spanned<String>> {
    let mut out = BTreeMap::new();
    for k in list {
        let kind = k.get_ref();
        if kinds::disposition(kind) == Disposition::Run {
            cx.error(
                k,
                format!("`{kind}` runs in cachegate and cannot be listed in {key}"),
                Some("remove it".into()),
            );
        } else if kinds::disposition(kind) == Disposition::Never {
            cx.error(
                k,
                format!(
                    "`{kind}` can never be skipped: {}",
                    kinds::never_reason(kind)
                ),
                Some("remove it; a bundle using it cannot run on cachegate yet".into()),
            );
        } else {
            out.insert(kind.clone(), k.clone());
        }
    }
    out
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
    let ignored = |what: &str, n: usize, pos: Pos, diags: &mut Diagnostics| {
        if n > 0 {
            diags.push(
                Diagnostic::warning(
                    path,
                    Some(pos),
                    format!(
                        "{what} of {} `{}` is not run by cachegate yet ({n} step(s))",
                        e.kind.element(),
                        e.name.value
                    ),
                )
                .with_hint("a failing policy answers 500 with the fault instead"),
            );
        }
    };
    let fault_steps: usize = e.fault_rules.iter().map(|f| f.steps.len()).sum::<usize>()
        + e.default_fault_rule.as_ref().map_or(0, |d| d.steps.len());
    ignored("FaultRules/DefaultFaultRule", fault_steps, e.pos, diags);
    let client = e.post_client_flow.request.len() + e.post_client_flow.response.len();
    if client > 0 {
        diags.push(Diagnostic::warning(path, Some(e.pos), format!("PostClientFlow of `{}` is not run by cachegate ({client} step(s)): it only runs after the response is sent, for logging", e.name.value)));
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
    }
}

/// The bundle's endpoints and routes in the source model. A target whose URL is refused is kept
/// (unresolved, and reported) so that every other check still runs; the stage is not built.
fn flows_of(
    bundle: &Bundle,
    proxy: &model::EndpointFile,
    timeouts: Timeouts,
    gateway: Option<&stage::GatewaySettings>,
    diags: &mut Diagnostics,
) -> SrcFlows {
    let url = |u: &Located<String>, path: &Path, diags: &mut Diagnostics| match compile::target_url(
        u.value.trim(),
        timeouts,
        true,
    ) {
        Ok(t) => Some(t),
        Err((m, h)) => {
            diags.push(Diagnostic::error(path, Some(u.pos), m).with_hint(h));
            None
        }
    };
    let mut targets = Vec::new();
    for t in &bundle.targets {
        let target = match &t.endpoint.connection {
            Some(Connection::Url(u)) => url(u, &t.path, diags),
            Some(Connection::LoadBalancer(lb)) => {
                let gateway_toml = gateway_toml_path(&bundle.root);
                connection::balanced(lb, gateway, &gateway_toml, &t.path, timeouts, diags)
            }
            Some(Connection::Local(l)) => connection::local(l, &t.path, timeouts, diags),
            // The parser reported the missing connection.
            None => None,
        };
        let endpoint = endpoint_of(t, diags);
        let target = target.unwrap_or_else(|| Target::unresolved(&t.path.to_string_lossy()));
        targets.push(SrcTarget { endpoint, target });
    }
    let mut routes = Vec::new();
    for r in &proxy.endpoint.route_rules {
        let to = match &r.to {
            RouteTarget::Endpoint(e) => SrcRouteTo::Endpoint(e.value.trim().to_owned()),
            RouteTarget::Url(u) => SrcRouteTo::Url(
                url(u, &proxy.path, diags).unwrap_or_else(|| Target::unresolved(&u.value)),
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

/// Decides, for every policy of a kind cachegate does not run, whether it is skipped or
/// refused, and reports it with every step that uses it. Returns the names of the skipped ones.
fn dispose(
    src: &SrcFlows,
    foreign: &BTreeMap<String, Foreign>,
    skip: &BTreeMap<String, Spanned<String>>,
    acknowledged: &BTreeMap<String, Spanned<String>>,
    (stage_toml, stage_text): (&Path, &str),
    diags: &mut Diagnostics,
) -> BTreeSet<String> {
    let mut skipped = BTreeSet::new();
    for f in foreign.values() {
        let kind = f.header.kind.value.as_str();
        let steps: Vec<String> = src
            .every_step()
            .filter(|s| s.policy == f.name)
            .map(|s| match s.at.pos {
                Some(p) => format!("{}:{}:{}", s.at.file.display(), p.line, p.col),
                None => s.at.file.display().to_string(),
            })
            .collect();
        let at = (f.header.path.as_path(), Some(f.header.kind.pos));
        // A disabled policy never runs in Apigee either; one no step cachegate runs names
        // (unattached, or only in FaultRules, which are not run yet) is not run either.
        if !f.header.enabled {
            skipped.insert(f.name.clone());
            continue;
        }
        if steps.is_empty() {
            skipped.insert(f.name.clone());
            diags.push(Diagnostic::warning(
                at.0,
                at.1,
                format!(
                    "<{kind}> `{}` is not run: no flow step cachegate runs uses it",
                    f.name
                ),
            ));
            continue;
        }
        let used = format!("used by the step(s) at {}", steps.join(", "));
        let msg = |what: &str| format!("<{kind}> `{}` {what}; {used}", f.name);
        match kinds::disposition(kind) {
            // Parsed as a policy above; never reaches here.
            Disposition::Run => {}
            Disposition::Never => {
                diags.push(
                    Diagnostic::error(at.0, at.1, msg("cannot run on cachegate")).with_hint(
                        format!("{kind} can never be skipped: {}", kinds::never_reason(kind)),
                    ),
                );
            }
            Disposition::Security => {
                match (skip.contains_key(kind), acknowledged.contains_key(kind)) {
                    (true, true) => {
                        skipped.insert(f.name.clone());
                        diags.push(Diagnostic::warning(at.0, at.1, msg("is SKIPPED: this API runs WITHOUT the protection it gives (acknowledge_unprotected)")));
                    }
                    (true, false) => {
                        let pos = skip.get(kind).and_then(|k| pos_of(stage_text, k));
                        let what = if kinds::is_code(kind) {
                            "runs code that may check callers: skipping it may remove protection"
                        } else {
                            "is a security policy: skipping it removes the protection it gives"
                        };
                        diags.push(Diagnostic::error(stage_toml, pos, msg(what)).with_hint(format!("to run the API unprotected anyway, also write acknowledge_unprotected = [\"{kind}\"] in stage.toml")));
                    }
                    _ => {
                        let what = if kinds::is_code(kind) {
                            "runs code or calls a service cachegate cannot run, and may check callers"
                        } else {
                            "is a security policy cachegate does not run"
                        };
                        diags.push(Diagnostic::error(at.0, at.1, msg(what)).with_hint(format!("cachegate refuses to run the API without it; to run it unprotected anyway, write skip_policies = [\"{kind}\"] and acknowledge_unprotected = [\"{kind}\"] in stage.toml")));
                    }
                }
            }
            Disposition::Skippable(family) => {
                if skip.contains_key(kind) {
                    skipped.insert(f.name.clone());
                    diags.push(Diagnostic::warning(
                        at.0,
                        at.1,
                        msg(&format!(
                            "runs as a no-op (skip_policies): {}",
                            family.consequence()
                        )),
                    ));
                } else {
                    diags.push(Diagnostic::error(at.0, at.1, msg("is of a kind cachegate does not run")).with_hint(format!("to run the bundle without it ({}), write skip_policies = [\"{kind}\"] in stage.toml", family.consequence())));
                }
            }
        }
    }
    skipped
}

/// Removes the steps of skipped policies: they run as no-ops.
fn remove_steps(src: &mut SrcFlows, skipped: &BTreeSet<String>) {
    let keep = |list: &mut Vec<SrcStep>| list.retain(|s| !skipped.contains(&s.policy));
    let endpoint = |e: &mut SrcEndpoint| {
        for s in [&mut e.preflow, &mut e.postflow]
            .into_iter()
            .chain(e.flows.iter_mut().map(|f| &mut f.steps))
        {
            keep(&mut s.request);
            keep(&mut s.response);
        }
    };
    endpoint(&mut src.proxy);
    for t in &mut src.targets {
        endpoint(&mut t.endpoint);
    }
}

/// The policies FaultRules and DefaultFaultRules name.
fn fault_rule_steps(bundle: &Bundle) -> BTreeSet<String> {
    bundle
        .proxies
        .iter()
        .chain(&bundle.targets)
        .flat_map(|e| {
            e.endpoint
                .fault_rules
                .iter()
                .chain(&e.endpoint.default_fault_rule)
        })
        .flat_map(|r| r.steps.iter().map(|s| s.name.value.clone()))
        .collect()
}

/// apigeelint's unused-policy warning (a policy only FaultRules use is used).
fn unused_policies(
    src: &SrcFlows,
    fault_steps: &BTreeSet<String>,
    policies: &BTreeMap<String, Arc<PolicyFile>>,
    diags: &mut Diagnostics,
) {
    let used: BTreeSet<&str> = src
        .every_step()
        .map(|s| s.policy.as_str())
        .chain(fault_steps.iter().map(String::as_str))
        .collect();
    for p in policies.values() {
        if !used.contains(p.name()) {
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
