//! Apigee API proxy bundles (`apiproxy/` folders) → [`Bundle`], the parse model.
//!
//! [`load_bundle`] reads the layout and every endpoint file; it does not parse policies (it lists
//! `policies/*.xml`; the policy parser or [`policy_header`] reads them) and resolves nothing: which
//! policy a Step names, which TargetEndpoint a RouteRule names and what a Condition means are the
//! integrator's questions, asked with the whole bundle in hand.
//!
//! The folders are trusted, not the root descriptor's manifest lists (`<Policies>`,
//! `<ProxyEndpoints>`, …): Apigee's own docs call them informational and real bundles drift from
//! them (perfproxy's `perf.xml` lists a policy no Step uses and misses two that are used). From the
//! descriptor only `<APIProxy name revision>` is read.
//!
//! Everything is bounded: each file at most [`MAX_POLICY_FILE_BYTES`](check::MAX_POLICY_FILE_BYTES) and parsed by the same
//! tree builder as policy files (no DOCTYPE, limited depth and element count), each folder at most
//! [`MAX_FILES_PER_FOLDER`] entries. Every problem is a [`Diagnostic`] naming the file, and the
//! line and column when it is inside one.
//!
//! Files: `model.rs` holds the types (`connection.rs` those of a TargetEndpoint's connection);
//! `endpoint.rs` maps one endpoint file, with `target.rs` for the TargetEndpoint connection,
//! `balancer.rs` for its LoadBalancer and HealthMonitor, and `mapper.rs` for the checks they
//! share; `read.rs` reads one file into the tree (and [`policy_header`]); this file walks the
//! folders. They import one way: this file → `endpoint.rs` → `target.rs` → `balancer.rs` →
//! `mapper.rs`, and all of them → `model.rs` → `connection.rs`.

mod balancer;
mod connection;
mod endpoint;
mod mapper;
mod model;
mod read;
mod target;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Located, Pos};
use crate::policy::check::{self, shown, Sink};

pub use model::{
    Bundle, Connection, EndpointFile, EndpointKind, FlowSteps, LoadBalancerSpec, LocalSpec,
    PolicyHeader, RouteTarget, Step,
};
pub use read::policy_header;

/// Most entries read from one folder of a bundle (the root, `proxies/`, `targets/`,
/// `policies/`). Real bundles have a few dozen policies at most; a folder with more is refused
/// rather than read without end.
pub const MAX_FILES_PER_FOLDER: usize = 100;

/// Folders at the bundle root that are read.
const READ_FOLDERS: &[&str] = &["proxies", "targets", "policies"];

/// Folders at the bundle root that are known but not read here: resources are named by policies
/// (`jsc://…`), manifests are informational, integration endpoints are an Apigee X feature.
const OTHER_FOLDERS: &[&str] = &["resources", "manifests", "integration-endpoints"];

/// Reads the bundle at `dir` (an `apiproxy/` directory). Every problem becomes a Diagnostic
/// (file + line:col + hint); returns the bundle when the layout could be read at all.
///
/// The bundle is returned even when some of its files have errors: a file or element with an
/// error is left out of it, so the caller must refuse the bundle when any diagnostic is an error.
/// `None` when `dir` cannot be listed or holds a shared flow bundle. Diagnostics are sorted by file
/// and position.
pub fn load_bundle(dir: &Path) -> (Option<Bundle>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let bundle = load(dir, &mut diags);
    diags.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    (bundle, diags)
}

