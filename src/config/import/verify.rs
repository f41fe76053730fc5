//! The import's own check: the files about to be written are loaded from a scratch folder by the
//! stage.toml loader and compiled, and the compiled stage must be the one the bundle compiles to.
//!
//! Both are compared whole, through their `Debug` form (as `Stage::cache_fingerprint` does for
//! reloads): endpoints, flows, steps and conditions, routes, targets, settings, every compiled
//! policy with its key specification (Scope prefix parts: organisation, API, revision, endpoint
//! names, attachment side). Any difference is a bug of the import, and nothing is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::ImportError;
use crate::config::policies::Conditions;
use crate::config::shared::SharedFlows;
use crate::diag::Diagnostics;
use crate::runtime::stage::Stage;
use crate::runtime::target::Destination;

/// Loads `files` as stage `stage` and compares it with `expected`. Returns the stage's
/// warnings, their file names pointing into `out`.
pub(super) fn same_stage(
    stage: &str,
    files: &BTreeMap<String, Vec<u8>>,
    expected: &Stage,
    out: &Path,
) -> Result<Diagnostics, ImportError> {
    let scratch = Scratch::new()?;
    let dir = scratch.0.join(stage);
    std::fs::create_dir_all(&dir).map_err(|source| ImportError::Io {
        path: dir.clone(),
        source,
    })?;
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| ImportError::Io { path, source })?;
    }
    let mut diags = Diagnostics::new();
    let actual = super::super::load_stage(
        &dir,
        &dir.join("stage.toml"),
        None,
        &SharedFlows::default(),
        &mut Conditions::default(),
        &mut diags,
    );
    for d in &mut diags.0 {
        if let Ok(rel) = d.file.strip_prefix(&dir) {
            d.file = out.join(rel);
        }
    }
    diags.sort();
    let actual = match actual {
        Some(a) if !diags.has_errors() => a,
        _ => return Err(ImportError::WrittenStageInvalid(diags)),
    };
    compare(expected, actual).map_err(ImportError::Differs)?;
    Ok(diags)
}

/// `Ok` when the two stages are the same. Target addresses are resolved once per load: a name
/// with several addresses may resolve to another of them the second time, which is no difference
/// of meaning, so the URLs are compared and the addresses taken from `expected`.
fn compare(expected: &Stage, mut actual: Stage) -> Result<(), String> {
    for (a, e) in actual.targets.iter_mut().zip(&expected.targets) {
        if let (Destination::Host(ah), Destination::Host(eh)) = (&mut a.target.to, &e.target.to) {
            if a.target.url == e.target.url {
                ah.addr = eh.addr;
            }
        }
    }
    let (e, a) = (format!("{expected:#?}"), format!("{actual:#?}"));
    if e == a {
        return Ok(());
    }
    let (el, al): (Vec<&str>, Vec<&str>) = (e.lines().collect(), a.lines().collect());
    let at = el
        .iter()
        .zip(&al)
        .position(|(x, y)| x != y)
        .unwrap_or(el.len().min(al.len()));
    let line = |l: &[&str]| l.get(at).map_or("(end)", |s| s.trim()).to_owned();
    Err(format!(
        "line {} of the compiled stage: the bundle's is `{}`, the import's `{}`",
        at + 1,
        line(&el),
        line(&al)
    ))
}

/// A scratch folder under the system's temporary folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    /// Created new (never an existing folder, which another user of a shared temporary folder
    /// could have planted).
    fn new() -> Result<Self, ImportError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let path = base.join(format!(
                "cachegate-import-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(ImportError::Io { path, source }),
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
