//! Reading a bundle's folders: their entries sorted and bounded, the `.xml` files of one
//! folder, and the name a bundle gets from its folder. Shared by API proxy bundles (`mod.rs`)
//! and shared flow bundles (`shared.rs`).

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;

/// Most entries read from one folder of a bundle (the root, `proxies/`, `targets/`,
/// `policies/`). Real bundles have a few dozen policies at most; a folder with more is refused
/// rather than read without end.
pub const MAX_FILES_PER_FOLDER: usize = 100;

/// The name a bundle without a usable descriptor gets: the folder holding `apiproxy/` or
/// `sharedflowbundle/` (which is how Apigee's samples are laid out), or the folder itself when it is named otherwise.
pub(super) fn folder_name(dir: &Path) -> Option<String> {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let own = abs.file_name()?;
    let name = if own == "apiproxy" || own == "sharedflowbundle" {
        abs.parent().and_then(Path::file_name)?
    } else {
        own
    };
    Some(name.to_string_lossy().into_owned())
}

/// The `.xml` files in `folder`, sorted; anything else there is a warning. `what` says what each
/// file holds, for the hint. `None` when the folder cannot be listed (an error is recorded).
pub(super) fn xml_in(
    folder: &Path,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<PathBuf>> {
    let entries = list(folder, diags)?;
    let mut out = Vec::new();
    for e in entries {
        match e.kind {
            EntryKind::File if is_xml(&e.path) => out.push(e.path),
            EntryKind::Dir => diags.push(Diagnostic::warning(
                &e.path,
                None,
                "folder ignored: bundle files are not read from subfolders here",
            )),
            EntryKind::File => diags.push(
                Diagnostic::warning(&e.path, None, "not an .xml file; ignored")
                    .with_hint(format!("this folder holds {what} per .xml file")),
            ),
            EntryKind::Other => diags.push(Diagnostic::warning(
                &e.path,
                None,
                "neither a file nor a folder; ignored",
            )),
        }
    }
    Some(out)
}

/// The file names of `paths`, for messages listing them.
pub(super) fn file_names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

pub(super) fn is_xml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
}

/// One entry of a bundle folder.
pub(super) struct Entry {
    pub(super) path: PathBuf,
    pub(super) name: String,
    pub(super) kind: EntryKind,
}

pub(super) enum EntryKind {
    File,
    Dir,
    /// A FIFO, socket, device or broken symlink: never opened.
    Other,
}

/// The entries of `dir` sorted by name, without hidden ones (`.DS_Store`, `.git`, editor files),
/// which tools leave in folders and Apigee does not read. `None` (with an error) when it cannot
/// be listed or has more than [`MAX_FILES_PER_FOLDER`] entries.
pub(super) fn list(dir: &Path, diags: &mut Vec<Diagnostic>) -> Option<Vec<Entry>> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            diags.push(Diagnostic::error(
                dir,
                None,
                format!("cannot read the folder: {e}"),
            ));
            return None;
        }
    };
    let mut out = Vec::new();
    // Counted before hidden entries are dropped, so that no folder is read without end.
    for (seen, entry) in read.enumerate() {
        if seen >= MAX_FILES_PER_FOLDER {
            diags.push(
                Diagnostic::error(
                    dir,
                    None,
                    format!("more than {MAX_FILES_PER_FOLDER} entries in the folder"),
                )
                .with_hint(format!("a bundle folder holds at most {MAX_FILES_PER_FOLDER} files; check for a generated or misplaced folder")),
            );
            return None;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                diags.push(Diagnostic::error(
                    dir,
                    None,
                    format!("cannot read the folder: {e}"),
                ));
                return None;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, as the rest of cachegate's loading does.
        let kind = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => EntryKind::File,
            Ok(m) if m.is_dir() => EntryKind::Dir,
            _ => EntryKind::Other,
        };
        out.push(Entry { path, name, kind });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Some(out)
}
