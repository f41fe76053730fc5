//! Shared flows: the environment's `sharedflowbundle/`s, loaded once per configuration from
//! `policies/sharedflows/<folder>/`, and compiled in place into every stage that runs them —
//! through a FlowCallout step, or through a flow hook in gateway.toml (apigee-bundles.md §6).
//!
//! A FlowCallout runs the shared flow's Steps where it stands, in the calling request's message
//! context: what they set is visible to the caller afterwards. So the shared flow's steps are
//! put right after the FlowCallout step (its `span`), and its policies are added to the stage as
//! `<shared flow>/<policy>`, so that they can never clash with the proxy's own policy names
//! while keeping their own names for their variables (`lookupcache.<name>.cachehit`) and
//! metrics. Each calling stage compiles them with its own scope: Apigee does not document the
//! Scope prefix of a policy in a shared flow, and a Prefix-less one is warned about (§6).
//!
//! Loaded here, every shared flow is checked once: Steps name its own policies, ResponseCache is
//! refused (Apigee forbids it in shared flows), unused policies are warned about. Calls are
//! resolved per stage: a FlowCallout naming an unknown shared flow, or calls forming a cycle,
//! are errors at the FlowCallout.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::foreign::{self, Foreign};
use super::source::{Site, SrcEndpoint, SrcFlows, SrcStep};
use crate::diag::{Diagnostic, Diagnostics, Located};
use crate::policy::bundle as model;
use crate::policy::kinds::{self, Disposition};
use crate::policy::model::{Policy, PolicyFile, Scope};
use crate::runtime::stage::FlowHooks;

/// The folder of `policies/` that holds the environment's shared flows (not a stage).
pub(crate) const SHARED_FLOWS_DIR: &str = "sharedflows";

/// The policies of one bundle's `policies/` folder: the kinds cachegate runs, parsed; the other
/// kinds by header; and the names whose files could not be read (steps naming them are not
/// reported a second time).
#[derive(Default)]
pub(crate) struct LoadedPolicies {
    /// Parsed, by name.
    pub policies: BTreeMap<String, Arc<PolicyFile>>,
    /// Of kinds cachegate does not run, by name.
    pub foreign: BTreeMap<String, Foreign>,
    /// Names (or file stems) of policies with errors.
    pub failed: BTreeSet<String>,
}

/// Reads a bundle's policy files (names must be unique within the bundle).
pub(crate) fn load_policy_files(files: &[PathBuf], diags: &mut Diagnostics) -> LoadedPolicies {
    let mut out = LoadedPolicies::default();
    for path in files {
        let header = match model::policy_header(path) {
            Ok(h) => h,
            Err(d) => {
                diags.push(d);
                if let Some(stem) = path.file_stem() {
                    out.failed.insert(stem.to_string_lossy().into_owned());
                }
                continue;
            }
        };
        let pname = header.name.as_ref().map(|n| n.value.clone());
        if let Some(n) = &pname {
            if out.policies.contains_key(n) || out.foreign.contains_key(n) {
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
                    out.policies.insert(p.name().to_owned(), Arc::new(p));
                }
                None => out.failed.extend(pname),
            }
        } else if let Some(n) = pname {
            out.foreign.insert(n.clone(), Foreign { header, name: n });
        } else {
            diags.push(foreign::nameless(&header));
        }
    }
    out
}

/// One shared flow, checked.
pub(crate) struct SharedFlow {
    /// Its steps, in order, naming its own policies.
    steps: Vec<SrcStep>,
    /// Its policies.
    loaded: LoadedPolicies,
}

/// The environment's shared flows, by the name FlowCallouts use.
#[derive(Default)]
pub(crate) struct SharedFlows {
    flows: BTreeMap<String, SharedFlow>,
}

impl SharedFlows {
    /// Whether a shared flow of this name is loaded.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.flows.contains_key(name)
    }

    /// The names, for hints.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.flows.keys().map(String::as_str).collect()
    }
}

