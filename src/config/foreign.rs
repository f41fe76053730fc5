//! Policies of kinds cachegate does not run (VerifyAPIKey, Quota, StatisticsCollector, …), in an
//! Apigee bundle or beside a stage.toml: each is refused, naming every step that uses it, unless
//! `skip_policies` says to run its kind as a no-op (security kinds also need
//! `acknowledge_unprotected`; see `policy::kinds` and apigee-bundles.md §9).
//!
//! Both loaders (`bundle.rs`, and `mod.rs` for stage.toml stages) read the policy files
//! themselves and hand the foreign ones here, so that a stage written by `cachegate import`
//! keeps the bundle's skipped policies and gets the very same refusals and warnings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use toml::Spanned;

use super::compile::FileCtx;
use super::file::FileStage;
use super::source::{retain_steps, SrcEndpoint, SrcFlows, SrcStep};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::policy::bundle::PolicyHeader;
use crate::policy::kinds::{self, Disposition};

/// A policy of a kind cachegate does not run.
pub(super) struct Foreign {
    /// Its file, kind, name and attributes.
    pub header: PolicyHeader,
    /// Its name in the stage (`<shared flow>/<policy>` for a shared flow's, see
    /// `config::shared`).
    pub name: String,
}

/// The error for a foreign policy without a `name`: no step can name it.
pub(super) fn nameless(header: &PolicyHeader) -> Diagnostic {
    Diagnostic::error(
        &header.path,
        Some(header.kind.pos),
        format!("<{}> has no name attribute", header.kind.value),
    )
    .with_hint("steps name policies by their name attribute")
}

/// `skip_policies` and `acknowledge_unprotected`, checked: kind name → where it is written.
pub(super) struct SkipLists {
    /// Kinds run as no-ops.
    pub skip: BTreeMap<String, Spanned<String>>,
    /// Security kinds whose skipping is acknowledged.
    pub acknowledged: BTreeMap<String, Spanned<String>>,
}

/// Reads and checks the two lists of `file` (a kind cachegate runs or can never skip is an
/// error; an acknowledgement without the skip too).
pub(super) fn skip_lists(cx: &mut FileCtx, file: &FileStage) -> SkipLists {
    let skip = kind_list(cx, &file.skip_policies, "skip_policies");
    let acknowledged = kind_list(cx, &file.acknowledge_unprotected, "acknowledge_unprotected");
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
    SkipLists { skip, acknowledged }
}

/// One list: kind names, checked against the kinds cachegate knows to run (listing one of
/// those is a mistake).
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

/// Where `at` is in `text`, when it has a span.
pub(super) fn pos_of<T>(text: &str, at: &Spanned<T>) -> Option<Pos> {
    let span = at.span();
    (span.end > 0).then(|| Pos::from_offset(text, span.start))
}

/// Decides, for every foreign policy, whether it is skipped or refused, and reports it with
/// every step that uses it, in any of `srcs` (a bundle's ProxyEndpoints share its policies and
/// TargetEndpoints). Returns the names of the skipped ones.
pub(super) fn dispose(
    srcs: &[SrcFlows],
    foreign: &BTreeMap<String, Foreign>,
    lists: &SkipLists,
    (stage_toml, stage_text): (&Path, &str),
    diags: &mut Diagnostics,
) -> BTreeSet<String> {
    let mut skipped = BTreeSet::new();
    for f in foreign.values() {
        let kind = f.header.kind.value.as_str();
        let mut steps: Vec<String> = Vec::new();
        let every = srcs.iter().flat_map(SrcFlows::every_step);
        for s in every.filter(|s| s.policy == f.name) {
            let at = match s.at.pos {
                Some(p) => format!("{}:{}:{}", s.at.file.display(), p.line, p.col),
                None => s.at.file.display().to_string(),
            };
            // A TargetEndpoint's step is in every ProxyEndpoint's source: named once.
            if !steps.contains(&at) {
                steps.push(at);
            }
        }
        let at = (f.header.path.as_path(), Some(f.header.kind.pos));
        // A disabled policy never runs in Apigee either; one no step cachegate runs names
        // (unattached) is not run either.
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
            // Parsed as a policy by the loaders; never reaches here.
            Disposition::Run => {}
            Disposition::Never => {
                diags.push(
                    Diagnostic::error(at.0, at.1, msg("cannot run on cachegate")).with_hint(
                        format!("{kind} can never be skipped: {}", kinds::never_reason(kind)),
                    ),
                );
            }
            Disposition::Security => {
                match (
                    lists.skip.contains_key(kind),
                    lists.acknowledged.contains_key(kind),
                ) {
                    (true, true) => {
                        skipped.insert(f.name.clone());
                        diags.push(Diagnostic::warning(at.0, at.1, msg("is SKIPPED: this API runs WITHOUT the protection it gives (acknowledge_unprotected)")));
                    }
                    (true, false) => {
                        let pos = lists.skip.get(kind).and_then(|k| pos_of(stage_text, k));
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
                if lists.skip.contains_key(kind) {
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
pub(super) fn remove_steps(src: &mut SrcFlows, skipped: &BTreeSet<String>) {
    let keep = |s: &SrcStep| !skipped.contains(&s.policy);
    let endpoint = |e: &mut SrcEndpoint| {
        for steps in e.step_lists_mut() {
            *steps = retain_steps(steps, &keep);
        }
    };
    endpoint(&mut src.proxy);
    for t in &mut src.targets {
        endpoint(&mut t.endpoint);
    }
}

/// Warns about `skip_policies` kinds no policy of the `container` ("bundle" or "stage") is.
pub(super) fn unused_skips(
    lists: &SkipLists,
    foreign: &BTreeMap<String, Foreign>,
    (stage_toml, stage_text): (&Path, &str),
    container: &str,
    diags: &mut Diagnostics,
) {
    for (kind, at) in &lists.skip {
        let used = foreign.values().any(|f| f.header.kind.value == *kind);
        if !used {
            diags.push(
                Diagnostic::warning(
                    stage_toml,
                    pos_of(stage_text, at),
                    format!("skip_policies lists `{kind}`, which no policy of the {container} is"),
                )
                .with_hint("remove it"),
            );
        }
    }
}