fn load(dir: &Path, diags: &mut Vec<Diagnostic>) -> Option<Bundle> {
    let mut xml_files = Vec::new();
    let mut folders = Vec::new();
    for e in list(dir, diags)? {
        match e.kind {
            EntryKind::File if is_xml(&e.path) => xml_files.push(e.path),
            EntryKind::File => diags.push(
                Diagnostic::warning(&e.path, None, "unexpected file at the bundle root; ignored")
                    .with_hint("the root holds one .xml descriptor (<APIProxy>) and the folders proxies/, targets/, policies/, resources/"),
            ),
            EntryKind::Dir => folders.push(e.name),
            EntryKind::Other => diags.push(Diagnostic::warning(
                &e.path,
                None,
                "neither a file nor a folder; ignored",
            )),
        }
    }
    // The descriptor first: a shared flow bundle ends the load before its folders are judged.
    let (descriptor, read) = root_descriptor(dir, &xml_files, diags)?;
    unknown_folders(dir, &folders, diags);
    let has = |name: &str| folders.iter().any(|f| f == name);
    let name = read
        .name
        .or_else(|| folder_name(dir).map(|n| Located::new(n, Pos::new(1, 1))));
    let mut bundle = Bundle {
        root: dir.to_path_buf(),
        descriptor,
        name,
        revision: read.revision,
        proxies: Vec::new(),
        targets: Vec::new(),
        policy_files: Vec::new(),
    };
    if has("proxies") {
        bundle.proxies = proxies(dir, diags);
    } else {
        let hint = if has("sharedflows") {
            "this looks like a shared flow bundle (sharedflows/); those are not loaded as an apiproxy/"
        } else {
            "add proxies/default.xml holding a <ProxyEndpoint name=\"default\">"
        };
        diags.push(
            Diagnostic::error(dir, None, "the bundle has no proxies/ folder").with_hint(hint),
        );
    }
    if has("targets") {
        if let Some(files) = xml_in(&dir.join("targets"), "one <TargetEndpoint>", diags) {
            bundle.targets = endpoints(files, EndpointKind::Target, diags);
        }
    }
    if has("policies") {
        bundle.policy_files =
            xml_in(&dir.join("policies"), "one policy", diags).unwrap_or_default();
    }
    Some(bundle)
}

/// The root descriptor among the root's `.xml` files: exactly one is expected (none is a warning,
/// several an error), and what it says. `None` for a shared flow bundle.
fn root_descriptor(
    dir: &Path,
    xml_files: &[PathBuf],
    diags: &mut Vec<Diagnostic>,
) -> Option<(Option<PathBuf>, Descriptor)> {
    match xml_files {
        [] => {
            let shown_name = folder_name(dir).unwrap_or_else(|| "the folder name".into());
            diags.push(
                Diagnostic::warning(
                    dir,
                    None,
                    format!("no root .xml descriptor (<APIProxy>) in the bundle; the proxy is named after its folder: {shown_name}"),
                )
                .with_hint(format!("add {shown_name}.xml holding <APIProxy name=\"{shown_name}\"/>")),
            );
            Some((None, Descriptor::default()))
        }
        [one] => Some((Some(one.clone()), descriptor(one, diags)?)),
        several => {
            let names: Vec<String> = several
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            diags.push(
                Diagnostic::error(
                    dir,
                    None,
                    format!(
                        "{} .xml files at the bundle root ({}): a bundle has exactly one, its <APIProxy> descriptor",
                        several.len(),
                        names.join(", ")
                    ),
                )
                .with_hint("keep the descriptor; endpoints belong in proxies/ or targets/, policies in policies/"),
            );
            Some((None, Descriptor::default()))
        }
    }
}

/// Warns about root folders a bundle does not have (a misspelt `policies/` would otherwise
/// silently leave every Step naming a missing policy).
fn unknown_folders(dir: &Path, folders: &[String], diags: &mut Vec<Diagnostic>) {
    let mut known = READ_FOLDERS.to_vec();
    known.extend(OTHER_FOLDERS);
    for name in folders {
        if known.contains(&name.as_str()) {
            continue;
        }
        let listed = known.iter().map(|k| format!("{k}/")).collect::<Vec<_>>();
        let hint = match check::did_you_mean(name, &known) {
            Some(s) => format!("did you mean {s}/? a bundle holds {}", listed.join(", ")),
            None => format!("a bundle holds {}", listed.join(", ")),
        };
        diags.push(
            Diagnostic::warning(
                dir.join(name),
                None,
                format!("unknown folder {}/ in the bundle; ignored", shown(name)),
            )
            .with_hint(hint),
        );
    }
}

