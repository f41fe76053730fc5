//! The output folder: checked before anything is read (so a mistake costs nothing), then
//! written once the import is verified.
//!
//! A folder that holds anything is replaced only with `--force`, and then the policy files the
//! loader would read from it (`*.xml`, `*.toml` at its top) that the import does not write are
//! removed: left there, they would become policies of the imported stage. Nothing else in the
//! folder is touched. Policies are written first and `stage.toml` last, so a gateway watching
//! the folder never loads a stage.toml whose policies are not there yet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ImportError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `out` may receive the import.
pub(super) fn check(out: &Path, force: bool) -> Result<(), ImportError> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(ImportError::OutNotAFolder(out.to_path_buf()));
    }
    if out.join("apiproxy").exists() {
        return Err(ImportError::OutHoldsBundle(out.to_path_buf()));
    }
    let mut entries = std::fs::read_dir(out).map_err(io(out))?;
    if entries.next().is_some() && !force {
        return Err(ImportError::OutNotEmpty(out.to_path_buf()));
    }
    Ok(())
}

/// Writes `files` into `out` (checked again: it may have changed meanwhile). Returns the files
/// written, `stage.toml` last, and the stale policy files removed.
pub(super) fn write(
    out: &Path,
    force: bool,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), ImportError> {
    check(out, force)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut removed = Vec::new();
    let mut stale: Vec<PathBuf> = std::fs::read_dir(out)
        .map_err(io(out))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_policy_file(p))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !files.contains_key(&*n.to_string_lossy()))
        })
        .collect();
    stale.sort();
    for p in stale {
        std::fs::remove_file(&p).map_err(io(&p))?;
        removed.push(p);
    }
    let mut written = Vec::new();
    let last = "stage.toml";
    let order = files
        .iter()
        .filter(|(n, _)| *n != last)
        .chain(files.get_key_value(last));
    for (name, bytes) in order {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
        written.push(path);
    }
    Ok((written, removed))
}

/// A file the stage loader reads as a policy (or as stage.toml).
fn is_policy_file(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    !super::super::is_ignored(&name) && (ext == "xml" || ext == "toml")
}
