//! Shared flow bundles (`sharedflowbundle/` folders) → [`SharedFlowBundle`], the parse model.
//!
//! A shared flow bundle is a descriptor (`<SharedFlowBundle name revision>`), a `sharedflows/`
//! folder holding the `<SharedFlow>` (an ordered list of Steps) and a `policies/` folder
//! (apigee-bundles.md §1.2). FlowCallout has no element to choose among several flows of one
//! bundle and every known bundle has exactly one, so a bundle with more is refused (§11).
//!
//! As for API proxy bundles, nothing is resolved here: which policy a Step names is the
//! integrator's question (`config::shared`), asked with the whole environment in hand.

use std::path::Path;

use super::descriptor::{root_descriptor, Root};
use super::folder::{file_names, folder_name, is_xml, list, xml_in, EntryKind};
use super::mapper::EndpointMapper;
use super::model::{SharedFlowBundle, SharedFlowFile};
use super::read;
use crate::diag::{Diagnostic, Located, Pos};
use crate::policy::check::{shown, Sink};

/// Folders a shared flow bundle may hold; only `sharedflows/` and `policies/` are read.
const KNOWN_FOLDERS: &[&str] = &["sharedflows", "policies", "resources", "manifests"];

/// Reads the shared flow bundle at `dir` (a `sharedflowbundle/` directory). Every problem becomes
/// a Diagnostic; the bundle is returned when its layout could be read at all (the caller refuses
/// it when any diagnostic is an error). Diagnostics are sorted by file and position.
pub fn load_shared_flow_bundle(dir: &Path) -> (Option<SharedFlowBundle>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let bundle = load(dir, &mut diags);
    diags.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    (bundle, diags)
}

fn load(dir: &Path, diags: &mut Vec<Diagnostic>) -> Option<SharedFlowBundle> {
    let mut xml_files = Vec::new();
    let mut folders = Vec::new();
    for e in list(dir, diags)? {
        match e.kind {
            EntryKind::File if is_xml(&e.path) => xml_files.push(e.path),
            EntryKind::Dir if KNOWN_FOLDERS.contains(&e.name.as_str()) => folders.push(e.name),
            EntryKind::Dir => diags.push(
                Diagnostic::warning(
                    &e.path,
                    None,
                    format!(
                        "unknown folder {}/ in the shared flow bundle; ignored",
                        shown(&e.name)
                    ),
                )
                .with_hint("a shared flow bundle holds sharedflows/, policies/ and resources/"),
            ),
            EntryKind::File | EntryKind::Other => diags.push(Diagnostic::warning(
                &e.path,
                None,
                "unexpected entry at the shared flow bundle's root; ignored",
            )),
        }
    }
    let (descriptor, read) = root_descriptor(dir, &xml_files, Root::SharedFlowBundle, diags)?;
    let has = |name: &str| folders.iter().any(|f| f == name);
    let name = read
        .name
        .or_else(|| folder_name(dir).map(|n| Located::new(n, Pos::new(1, 1))));
    let flow = if has("sharedflows") {
        shared_flow(dir, diags)
    } else {
        diags.push(
            Diagnostic::error(dir, None, "the shared flow bundle has no sharedflows/ folder")
                .with_hint("add sharedflows/default.xml holding <SharedFlow name=\"default\"> with its <Step>s"),
        );
        None
    };
    let policy_files = if has("policies") {
        xml_in(&dir.join("policies"), "one policy", diags).unwrap_or_default()
    } else {
        Vec::new()
    };
    Some(SharedFlowBundle {
        descriptor,
        name,
        flow,
        policy_files,
    })
}

/// The one `<SharedFlow>` in `dir/sharedflows/`.
fn shared_flow(dir: &Path, diags: &mut Vec<Diagnostic>) -> Option<SharedFlowFile> {
    let folder = dir.join("sharedflows");
    let files = xml_in(&folder, "one <SharedFlow>", diags)?;
    let path = match files.as_slice() {
        [one] => one.clone(),
        [] => {
            diags.push(
                Diagnostic::error(
                    &folder,
                    None,
                    "no shared flow: sharedflows/ holds no .xml file",
                )
                .with_hint("add sharedflows/default.xml holding <SharedFlow name=\"default\">"),
            );
            return None;
        }
        several => {
            let names = file_names(several);
            diags.push(
                Diagnostic::error(
                    &folder,
                    None,
                    format!(
                        "{} shared flows in one bundle ({}): a FlowCallout cannot choose among them",
                        several.len(),
                        names.join(", ")
                    ),
                )
                .with_hint("keep one <SharedFlow> (default.xml) per shared flow bundle; make a bundle of each other flow"),
            );
            return None;
        }
    };
    let mut sink = Sink::new(&path);
    let flow = read::read_tree(&mut sink).and_then(|root| {
        if root.name != "SharedFlow" {
            sink.error(
                root.pos,
                format!(
                    "expected <SharedFlow> as the root element, found <{}>",
                    shown(&root.name)
                ),
                Some("sharedflows/ holds one <SharedFlow name=\"default\"> of <Step>s".into()),
            );
            return None;
        }
        let mut m = EndpointMapper {
            sink: &mut sink,
            unsupported: Vec::new(),
        };
        // Required as in Apigee; nothing names a flow by it (FlowCallout names the bundle).
        let name = m.required_name(&root);
        m.expect(&root, &["Step"]);
        let steps = root
            .children_named("Step")
            .filter_map(|s| m.step(s))
            .collect();
        for u in std::mem::take(&mut m.unsupported) {
            sink.error(
                u.pos,
                format!("{} is not supported by cachegate", u.value),
                Some("remove it".into()),
            );
        }
        name?;
        Some(SharedFlowFile {
            path: path.clone(),
            steps,
        })
    });
    diags.extend(sink.finish());
    flow
}