/// The ProxyEndpoints in `dir/proxies/`, of which there must be at least one file.
fn proxies(dir: &Path, diags: &mut Vec<Diagnostic>) -> Vec<EndpointFile> {
    let folder = dir.join("proxies");
    let Some(files) = xml_in(&folder, "one <ProxyEndpoint>", diags) else {
        return Vec::new();
    };
    if files.is_empty() {
        diags.push(
            Diagnostic::error(
                &folder,
                None,
                "no ProxyEndpoint: proxies/ holds no .xml file",
            )
            .with_hint("add proxies/default.xml holding a <ProxyEndpoint name=\"default\">"),
        );
    }
    endpoints(files, EndpointKind::Proxy, diags)
}

/// The name a bundle without a usable descriptor gets: the folder holding `apiproxy/` (which is
/// how Apigee's samples are laid out), or the folder itself when it is named otherwise.
fn folder_name(dir: &Path) -> Option<String> {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let own = abs.file_name()?;
    let name = if own == "apiproxy" {
        abs.parent().and_then(Path::file_name)?
    } else {
        own
    };
    Some(name.to_string_lossy().into_owned())
}

/// What the root descriptor contributes to the bundle.
#[derive(Default)]
struct Descriptor {
    name: Option<Located<String>>,
    revision: Option<Located<String>>,
}

/// Reads the root descriptor: `<APIProxy name revision>`. `None` for a shared flow bundle, which
/// is an error here (no bundle is returned for it).
fn descriptor(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<Descriptor> {
    let mut sink = Sink::new(path);
    let mut out = Some(Descriptor::default());
    if let Some(root) = read::read_tree(&mut sink) {
        let located = |attr: &str| {
            root.attr_value(attr)
                .map(|v| Located::new(v.to_string(), root.pos))
        };
        match root.name.as_str() {
            "APIProxy" => {
                let name = located("name");
                if name.is_none() {
                    sink.warning(
                        root.pos,
                        "missing name attribute on <APIProxy>; the proxy is named after its folder",
                        Some("write <APIProxy name=\"my-proxy\">".into()),
                    );
                }
                out = Some(Descriptor {
                    name,
                    revision: located("revision"),
                });
            }
            "SharedFlowBundle" => {
                sink.error(
                    root.pos,
                    "this is a shared flow bundle (<SharedFlowBundle>), not an API proxy bundle",
                    Some("shared flow bundles (sharedflowbundle/ with sharedflows/) are loaded from a different place than apiproxy/ bundles".into()),
                );
                out = None;
            }
            other => sink.error(
                root.pos,
                format!(
                    "expected <APIProxy> as the root element of the bundle descriptor, found <{}>",
                    shown(other)
                ),
                Some("the one .xml file at the bundle root is <APIProxy name=\"…\">; endpoints belong in proxies/ and targets/".into()),
            ),
        }
    }
    diags.extend(sink.finish());
    out
}

/// Reads the endpoint `files` (all of `kind`), keeping the order; a file with an error in its
/// root element is left out.
fn endpoints(
    files: Vec<PathBuf>,
    kind: EndpointKind,
    diags: &mut Vec<Diagnostic>,
) -> Vec<EndpointFile> {
    let mut out = Vec::new();
    for path in files {
        let mut sink = Sink::new(&path);
        let endpoint =
            read::read_tree(&mut sink).and_then(|root| endpoint::endpoint(&root, kind, &mut sink));
        diags.extend(sink.finish());
        if let Some(endpoint) = endpoint {
            out.push(EndpointFile { path, endpoint });
        }
    }
    out
}

/// The `.xml` files in `folder`, sorted; anything else there is a warning. `what` says what each
/// file holds, for the hint. `None` when the folder cannot be listed (an error is recorded).
fn xml_in(folder: &Path, what: &str, diags: &mut Vec<Diagnostic>) -> Option<Vec<PathBuf>> {
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

fn is_xml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
}

/// One entry of a bundle folder.
struct Entry {
    path: PathBuf,
    name: String,
    kind: EntryKind,
}

enum EntryKind {
    File,
    Dir,
    /// A FIFO, socket, device or broken symlink: never opened.
    Other,
}

/// The entries of `dir` sorted by name, without hidden ones (`.DS_Store`, `.git`, editor files),
/// which tools leave in folders and Apigee does not read. `None` (with an error) when it cannot
/// be listed or has more than [`MAX_FILES_PER_FOLDER`] entries.
fn list(dir: &Path, diags: &mut Vec<Diagnostic>) -> Option<Vec<Entry>> {
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
