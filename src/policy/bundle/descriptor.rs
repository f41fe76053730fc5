//! A bundle's root descriptor: the one `.xml` file at its root, `<APIProxy name revision>` for
//! an API proxy bundle or `<SharedFlowBundle name revision>` for a shared flow bundle. Only the
//! name and revision are read (the manifest lists in it are informational, see `mod.rs`).

use std::path::{Path, PathBuf};

use super::folder::{file_names, folder_name};
use super::read;
use crate::diag::{Diagnostic, Located};
use crate::policy::check::{shown, Sink};

/// Which kind of bundle a descriptor is expected to describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Root {
    /// `apiproxy/`, `<APIProxy>`.
    ApiProxy,
    /// `sharedflowbundle/`, `<SharedFlowBundle>`.
    SharedFlowBundle,
}

impl Root {
    fn element(self) -> &'static str {
        match self {
            Root::ApiProxy => "APIProxy",
            Root::SharedFlowBundle => "SharedFlowBundle",
        }
    }

    fn other(self) -> Root {
        match self {
            Root::ApiProxy => Root::SharedFlowBundle,
            Root::SharedFlowBundle => Root::ApiProxy,
        }
    }

    /// What the bundle is called in messages.
    fn what(self) -> &'static str {
        match self {
            Root::ApiProxy => "an API proxy bundle (apiproxy/ with proxies/)",
            Root::SharedFlowBundle => "a shared flow bundle (sharedflowbundle/ with sharedflows/)",
        }
    }

    /// Where the rest of the bundle's files belong, for hints.
    fn layout(self) -> &'static str {
        match self {
            Root::ApiProxy => "endpoints belong in proxies/ or targets/, policies in policies/",
            Root::SharedFlowBundle => "flows belong in sharedflows/, policies in policies/",
        }
    }
}

/// What the root descriptor contributes to the bundle.
#[derive(Default)]
pub(super) struct Descriptor {
    pub(super) name: Option<Located<String>>,
    pub(super) revision: Option<Located<String>>,
}

/// The root descriptor among the root's `.xml` files: exactly one is expected (none is a warning,
/// several an error), and what it says. `None` when the descriptor is the other kind of bundle's.
pub(super) fn root_descriptor(
    dir: &Path,
    xml_files: &[PathBuf],
    root: Root,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Option<PathBuf>, Descriptor)> {
    let element = root.element();
    match xml_files {
        [] => {
            let shown_name = folder_name(dir).unwrap_or_else(|| "the folder name".into());
            diags.push(
                Diagnostic::warning(
                    dir,
                    None,
                    format!("no root .xml descriptor (<{element}>) in the bundle; it is named after its folder: {shown_name}"),
                )
                .with_hint(format!("add {shown_name}.xml holding <{element} name=\"{shown_name}\"/>")),
            );
            Some((None, Descriptor::default()))
        }
        [one] => Some((Some(one.clone()), descriptor(one, root, diags)?)),
        several => {
            let names = file_names(several);
            diags.push(
                Diagnostic::error(
                    dir,
                    None,
                    format!(
                        "{} .xml files at the bundle root ({}): a bundle has exactly one, its <{element}> descriptor",
                        several.len(),
                        names.join(", ")
                    ),
                )
                .with_hint(format!("keep the descriptor; {}", root.layout())),
            );
            Some((None, Descriptor::default()))
        }
    }
}

/// Reads the root descriptor: `<APIProxy name revision>` or `<SharedFlowBundle name revision>`.
/// `None` when it is the other kind's, which is an error here (no bundle is returned for it).
fn descriptor(path: &Path, root_kind: Root, diags: &mut Vec<Diagnostic>) -> Option<Descriptor> {
    let mut sink = Sink::new(path);
    let mut out = Some(Descriptor::default());
    let element = root_kind.element();
    if let Some(root) = read::read_tree(&mut sink) {
        let located = |attr: &str| {
            root.attr_value(attr)
                .map(|v| Located::new(v.to_string(), root.pos))
        };
        if root.name == element {
            let name = located("name");
            if name.is_none() {
                sink.warning(
                    root.pos,
                    format!("missing name attribute on <{element}>; the bundle is named after its folder"),
                    Some(format!("write <{element} name=\"my-name\">")),
                );
            }
            out = Some(Descriptor {
                name,
                revision: located("revision"),
            });
        } else if root.name == root_kind.other().element() {
            sink.error(
                root.pos,
                format!(
                    "this is {}, not {}",
                    root_kind.other().what(),
                    root_kind.what()
                ),
                Some(match root_kind {
                    Root::ApiProxy => "shared flow bundles go in policies/sharedflows/<name>/sharedflowbundle/, where every stage's FlowCallouts find them".into(),
                    Root::SharedFlowBundle => "API proxy bundles go in a stage folder: policies/<stage>/apiproxy/".into(),
                }),
            );
            out = None;
        } else {
            sink.error(
                root.pos,
                format!(
                    "expected <{element}> as the root element of the bundle descriptor, found <{}>",
                    shown(&root.name)
                ),
                Some(format!(
                    "the one .xml file at the bundle root is <{element} name=\"…\">; {}",
                    root_kind.layout()
                )),
            );
        }
    }
    diags.extend(sink.finish());
    out
}