/// Loads every shared flow under `dir` (`policies/sharedflows/`): each subfolder holds one
/// bundle, as `<folder>/sharedflowbundle/` (Apigee's layout) or directly.
pub(crate) fn load(dir: &Path, diags: &mut Diagnostics) -> SharedFlows {
    let mut out = SharedFlows::default();
    let mut folders: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(e) => e
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect(),
        Err(e) => {
            diags.push(Diagnostic::error(
                dir,
                None,
                format!("cannot read the shared flows folder: {e}"),
            ));
            return out;
        }
    };
    folders.sort();
    let mut origin: BTreeMap<String, PathBuf> = BTreeMap::new();
    for folder in folders {
        let root = if folder.join("sharedflowbundle").is_dir() {
            folder.join("sharedflowbundle")
        } else if folder.join("sharedflows").is_dir() {
            folder.clone()
        } else {
            diags.push(
                Diagnostic::error(&folder, None, "not a shared flow bundle: no sharedflowbundle/ (or sharedflows/) inside")
                    .with_hint("each folder of sharedflows/ holds one Apigee shared flow bundle: <name>/sharedflowbundle/ with sharedflows/default.xml and policies/"),
            );
            continue;
        };
        let (bundle, bundle_diags) = model::load_shared_flow_bundle(&root);
        diags.extend(bundle_diags);
        let Some(bundle) = bundle else { continue };
        let Some(name) = bundle.name.clone() else {
            continue;
        };
        let at = bundle.descriptor.clone().unwrap_or_else(|| root.clone());
        if !crate::config::compile::is_name(&name.value) {
            diags.push(Diagnostic::error(
                &at,
                Some(name.pos),
                format!(
                    "the shared flow name `{}` must be letters, digits, `-`, `_` or `.`",
                    name.value
                ),
            ));
            continue;
        }
        if let Some(first) = origin.get(&name.value) {
            diags.push(
                Diagnostic::error(
                    &at,
                    Some(name.pos),
                    format!(
                        "a second shared flow named `{}` (the first is in {})",
                        name.value,
                        first.display()
                    ),
                )
                .with_hint("FlowCallouts name shared flows by their <SharedFlowBundle name>; give each its own"),
            );
            continue;
        }
        origin.insert(name.value.clone(), root.clone());
        if let Some(flow) = checked(&bundle, &name, diags) {
            out.flows.insert(name.value.clone(), flow);
        }
    }
    out
}

/// A shared flow bundle's policies and steps, checked on their own.
fn checked(
    bundle: &model::SharedFlowBundle,
    name: &Located<String>,
    diags: &mut Diagnostics,
) -> Option<SharedFlow> {
    let flow = bundle.flow.as_ref()?;
    let mut loaded = load_policy_files(&bundle.policy_files, diags);
    let file: Arc<Path> = Arc::from(flow.path.as_path());
    let site = |pos| Site {
        file: Arc::clone(&file),
        pos: Some(pos),
    };
    let steps: Vec<SrcStep> = flow
        .steps
        .iter()
        .map(|s| SrcStep {
            policy: s.name.value.clone(),
            condition: s.condition.as_ref().map(|c| (c.value.clone(), site(c.pos))),
            at: site(s.name.pos),
            span: 0,
            tolerant: false,
        })
        .collect();
    for s in &steps {
        let known = loaded.policies.contains_key(&s.policy)
            || loaded.foreign.contains_key(&s.policy)
            || loaded.failed.contains(&s.policy);
        if !known {
            diags.push(
                Diagnostic::error(
                    &s.at.file,
                    s.at.pos,
                    format!(
                        "step names policy `{}`, which shared flow `{}` does not have",
                        s.policy, name.value
                    ),
                )
                .with_hint("a shared flow's steps name policies of its own policies/ folder"),
            );
            loaded.failed.insert(s.policy.clone());
        }
    }
    for p in loaded.policies.values() {
        let used = steps.iter().any(|s| s.policy == p.name());
        if !used {
            diags.push(
                Diagnostic::warning(
                    &p.path,
                    Some(p.pos),
                    format!(
                        "policy `{}` is not attached to any step of the shared flow",
                        p.name()
                    ),
                )
                .with_hint("attach it in sharedflows/, or delete the file"),
            );
        }
        let (scope, prefix) = match &p.policy {
            Policy::ResponseCache(_) => {
                diags.push(
                    Diagnostic::error(&p.path, Some(p.pos), "ResponseCache cannot be used in a shared flow (Apigee refuses it)")
                        .with_hint("attach the ResponseCache in the proxy, or use LookupCache and PopulateCache here"),
                );
                continue;
            }
            Policy::LookupCache(x) => (x.scope, &x.cache_key.prefix),
            Policy::PopulateCache(x) => (x.scope, &x.cache_key.prefix),
            Policy::InvalidateCache(x) => (x.scope, &x.cache_key.prefix),
            Policy::AssignMessage(_) | Policy::FlowCallout(_) | Policy::RaiseFault(_) => continue,
        };
        let prefixed = prefix.as_ref().is_some_and(|p| !p.value.is_empty());
        if !prefixed && scope != Scope::Global {
            diags.push(
                Diagnostic::warning(
                    &p.path,
                    Some(p.pos),
                    format!(
                        "`{}` has Scope {} and no <Prefix> in a shared flow: cachegate prefixes its keys with the calling proxy, as the message context is the caller's (Apigee does not document this), so each proxy calling it has its own entries",
                        p.name(),
                        scope.as_str()
                    ),
                )
                .with_hint("set <Prefix> (as Apigee's own shared flows do), or Scope Global, to share entries between callers"),
            );
        }
    }
    Some(SharedFlow { steps, loaded })
}

