//! `cachegate import BUNDLE --stage NAME --out DIR`: an Apigee API proxy bundle written as the
//! equivalent native stage, `DIR/stage.toml` and one policy file per policy.
//!
//! The bundle is read by the very loader that runs it (`bundle.rs`), so the import starts from
//! what cachegate would serve, and refuses a bundle that does not load. Then:
//!
//! 1. what a stage.toml cannot say (several TargetEndpoints, RouteRules that choose, fault rules,
//!    a PostClientFlow; `refuse.rs`) is refused, named at its file and line;
//! 2. the policies cachegate runs are written as TOML (`policy::toml::write`); one whose TOML
//!    form would not be exact, and every policy of a kind cachegate does not run (skipped as in
//!    the bundle, by the `skip_policies` of the stage.toml beside it), is kept as the bundle's
//!    XML, unchanged;
//! 3. `stage.toml` gets the bundle's settings, the stage.toml beside the bundle unchanged, and
//!    the endpoints' flows (`render.rs`);
//! 4. the result is loaded from a scratch folder and compiled, and must compile to the very
//!    stage the bundle compiles to (`verify.rs`) — same flows, steps, routes, targets, policies
//!    and keys — before anything is written to DIR (`output.rs`).

mod output;
mod refuse;
mod render;
mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::build::build_stage;
use super::bundle::{read_bundle_stage, BundleStage};
use super::policies::Conditions;
use crate::diag::{Diagnostic, Diagnostics};
use crate::policy::toml::write;

/// What went wrong; nothing was written to the output folder.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// BUNDLE is neither a stage folder holding `apiproxy/` nor an `apiproxy/` folder.
    #[error("{0} is not an Apigee API proxy bundle: give the apiproxy/ folder, or the folder holding it")]
    NotABundle(PathBuf),
    /// `--stage` is not a stage name.
    #[error(
        "stage name `{0}` must be letters, digits, `-` or `_` (it is the stage folder's name)"
    )]
    StageName(String),
    /// The bundle does not load (the diagnostics say why).
    #[error("the bundle does not load ({} error(s)); fix it first: the import starts from what cachegate runs", .0.error_count())]
    DoesNotLoad(Diagnostics),
    /// The bundle means more than a stage.toml can say.
    #[error("the bundle cannot be written as a stage.toml without losing what is named above ({} part(s)); cachegate runs the bundle as it is", .0.error_count())]
    Inexpressible(Diagnostics),
    /// The output folder holds files and `--force` was not given.
    #[error("{0} is not empty; give --force to replace the stage in it")]
    OutNotEmpty(PathBuf),
    /// The output folder holds a bundle, which the loader would load instead of stage.toml.
    #[error("{0} holds an apiproxy/ bundle, which the loader would run instead of the imported stage.toml; write the stage elsewhere, or move the bundle out first")]
    OutHoldsBundle(PathBuf),
    /// The output path is a file.
    #[error("{0} is not a folder")]
    OutNotAFolder(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The written stage does not load (a cachegate bug; the diagnostics say why).
    #[error(
        "the imported stage does not load (a cachegate bug, please report it); nothing was written"
    )]
    WrittenStageInvalid(Diagnostics),
    /// The written stage loads but differs from the bundle (a cachegate bug).
    #[error("the imported stage would not be the bundle's (a cachegate bug, please report it); nothing was written: {0}")]
    Differs(String),
}

impl ImportError {
    /// The diagnostics that explain the error, to print before it.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            Self::DoesNotLoad(d) | Self::Inexpressible(d) | Self::WrittenStageInvalid(d) => Some(d),
            _ => None,
        }
    }
}

/// What was written.
#[derive(Debug)]
pub struct Imported {
    /// The files written into the output folder, `stage.toml` last.
    pub written: Vec<PathBuf>,
    /// Stale policy files of an earlier stage removed from the output folder (`--force`).
    pub removed: Vec<PathBuf>,
    /// Policies kept as the bundle's XML, and why.
    pub kept_as_xml: Vec<(String, String)>,
    /// Warnings of the imported stage (those of the bundle, as `cachegate validate` shows them).
    pub warnings: Diagnostics,
    /// Things to tell the user (e.g. a folder name other than the stage name).
    pub notes: Vec<String>,
}

