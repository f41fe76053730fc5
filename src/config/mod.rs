//! Configuration: read the policies directory, validate everything, compile a `RuntimeConfig`.
//!
//! ```text
//! policies/
//!   gateway.toml          optional: listeners, Redis, organisation
//!   <stage>/stage.toml    one folder per API stage
//!   <stage>/*.xml|*.toml  policies of that stage (Apigee XML or TOML)
//!   <stage>/apiproxy/     or an Apigee API proxy bundle (`bundle.rs`)
//! ```
//!
//! `load` is the only function here that touches the file system. It never stops at the first
//! problem: the outcome carries every diagnostic, and a configuration only when none is an error.

pub(crate) mod assign;
mod build;
mod bundle;
mod chain;
mod compile;
mod connection;
mod crossref;
pub(crate) mod defaults;
pub(crate) mod file;
pub(crate) mod file_log;
mod file_values;
mod files;
mod foreign;
pub mod import;
pub(crate) mod policies;
pub mod schema;
mod shared;
mod source;
pub(crate) mod units;
mod variants;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::runtime::stage;
pub use crate::runtime::stage::RuntimeConfig;

use crate::diag::{Diagnostic, Diagnostics};
use crate::policy::model::PolicyFile;
use build::{build_stage, StageSettings};
use compile::{file_error, FileCtx};
use file::{FileGateway, FileStage};
use files::{parse_toml, read};
use foreign::Foreign;
use policies::Conditions;

/// The result of loading a directory: every diagnostic, and the configuration when valid.
#[derive(Debug)]
pub struct LoadOutcome {
    /// The compiled configuration, present only when there were no errors.
    pub config: Option<RuntimeConfig>,
    /// Errors and warnings, sorted by file and position.
    pub diagnostics: Diagnostics,
}

/// An Apigee API proxy or shared flow bundle (`apiproxy/`, `sharedflowbundle/`, or a folder
/// holding one, or its `proxies/` / `sharedflows/` layout).
fn looks_like_bundle(dir: &Path) -> bool {
    let named = |d: &Path| {
        d.file_name()
            .is_some_and(|n| n == "apiproxy" || n == "sharedflowbundle")
    };
    // `sharedflows/` of a policies directory holds shared flow bundles (folders); that of a
    // shared flow bundle holds its flow (an .xml file).
    let holds_xml = |d: PathBuf| {
        fs::read_dir(d).is_ok_and(|mut e| {
            e.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "xml")))
        })
    };
    named(dir)
        || dir.join("apiproxy").is_dir()
        || dir.join("sharedflowbundle").is_dir()
        || dir.join("proxies").is_dir()
        || holds_xml(dir.join("sharedflows"))
}