/// The name a shared flow's policy has in a stage that runs it.
fn qualified(flow: &str, policy: &str) -> String {
    format!("{flow}/{policy}")
}

/// What a stage's steps name, gathered while shared flows are compiled into it.
pub(crate) struct StagePolicies<'a> {
    /// Parsed policies, by the name steps use.
    pub policies: &'a mut BTreeMap<String, Arc<PolicyFile>>,
    /// Policies of kinds cachegate does not run, by the name steps use.
    pub foreign: &'a mut BTreeMap<String, Foreign>,
    /// Names of policies with errors.
    pub failed: &'a mut BTreeSet<String>,
}

/// Compiles shared flows into a stage: each FlowCallout step is followed by its shared flow's
/// steps (recursively), and the flow hooks' shared flows are put at their positions (§4.1):
/// pre-proxy before the ProxyEndpoint's PreFlow, post-proxy after its PostFlow response,
/// pre-target before each TargetEndpoint's PreFlow, post-target after its PostFlow response.
pub(crate) fn expand(
    src: &mut SrcFlows,
    hooks: &FlowHooks,
    registry: &SharedFlows,
    into: StagePolicies<'_>,
    diags: &mut Diagnostics,
) {
    let mut x = Expander {
        registry,
        into,
        reported: BTreeSet::new(),
        diags,
    };
    let endpoint = |x: &mut Expander<'_, '_>, e: &mut SrcEndpoint| {
        for steps in e.step_lists_mut() {
            *steps = x.list(std::mem::take(steps), &mut Vec::new());
        }
    };
    endpoint(&mut x, &mut src.proxy);
    for t in &mut src.targets {
        endpoint(&mut x, &mut t.endpoint);
    }
    if let Some(h) = &hooks.pre_proxy {
        let steps = x.hook(h);
        src.proxy.preflow.request.splice(0..0, steps);
    }
    if let Some(h) = &hooks.post_proxy {
        let steps = x.hook(h);
        src.proxy.postflow.response.extend(steps);
    }
    for t in &mut src.targets {
        if let Some(h) = &hooks.pre_target {
            let steps = x.hook(h);
            t.endpoint.preflow.request.splice(0..0, steps);
        }
        if let Some(h) = &hooks.post_target {
            let steps = x.hook(h);
            t.endpoint.postflow.response.extend(steps);
        }
    }
}

struct Expander<'r, 'd> {
    registry: &'r SharedFlows,
    into: StagePolicies<'d>,
    /// FlowCallouts already reported (one error per policy, not per step).
    reported: BTreeSet<String>,
    diags: &'d mut Diagnostics,
}