/// Imports the bundle at `bundle` as stage `stage` into the folder `out` (created if needed;
/// replaced only with `force`).
pub fn import_bundle(
    bundle: &Path,
    stage: &str,
    out: &Path,
    force: bool,
) -> Result<Imported, ImportError> {
    if !super::compile::is_name(stage) || stage.contains('.') {
        return Err(ImportError::StageName(stage.to_owned()));
    }
    let stage_dir = locate(bundle)?;
    output::check(out, force)?;

    let mut diags = Diagnostics::new();
    // As written: FlowCallouts stay steps naming their policy (the imported stage calls the
    // same shared flows).
    let parts = read_bundle_stage(&stage_dir, stage.to_owned(), None, None, &mut diags);
    let expected = parts.as_ref().and_then(|b| {
        build_stage(
            b.settings.clone(),
            &b.src,
            &b.policies,
            &b.failed,
            None,
            &mut Conditions::default(),
            &mut diags,
        )
    });
    diags.sort();
    let (Some(b), Some(expected), false) = (parts, expected, diags.has_errors()) else {
        return Err(ImportError::DoesNotLoad(diags));
    };

    let mut refusals = Diagnostics::new();
    refusals.extend(refuse::inexpressible(&b));
    let files = policy_files(&b, &stage_dir, &mut refusals)?;
    if refusals.has_errors() {
        refusals.sort();
        return Err(ImportError::Inexpressible(refusals));
    }
    let (mut files, notes) = files;
    let text = render::stage_toml(&b, stage, &notes);
    files.insert("stage.toml".to_owned(), text.into_bytes());

    let warnings = verify::same_stage(stage, &files, &expected, out)?;
    let (written, removed) = output::write(out, force, &files)?;
    let mut told = Vec::new();
    if out.file_name().is_some_and(|n| n != stage) {
        told.push(format!(
            "{} will load as a stage named after its folder, not `{stage}`: Scope prefixes name the stage (without gateway.toml `environment`), so rename the folder to `{stage}` to keep the bundle's keys",
            out.display()
        ));
    }
    Ok(Imported {
        written,
        removed,
        kept_as_xml: notes.xml,
        warnings,
        notes: told,
    })
}

/// The stage folder of `bundle`: `bundle` itself when it holds `apiproxy/`, its parent when it
/// is the `apiproxy/` folder (the stage.toml beside the bundle is read from there).
fn locate(bundle: &Path) -> Result<PathBuf, ImportError> {
    if bundle.join("apiproxy").is_dir() {
        return Ok(bundle.to_path_buf());
    }
    if bundle.file_name().is_some_and(|n| n == "apiproxy") && bundle.is_dir() {
        let parent = bundle.parent().filter(|p| !p.as_os_str().is_empty());
        return Ok(parent.map_or_else(|| PathBuf::from("."), Path::to_path_buf));
    }
    Err(ImportError::NotABundle(bundle.to_path_buf()))
}

type Files = (BTreeMap<String, Vec<u8>>, render::PolicyNotes);

/// The policy files: TOML for the policies cachegate runs (the bundle's XML when TOML cannot
/// say exactly the same), the bundle's XML for the others. A policy whose name cannot be a file
/// name of a stage folder is refused into `refusals`.
fn policy_files(
    b: &BundleStage,
    stage_dir: &Path,
    refusals: &mut Diagnostics,
) -> Result<Files, ImportError> {
    let mut files = BTreeMap::new();
    let mut notes = render::PolicyNotes {
        toml: Vec::new(),
        xml: Vec::new(),
    };
    let shown = |p: &Path| p.strip_prefix(stage_dir).unwrap_or(p).display().to_string();
    let mut bad_name = |path: &Path, pos, name: &str, why: String| {
        refusals.push(
            Diagnostic::error(
                path,
                Some(pos),
                format!("policy `{name}` cannot be written as a file of a stage folder: {why}"),
            )
            .with_hint(format!(
                "rename the policy (its name attribute and the steps naming it), or {}",
                refuse::KEEP_THE_BUNDLE
            )),
        );
    };
    let keep_xml = |name: &str, path: &Path, why: String, notes: &mut render::PolicyNotes| {
        let file = refuse::policy_file_name(name, "xml")?;
        let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
            path: path.to_path_buf(),
            source,
        });
        notes.xml.push((file.clone(), why));
        Ok::<_, String>((file, bytes))
    };
    for p in b.policies.values() {
        let name = p.name();
        match write::policy(p) {
            Ok(body) => match refuse::policy_file_name(name, "toml") {
                Ok(file) => {
                    let text = format!(
                        "# {} `{name}`, written by `cachegate import` from {}\n{body}",
                        p.policy.kind().as_str(),
                        shown(&p.path)
                    );
                    notes.toml.push(file.clone());
                    files.insert(file, text.into_bytes());
                }
                Err(why) => bad_name(&p.path, p.common.name.pos, name, why),
            },
            Err(untranslatable) => {
                let why = format!("no exact TOML form: {untranslatable}");
                match keep_xml(name, &p.path, why, &mut notes) {
                    Ok((file, bytes)) => {
                        files.insert(file, bytes?);
                    }
                    Err(why) => bad_name(&p.path, p.common.name.pos, name, why),
                }
            }
        }
    }
    for f in b.foreign.values() {
        let h = &f.header;
        let pos = h.name.as_ref().map_or(h.kind.pos, |n| n.pos);
        let why = format!(
            "<{}>, a kind cachegate does not run (not run, as in the bundle)",
            h.kind.value
        );
        match keep_xml(&f.name, &h.path, why, &mut notes) {
            Ok((file, bytes)) => {
                files.insert(file, bytes?);
            }
            Err(why) => bad_name(&h.path, pos, &f.name, why),
        }
    }
    Ok((files, notes))
}

#[cfg(test)]
mod tests;
