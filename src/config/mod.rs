//! Configuration: read the policies directory, validate everything, compile a `RuntimeConfig`.
//!
//! ```text
//! policies/
//!   gateway.toml          optional: listeners, Redis, organisation
//!   <stage>/stage.toml    one folder per API stage
//!   <stage>/*.xml|*.toml  policies of that stage (Apigee XML or TOML)
//! ```
//!
//! `load` is the only function here that touches the file system. It never stops at the first
//! problem: the outcome carries every diagnostic, and a configuration only when none is an error.

pub(crate) mod assign;
mod bundle;
mod compile;
mod crossref;
pub(crate) mod defaults;
pub(crate) mod file;
pub(crate) mod policies;
pub mod schema;
mod source;
pub(crate) mod units;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::runtime::stage;
pub use crate::runtime::stage::RuntimeConfig;

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::policy::model::{Policy, PolicyFile};
use crate::runtime::key::{KeySpec, Namespace, ScopeContext};
use compile::{file_error, FileCtx};
use file::{FileGateway, FileStage};
use policies::Conditions;

/// Largest configuration file read (a policy directory is not a place for big files).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The result of loading a directory: every diagnostic, and the configuration when valid.
#[derive(Debug)]
pub struct LoadOutcome {
    /// The compiled configuration, present only when there were no errors.
    pub config: Option<RuntimeConfig>,
    /// Errors and warnings, sorted by file and position.
    pub diagnostics: Diagnostics,
}

fn read(path: &Path, diags: &mut Diagnostics) -> Option<String> {
    match fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            diags.push(file_error(
                path,
                format!("file is {} bytes; the limit is {MAX_FILE_BYTES}", m.len()),
            ));
            return None;
        }
        Err(e) => {
            diags.push(file_error(path, format!("cannot read: {e}")));
            return None;
        }
        Ok(_) => {}
    }
    match fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.push(file_error(path, format!("cannot read: {e}")));
            None
        }
    }
}

