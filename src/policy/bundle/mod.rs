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
//! [`MAX_FILES_PER_FOLDER`](folder::MAX_FILES_PER_FOLDER) entries. Every problem is a [`Diagnostic`] naming the file, and the
//! line and column when it is inside one.
//!
//! Files: `model.rs` holds the types (`connection.rs` those of a TargetEndpoint's connection);
//! `endpoint.rs` maps one endpoint file, with `target.rs` for the TargetEndpoint connection,
//! `balancer.rs` for its LoadBalancer and HealthMonitor, and `mapper.rs` for the checks they
//! share; `read.rs` reads one file into the tree (and [`policy_header`]); `folder.rs` lists
//! folders and `descriptor.rs` reads the root descriptor; `shared.rs` reads shared flow bundles;
//! this file walks an API proxy bundle's folders. They import one way: this file and
//! `shared.rs` → `endpoint.rs` → `target.rs` → `balancer.rs` → `mapper.rs`; `descriptor.rs` →
//! `folder.rs`, `read.rs`; all of them → `model.rs` → `connection.rs`.

mod balancer;
mod connection;
mod descriptor;
mod endpoint;
mod folder;
mod mapper;
mod model;
mod read;
mod shared;
mod ssl;
mod target;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Located, Pos};
use crate::policy::check::{self, shown, Sink};
use descriptor::{root_descriptor, Root};
use folder::{folder_name, is_xml, list, xml_in, EntryKind};

pub use model::{
    Bundle, Connection, EndpointFile, EndpointKind, FaultRule, FlowSteps, LoadBalancerSpec,
    LocalSpec, PolicyHeader, RouteTarget, SharedFlowBundle, Step,
};
pub use read::policy_header;
pub use shared::load_shared_flow_bundle;
pub use ssl::SslInfoSpec;

#[cfg(test)]
pub(crate) use folder::MAX_FILES_PER_FOLDER;

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
    let (descriptor, read) = root_descriptor(dir, &xml_files, Root::ApiProxy, diags)?;
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
