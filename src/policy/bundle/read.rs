//! Reading one bundle file into the element tree of `policy::xml::tree`, and [`policy_header`].
//!
//! Every XML file of a bundle goes through [`read_tree`]: it is read only when it is a regular file
//! of at most [`MAX_POLICY_FILE_BYTES`] (the policy limit; endpoint and descriptor files are just as
//! small) and valid UTF-8, and then parsed by the same bounded tree builder as policy files, so a
//! bundle cannot bring a DOCTYPE, entity expansion, deep nesting or a huge file past the loader.

use std::io::Read;
use std::path::Path;

use super::model::PolicyHeader;
use crate::diag::{Diagnostic, Located, Pos};
use crate::policy::check::{self, Sink, MAX_POLICY_FILE_BYTES};
use crate::policy::xml::tree::{Node, TreeBuilder};

/// The text of `path`, or the error that says why it cannot be used. Errors about the whole file
/// (missing, not a file, too large, unreadable) have no position; invalid UTF-8 points at the first
/// bad byte.
fn read_text(path: &Path) -> Result<String, Diagnostic> {
    let limit = MAX_POLICY_FILE_BYTES;
    let cannot_read =
        |e: std::io::Error| Diagnostic::error(path, None, format!("cannot read: {e}"));
    let too_large = |len: u64| {
        Diagnostic::error(
            path,
            None,
            format!("file is {len} bytes, more than the {limit} byte limit"),
        )
        .with_hint("bundle XML files are small; check for a generated or misplaced file")
    };
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    // Opening a FIFO or device would block or read forever; only regular files are read.
    if !meta.is_file() {
        return Err(Diagnostic::error(path, None, "not a regular file"));
    }
    if meta.len() > limit as u64 {
        return Err(too_large(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    // Read at most one byte past the limit, in case the file grew after the metadata check.
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() > limit {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(e.as_bytes().get(..valid).unwrap_or_default());
        let pos = Pos::from_offset(&prefix, prefix.len());
        Diagnostic::error(path, Some(pos), "file is not valid UTF-8")
            .with_hint("save the file as UTF-8")
    })
}

/// Reads and parses the file `sink` is for; `None` (with the reason in `sink`) when it cannot be
/// read or is not well-formed XML.
pub(super) fn read_tree(sink: &mut Sink<'_>) -> Option<Node> {
    let text = match read_text(sink.file) {
        Ok(t) => t,
        Err(d) => {
            sink.diags.push(d);
            return None;
        }
    };
    TreeBuilder::new(&text, sink).build()
}

/// Reads only the root element of a policy file: its kind (element name), `name`, `enabled`,
/// `continueOnError`. The content is not checked against any policy kind, so this works for the
/// kinds cachegate does not run; the file must still be well-formed XML within the policy limits.
/// The error is the file's first problem.
pub fn policy_header(path: &Path) -> Result<PolicyHeader, Diagnostic> {
    let mut sink = Sink::new(path);
    let root = read_tree(&mut sink);
    let header = root.map(|root| header_of(&root, &mut sink));
    let first_error = sink.finish().into_iter().find(Diagnostic::is_error);
    match (header, first_error) {
        (Some(h), None) => Ok(h),
        (_, Some(e)) => Err(e),
        // Every path that yields no header records an error; this is a fallback, not expected.
        (None, None) => Err(Diagnostic::error(path, None, "cannot read the policy file")),
    }
}

fn header_of(root: &Node, sink: &mut Sink<'_>) -> PolicyHeader {
    let mut flag = |name: &str, default: bool| {
        let Some(a) = root.attr(name) else {
            return default;
        };
        match check::parse_bool(a.value.trim(), &format!("{name} on <{}>", root.name)) {
            Ok(b) => b,
            Err(issue) => {
                sink.issue(a.pos, issue);
                default
            }
        }
    };
    let enabled = flag("enabled", true);
    let continue_on_error = flag("continueOnError", false);
    PolicyHeader {
        path: sink.file.to_path_buf(),
        kind: Located::new(root.name.clone(), root.pos),
        name: root
            .attr_value("name")
            .map(|n| Located::new(n.to_string(), root.pos)),
        enabled,
        continue_on_error,
    }
}