/// The error for a bundle where a policies directory or a stage folder was expected.
fn bundle_error(dir: &Path) -> Diagnostic {
    let shared = dir.join("sharedflowbundle").is_dir()
        || dir.file_name().is_some_and(|n| n == "sharedflowbundle")
        || dir.join("sharedflows").join("default.xml").is_file();
    if shared {
        return Diagnostic::error(
            dir,
            None,
            "this is an Apigee shared flow bundle, not a policies directory or a stage folder",
        )
        .with_hint(format!("put it in policies/{}/<name>/sharedflowbundle/, where every stage's FlowCallouts and the [flow_hooks] find it", shared::SHARED_FLOWS_DIR));
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
        .filter(|e| e.file_name() != shared::SHARED_FLOWS_DIR)
        .map(|e| e.path())
        .collect();
    stage_dirs.sort();

    // The environment's shared flows, for every stage's FlowCallouts and the flow hooks.
    let shared_dir = dir.join(shared::SHARED_FLOWS_DIR);
    let registry = if shared_dir.is_dir() {
        shared::load(&shared_dir, diags)
    } else {
        shared::SharedFlows::default()
    };
    if let Some((g, text)) = &file_gateway {
        for (key, name) in g.flow_hooks.iter() {
            let n = name.get_ref().trim();
            if !registry.contains(n) && compile::is_name(n) {
                let known = registry.names();
                let hint = if known.is_empty() {
                    format!(
                        "put the shared flow bundle in {}/{n}/sharedflowbundle/",
                        shared_dir.display()
                    )
                } else {
                    format!("the shared flows are: {}", known.join(", "))
                };
                FileCtx {
                    path: &gateway_path,
                    text,
                    diags,
                }
                .error(
                    name,
                    format!("[flow_hooks] {key} names shared flow `{n}`, which is not loaded"),
                    Some(hint),
                );
            }
        }
    }

    // Every condition of this load is parsed once, whichever stage or check asks first.
    let mut conditions = Conditions::default();
    let mut stages = Vec::new();
    // Where each stage's base path is written, when not in its folder's stage.toml: a bundle
    // stage's ProxyEndpoint file.
    let mut origins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for stage_dir in &stage_dirs {
        let stage_toml = stage_dir.join("stage.toml");
        if stage_dir.join("apiproxy").is_dir() {
            if let Some(name) = stage_name(stage_dir, diags) {
                let built = bundle::load_bundle_stage(
                    stage_dir,
                    name,
                    gateway.as_ref(),
                    &registry,
                    &mut conditions,
                    diags,
                );
                for (stage, file) in built {
                    origins.insert(stage.name.clone(), file);
                    stages.push(stage);
                }
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
            gateway.as_ref(),
            &registry,
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

    // Chained proxies (LocalTargetConnection) need every stage.
    chain::resolve(&mut stages, gateway.as_ref().map(|g| g.listen), diags);

    // Two stages (or two ProxyEndpoints of bundles) may not claim the same base path.
    let origin = |name: &str| {
        origins
            .get(name)
            .cloned()
            .unwrap_or_else(|| dir.join(name).join("stage.toml"))
    };
    let mut by_base: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &stages {
        if let Some(other) = by_base.insert(&s.base_path, &s.name) {
            diags.push(
                Diagnostic::error(
                    origin(&s.name),
                    None,
                    format!(
                        "stage `{}` has the same base_path `{}` as stage `{other}` ({})",
                        s.name,
                        s.base_path,
                        origin(other).display()
                    ),
                )
                .with_hint("give each stage (each ProxyEndpoint of a bundle) its own base path"),
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
    gateway: Option<&stage::GatewaySettings>,
    registry: &shared::SharedFlows,
    conditions: &mut Conditions,
    diags: &mut Diagnostics,
) -> Option<stage::Stage> {
    let name = stage_name(dir, diags)?;
    let text = read(stage_toml, diags)?;
    let file: FileStage = parse_toml(stage_toml, &text, diags)?;

    // Policies beside stage.toml; Apigee XML policies of kinds cachegate does not run are
    // refused or skipped as in a bundle (`foreign.rs`).
    let mut policies: BTreeMap<String, Arc<PolicyFile>> = BTreeMap::new();
    let mut foreign: BTreeMap<String, Foreign> = BTreeMap::new();
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
        if ext == "xml" {
            match foreign_policy(&path, &policies, &foreign, diags) {
                ForeignFile::Not => {}
                ForeignFile::Reported => continue,
                ForeignFile::Read(f) => {
                    foreign.insert(f.name.clone(), f);
                    continue;
                }
            }
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
        let first = policies
            .get(&pname)
            .map(|p| p.path.clone())
            .or_else(|| foreign.get(&pname).map(|f| f.header.path.clone()));
        if let Some(first) = first {
            diags.push(
                Diagnostic::error(
                    &path,
                    Some(policy.common.name.pos),
                    format!(
                        "a second policy named `{pname}` (the first is {})",
                        first.display()
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
    compile::endpoint_names(&mut cx, &file);
    let lists = foreign::skip_lists(&mut cx, &file);
    // An unresolvable target or a bad base path is reported; the flows and policies are still
    // checked (the stage is not built).
    let target_ok = target.is_some();
    let target = target.unwrap_or_else(|| stage::Target::unresolved("(invalid target)"));
    let mut src = source::SrcFlows::from_stage_toml(stage_toml, &text, &file, target);
    // Shared flows first: their policies of kinds cachegate does not run are judged with the
    // stage's own (skip_policies applies to both).
    shared::expand(
        &mut src,
        gateway.map_or(&stage::FlowHooks::default(), |g| &g.flow_hooks),
        registry,
        shared::StagePolicies {
            policies: &mut policies,
            foreign: &mut foreign,
            failed: &mut failed,
        },
        diags,
    );
    let skipped = foreign::dispose(
        std::slice::from_ref(&src),
        &foreign,
        &lists,
        (stage_toml, &text),
        diags,
    );
    failed.extend(foreign.keys().filter(|n| !skipped.contains(*n)).cloned());
    foreign::remove_steps(&mut src, &skipped);
    foreign::unused_skips(&lists, &foreign, (stage_toml, &text), "stage", diags);
    let settings = StageSettings {
        name,
        base_path: base_path.clone().unwrap_or_default(),
        api_name,
        revision: file
            .revision
            .as_ref()
            .map_or(defaults::REVISION, |r| *r.get_ref()),
        preserve_host: file.preserve_host,
        resources,
        cache,
    };
    let built = build_stage(
        settings, &src, &policies, &failed, gateway, conditions, diags,
    );
    built.filter(|_| target_ok && base_path.is_some())
}

/// What [`foreign_policy`] found in an XML file.
enum ForeignFile {
    /// Not a policy of a kind cachegate knows but does not run: the policy parser reads it.
    Not,
    /// One without a name, or with the name of one already read: reported.
    Reported,
    /// One, to be refused or skipped.
    Read(Foreign),
}

/// Whether the XML file `path` holds a policy of a kind cachegate knows but does not run.
fn foreign_policy(
    path: &Path,
    policies: &BTreeMap<String, Arc<PolicyFile>>,
    foreign: &BTreeMap<String, Foreign>,
    diags: &mut Diagnostics,
) -> ForeignFile {
    let Ok(header) = crate::policy::bundle::policy_header(path) else {
        return ForeignFile::Not;
    };
    if !crate::policy::kinds::is_foreign(&header.kind.value) {
        return ForeignFile::Not;
    }
    let Some(name) = header.name.clone() else {
        diags.push(foreign::nameless(&header));
        return ForeignFile::Reported;
    };
    let first = policies
        .get(&name.value)
        .map(|p| p.path.clone())
        .or_else(|| foreign.get(&name.value).map(|f| f.header.path.clone()));
    if let Some(first) = first {
        diags.push(
            Diagnostic::error(
                path,
                Some(name.pos),
                format!(
                    "a second policy named `{}` (the first is {})",
                    name.value,
                    first.display()
                ),
            )
            .with_hint("policy names must be unique within a stage"),
        );
        return ForeignFile::Reported;
    }
    ForeignFile::Read(Foreign {
        header,
        name: name.value,
    })
}