impl Expander<'_, '_> {
    /// `steps` with every FlowCallout's shared flow after it. `stack`: the shared flows being
    /// expanded, outermost first (a cycle is an error).
    fn list(&mut self, steps: Vec<SrcStep>, stack: &mut Vec<String>) -> Vec<SrcStep> {
        let mut out = Vec::with_capacity(steps.len());
        for mut s in steps {
            let callout = self
                .into
                .policies
                .get(&s.policy)
                .and_then(|p| match &p.policy {
                    Policy::FlowCallout(fc) => Some((Arc::clone(p), fc.shared_flow_bundle.clone())),
                    _ => None,
                });
            let Some((policy, flow)) = callout else {
                out.push(s);
                continue;
            };
            let inner = self.inline(&policy, &flow, stack);
            s.span = inner.len();
            s.tolerant = policy.common.continue_on_error;
            out.push(s);
            out.extend(inner);
        }
        out
    }

    /// The steps of shared flow `flow`, called by FlowCallout `policy`, with their policies added
    /// to the stage.
    fn inline(
        &mut self,
        policy: &PolicyFile,
        flow: &Located<String>,
        stack: &mut Vec<String>,
    ) -> Vec<SrcStep> {
        let name = flow.value.as_str();
        if !self.registry.contains(name) {
            if self.reported.insert(policy.name().to_owned()) {
                let known = self.registry.names();
                let hint = match crate::util::did_you_mean(name, known.iter().copied()) {
                    Some(m) => format!("did you mean `{m}`?"),
                    None if known.is_empty() => format!("put the shared flow bundle in policies/{SHARED_FLOWS_DIR}/{name}/sharedflowbundle/"),
                    None => format!("the environment's shared flows are: {}; or put the bundle in policies/{SHARED_FLOWS_DIR}/{name}/sharedflowbundle/", known.join(", ")),
                };
                self.diags.push(
                    Diagnostic::error(
                        &policy.path,
                        Some(flow.pos),
                        format!(
                            "FlowCallout `{}` calls shared flow `{name}`, which is not loaded",
                            policy.name()
                        ),
                    )
                    .with_hint(hint),
                );
            }
            return Vec::new();
        }
        if stack.iter().any(|s| s == name) {
            if self.reported.insert(policy.name().to_owned()) {
                let mut chain = stack.clone();
                chain.push(name.to_owned());
                self.diags.push(
                    Diagnostic::error(
                        &policy.path,
                        Some(flow.pos),
                        format!(
                            "shared flows call each other in a cycle: {}",
                            chain.join(" → ")
                        ),
                    )
                    .with_hint("a shared flow cannot call itself, directly or through others"),
                );
            }
            return Vec::new();
        }
        stack.push(name.to_owned());
        let steps = self.steps_of(name);
        let out = self.list(steps, stack);
        stack.pop();
        out
    }

    /// A flow hook's steps (its name was checked against the registry with gateway.toml).
    fn hook(&mut self, name: &str) -> Vec<SrcStep> {
        if !self.registry.contains(name) {
            return Vec::new();
        }
        let steps = self.steps_of(name);
        self.list(steps, &mut vec![name.to_owned()])
    }

    /// Shared flow `name`'s steps naming its policies as the stage knows them, with the policies
    /// added to the stage.
    fn steps_of(&mut self, name: &str) -> Vec<SrcStep> {
        let Some(flow) = self.registry.flows.get(name) else {
            return Vec::new();
        };
        // Only what its steps use: an unused policy was warned about once, at load.
        let used = |p: &String| flow.steps.iter().any(|s| s.policy == *p);
        for (p, file) in flow.loaded.policies.iter().filter(|(p, _)| used(p)) {
            self.into
                .policies
                .entry(qualified(name, p))
                .or_insert_with(|| Arc::clone(file));
        }
        for (p, f) in flow.loaded.foreign.iter().filter(|(p, _)| used(p)) {
            let q = qualified(name, p);
            self.into
                .foreign
                .entry(q.clone())
                .or_insert_with(|| Foreign {
                    header: f.header.clone(),
                    name: q,
                });
        }
        self.into
            .failed
            .extend(flow.loaded.failed.iter().map(|p| qualified(name, p)));
        flow.steps
            .iter()
            .map(|s| SrcStep {
                policy: qualified(name, &s.policy),
                ..s.clone()
            })
            .collect()
    }
}