/// Parses TOML into `T`, turning a syntax or schema error into a positioned diagnostic.
fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    match toml::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let pos = e.span().map(|s| Pos::from_offset(text, s.start));
            let message = e.message().trim().to_owned();
            let hint = unknown_field_hint(&message);
            let mut d = Diagnostic::error(path, pos, message);
            d.hint = hint;
            diags.push(d);
            None
        }
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`", suggest the closest name.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    match crate::util::did_you_mean(field, expected.iter().copied()) {
        Some(m) => Some(format!("did you mean `{m}`?")),
        None if !expected.is_empty() => Some(format!("valid keys here: {}", expected.join(", "))),
        None => None,
    }
}

/// An Apigee API proxy or shared flow bundle (`apiproxy/`, `sharedflowbundle/`, or a folder
/// holding one, or its `proxies/` / `sharedflows/` layout).
fn looks_like_bundle(dir: &Path) -> bool {
    let named = |d: &Path| {
        d.file_name()
            .is_some_and(|n| n == "apiproxy" || n == "sharedflowbundle")
    };
    named(dir)
        || dir.join("apiproxy").is_dir()
        || dir.join("sharedflowbundle").is_dir()
        || dir.join("proxies").is_dir()
        || dir.join("sharedflows").is_dir()
}

/// The error for a bundle where a policies directory or a stage folder was expected.
fn bundle_error(dir: &Path) -> Diagnostic {
    let shared = dir.join("sharedflowbundle").is_dir()
        || dir.file_name().is_some_and(|n| n == "sharedflowbundle")
        || dir.join("sharedflows").is_dir();
    if shared {
        return Diagnostic::error(
            dir,
            None,
            "this is an Apigee shared flow bundle: cachegate does not load shared flows yet, so none of it would run",
        )
        .with_hint("shared flows (FlowCallout) are not supported yet; proxies calling one are refused by name");
    }
    Diagnostic::error(
        dir,
        None,
        "this is an Apigee API proxy bundle, not a policies directory or a stage folder",
    )
    .with_hint("put it in a stage folder: policies/<stage>/apiproxy/ (the folder named apiproxy, with proxies/, targets/ and policies/ inside)")
}

fn is_ignored(name: &str) -> bool {
    name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".tmp")
}

/// Loads, validates and compiles the configuration in `dir`.
pub fn load(dir: &Path) -> LoadOutcome {
    let mut diags = Diagnostics::new();
    let config = load_inner(dir, &mut diags);
    diags.sort();
    let config = if diags.has_errors() { None } else { config };
    LoadOutcome {
        config,
        diagnostics: diags,
    }
}

fn load_inner(dir: &Path, diags: &mut Diagnostics) -> Option<RuntimeConfig> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(file_error(
                dir,
                format!("cannot read the configuration directory: {e}"),
            ));
            return None;
        }
    };
    let gateway_path = dir.join("gateway.toml");
    let file_gateway = if gateway_path.exists() {
        let text = read(&gateway_path, diags)?;
        let g: FileGateway = parse_toml(&gateway_path, &text, diags)?;
        Some((g, text))
    } else {
        None
    };
    let gateway = match &file_gateway {
        Some((g, text)) => compile::gateway(
            &mut FileCtx {
                path: &gateway_path,
                text,
                diags,
            },
            g,
        ),
        None => compile::gateway(
            &mut FileCtx {
                path: &gateway_path,
                text: "",
                diags,
            },
            &FileGateway::default(),
        ),
    };

    // An Apigee bundle is not a policies directory: say so instead of loading nothing.
    if looks_like_bundle(dir) {
        diags.push(bundle_error(dir));
        return None;
    }
    let mut stage_dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !is_ignored(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    stage_dirs.sort();

    // Every condition of this load is parsed once, whichever stage or check asks first.
    let mut conditions = Conditions::default();
    let mut stages = Vec::new();
    for stage_dir in &stage_dirs {
        let stage_toml = stage_dir.join("stage.toml");
        if stage_dir.join("apiproxy").is_dir() {
            let org = gateway.as_ref().map(|g| g.organization.as_str());
            if let Some(name) = stage_name(stage_dir, diags) {
                stages.extend(bundle::load_bundle_stage(
                    stage_dir,
                    name,
                    org,
                    &mut conditions,
                    diags,
                ));
            }
            continue;
        }
        if !stage_toml.exists() {
            if looks_like_bundle(stage_dir) {
                diags.push(bundle_error(stage_dir));
                continue;
            }
            diags.push(
                Diagnostic::warning(
                    stage_dir,
                    None,
                    "folder has no stage.toml and is not a stage",
                )
                .with_hint("add stage.toml with at least target = \"http://host:port\""),
            );
            continue;
        }
        if let Some(stage) = load_stage(
            stage_dir,
            &stage_toml,
            gateway.as_ref().map(|g| g.organization.as_str()),
            &mut conditions,
            diags,
        ) {
            stages.push(stage);
        }
    }
    if stage_dirs.is_empty() {
        diags.push(
            Diagnostic::warning(dir, None, "no stages: every request will get 404")
                .with_hint("add a folder such as prod/ with a stage.toml"),
        );
    }

    // Two stages may not claim the same base path.
    let mut by_base: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &stages {
        if let Some(other) = by_base.insert(&s.base_path, &s.name) {
            diags.push(
                Diagnostic::error(
                    dir.join(&s.name).join("stage.toml"),
                    None,
                    format!(
                        "stage `{}` has the same base_path `{}` as stage `{other}`",
                        s.name, s.base_path
                    ),
                )
                .with_hint("give each stage its own base_path"),
            );
        }
    }
    let mut stages: Vec<Arc<stage::Stage>> = stages.into_iter().map(Arc::new).collect();
    // Longest base path first: `/prod/v2` must win over `/prod`, and `/` comes last.
    stages.sort_by(|a, b| {
        b.base_path
            .len()
            .cmp(&a.base_path.len())
            .then_with(|| a.name.cmp(&b.name))
    });

    Some(RuntimeConfig {
        source_dir: dir.to_path_buf(),
        loaded_at: SystemTime::now(),
        gateway: gateway?,
        stages,
    })
}

/// The key of a standards-mode stage: method, path and the whole query string (Vary is handled
/// separately, as pingora-cache variants).
fn http_mode_key(scope: &ScopeContext) -> KeySpec {
    let fragment = |var: &'static str| (Some(var), None);
    KeySpec::from_policy(
        Namespace::Standard,
        Some("http"),
        &[
            fragment("request.verb"),
            fragment("proxy.pathsuffix"),
            fragment("request.querystring"),
        ],
        crate::runtime::key::Scope::Exclusive,
        None,
        scope,
    )
}

/// The stage's name: its folder's, which must be letters, digits, `-` or `_`.
fn stage_name(dir: &Path, diags: &mut Diagnostics) -> Option<String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !compile::is_name(&name) || name.contains('.') {
        diags.push(
            Diagnostic::error(
                dir,
                None,
                format!("stage folder name `{name}` must be letters, digits, `-` or `_`"),
            )
            .with_hint("rename the folder, e.g. prod"),
        );
        return None;
    }
    Some(name)
}

fn load_stage(
    dir: &Path,
    stage_toml: &Path,
    org: Option<&str>,
    conditions: &mut Conditions,
    diags: &mut Diagnostics,
) -> Option<stage::Stage> {
    let name = stage_name(dir, diags)?;
    let text = read(stage_toml, diags)?;
    let file: FileStage = parse_toml(stage_toml, &text, diags)?;

    // Policies beside stage.toml.
    let mut policies: BTreeMap<String, Arc<PolicyFile>> = BTreeMap::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(e) => e.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) => {
            diags.push(file_error(dir, format!("cannot read: {e}")));
            Vec::new()
        }
    };
    files.sort();
    for path in files {
        let fname = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if fname == "stage.toml" || is_ignored(&fname) || !path.is_file() {
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "xml" && ext != "toml" {
            continue;
        }
        let outcome = crate::policy::load_policy_file(&path);
        diags.extend(outcome.diagnostics);
        let Some(policy) = outcome.policy else {
            // Its own errors are reported; steps naming it should not add "does not exist".
            if let Some(stem) = path.file_stem() {
                failed.insert(stem.to_string_lossy().into_owned());
            }
            continue;
        };
        let pname = policy.name().to_owned();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if stem != pname {
            diags.push(
                Diagnostic::warning(
                    &path,
                    Some(policy.common.name.pos),
                    format!("the file name `{fname}` differs from the policy name `{pname}`"),
                )
                .with_hint(format!(
                    "steps refer to the name; rename the file to {pname}.{ext} to avoid confusion"
                )),
            );
        }
        if let Some(first) = policies.get(&pname) {
            diags.push(
                Diagnostic::error(
                    &path,
                    Some(policy.common.name.pos),
                    format!(
                        "a second policy named `{pname}` (the first is {})",
                        first.path.display()
                    ),
                )
                .with_hint("policy names must be unique within a stage"),
            );
            continue;
        }
        policies.insert(pname, Arc::new(policy));
    }

    let mut cx = FileCtx {
        path: stage_toml,
        text: &text,
        diags,
    };
    let base_path = compile::base_path(&mut cx, &name, &file);
    let target = compile::target(&mut cx, &file);
    let resources = compile::resources(&mut cx, &file);
    let cache = compile::cache(&mut cx, &file, &resources);
    let api_name = match &file.api_name {
        Some(a) if compile::is_name(a.get_ref()) => a.get_ref().clone(),
        Some(a) => {
            cx.error(
                a,
                format!(
                    "api_name `{}` must be letters, digits, `-`, `_` or `.`",
                    a.get_ref()
                ),
                None,
            );
            name.clone()
        }
        None => name.clone(),
    };
    let src = source::SrcFlows::from_stage_toml(stage_toml, &text, &file, target?);
    let settings = StageSettings {
        name,
        base_path: base_path?,
        api_name,
        revision: file
            .revision
            .as_ref()
            .map_or(defaults::REVISION, |r| *r.get_ref()),
        preserve_host: file.preserve_host,
        resources,
        cache,
    };
    build_stage(settings, &src, &policies, &failed, org, conditions, diags)
}

/// What a stage is besides its flows and policies.
struct StageSettings {
    name: String,
    base_path: String,
    api_name: String,
    revision: u32,
    preserve_host: bool,
    resources: Vec<crate::runtime::resource::ResourcePattern>,
    cache: stage::StageCache,
}

/// The endpoint a policy is first attached on, request side before response side, the
/// ProxyEndpoint before TargetEndpoints: Apigee's Exclusive scope names it. (A ResponseCache
/// computes its key once, on the request side, and reuses it when storing.)
///
/// Returns whether it is first attached on a TargetEndpoint, and the TargetEndpoint its
/// Target scope names: the first that attaches it, else the first of the stage.
fn attachment<'s>(src: &'s source::SrcFlows, policy: &str) -> (bool, Option<&'s str>) {
    let on_proxy = src.proxy.every_step().any(|s| s.policy == policy);
    let target = src
        .targets
        .iter()
        .find(|t| t.endpoint.every_step().any(|s| s.policy == policy));
    (
        !on_proxy && target.is_some(),
        target
            .or(src.targets.first())
            .map(|t| t.endpoint.name.as_str()),
    )
}

/// Checks and compiles a stage's flows and policies into the runtime stage.
fn build_stage(
    settings: StageSettings,
    src: &source::SrcFlows,
    policies: &BTreeMap<String, Arc<PolicyFile>>,
    failed: &BTreeSet<String>,
    org: Option<&str>,
    conditions: &mut Conditions,
    diags: &mut Diagnostics,
) -> Option<stage::Stage> {
    let StageSettings {
        name,
        base_path,
        api_name,
        revision,
        preserve_host,
        resources,
        cache,
    } = settings;
    let (proxy, targets, routes) = compile::endpoints(diags, conditions, src);
    crossref::check_stage(diags, conditions, src, policies, failed);

    let scope = ScopeContext {
        organization: org.unwrap_or("cachegate"),
        stage: &name,
        api_name: &api_name,
        revision,
        proxy_endpoint: &src.proxy.name,
        target_endpoint: crate::runtime::key::DEFAULT_ENDPOINT,
        on_target: false,
    };
    let scope_of = |policy: &str| {
        let (on_target, target) = attachment(src, policy);
        ScopeContext {
            on_target,
            target_endpoint: target.unwrap_or(crate::runtime::key::DEFAULT_ENDPOINT),
            ..scope
        }
    };
    // A ResponseCache whose condition does not parse compiles to nothing; validation has
    // reported it, so this configuration is never used (the stage is still built, so the
    // checks across stages still run).
    let mut response_caches = BTreeMap::new();
    for p in policies.values() {
        if let Policy::ResponseCache(rc) = &p.policy {
            let scope = scope_of(p.name());
            if let Some(compiled) = policies::response_cache(p, rc, &scope, conditions, diags) {
                response_caches.insert(p.name().to_owned(), Arc::new(compiled));
            }
        }
    }
    let step_policies = policies
        .values()
        .filter_map(|p| {
            let scope = scope_of(p.name());
            let compiled = match &p.policy {
                Policy::ResponseCache(_) => return None,
                Policy::LookupCache(lc) => {
                    stage::StepPolicy::LookupCache(policies::lookup_cache(p, lc, &scope))
                }
                Policy::PopulateCache(pc) => {
                    stage::StepPolicy::PopulateCache(policies::populate_cache(p, pc, &scope))
                }
                Policy::InvalidateCache(ic) => {
                    stage::StepPolicy::InvalidateCache(policies::invalidate_cache(p, ic, &scope))
                }
                Policy::AssignMessage(am) => {
                    stage::StepPolicy::AssignMessage(stage::AssignMessagePolicy {
                        name: p.name().to_owned(),
                        enabled: p.common.enabled,
                        continue_on_error: p.common.continue_on_error,
                        assign: assign::compile(am),
                    })
                }
            };
            Some((p.name().to_owned(), Arc::new(compiled)))
        })
        .collect();
    let default_key = match cache.mode {
        stage::CacheMode::Aws => KeySpec::aws_default(&name, &cache.key_parameters),
        stage::CacheMode::Http => http_mode_key(&scope),
    };

    Some(stage::Stage {
        name,
        base_path,
        api_name,
        revision,
        proxy_endpoint: src.proxy.name.clone(),
        preserve_host,
        resources,
        cache,
        proxy,
        targets,
        routes,
        response_caches,
        step_policies,
        default_key,
    })
}
