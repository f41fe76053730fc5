//! The element tree: `quick-xml` events → [`Node`]s that keep the position of every element and
//! attribute.
//!
//! This is the first of the two parsing steps (see the module docs of `policy::xml`). Positions
//! are those of the `<` of a start tag and the first character of an attribute name, 1-based
//! line:col. Entities and CDATA are resolved here, comments and the `<?xml …?>` declaration are
//! dropped, and `<!DOCTYPE …>` is refused (no entity expansion, ever). The tree is bounded by
//! [`MAX_DEPTH`] and [`MAX_ELEMENTS`]; the byte limit is checked before reading. Nothing here knows
//! which elements a policy may contain; that is `spec.rs`, and the mapping to the model is
//! `mapper.rs`, `cache.rs` and `assign.rs`. Kept apart because this is the only code that touches
//! `quick-xml` and byte offsets.

use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::diag::{Located, Pos};
use crate::policy::check::{quoted, shown, LineIndex, Sink};
use crate::policy::model::PolicyKind;

/// Deepest element nesting accepted (the root is level 1).
pub const MAX_DEPTH: usize = 32;

/// Most elements accepted in one file.
pub const MAX_ELEMENTS: usize = 10_000;

/// One attribute, unescaped.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) pos: Pos,
}

/// One element with everything the mapping needs.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) name: String,
    /// Position of the `<` of the start tag.
    pub(crate) pos: Pos,
    pub(crate) attrs: Vec<Attr>,
    /// All text and CDATA directly inside, concatenated, entities resolved, not trimmed.
    pub(crate) text: String,
    /// Where the first non-whitespace text is.
    pub(crate) text_pos: Option<Pos>,
    pub(crate) children: Vec<Node>,
}

impl Node {
    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub(crate) fn children_named<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = &'s Node> + 's {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The attribute's value when it is present and not empty.
    pub(crate) fn attr_value(&self, name: &str) -> Option<&str> {
        self.attr(name)
            .map(|a| a.value.trim())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn trimmed(&self) -> &str {
        self.text.trim()
    }

    /// The trimmed text with the element's position, or `None` when empty.
    pub(crate) fn located_text(&self) -> Option<Located<String>> {
        let t = self.trimmed();
        (!t.is_empty()).then(|| Located::new(t.to_string(), self.pos))
    }
}

/// True for a plausible XML name (letters, digits, `_`, `:`, `-`, `.`; not starting with a digit,
/// `-` or `.`). quick-xml does not check names, so `a < b` in text would otherwise pass.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.' | '\u{b7}'))
}

/// Where in the escaped text an unescaping error is (offset from the text's start) and what it
/// is, in words.
fn escape_problem(e: &quick_xml::Error) -> (usize, String) {
    use quick_xml::escape::EscapeError;
    match e {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(range, name)) => (
            range.start.saturating_sub(1),
            format!("unknown entity &{};", shown(name)),
        ),
        quick_xml::Error::Escape(EscapeError::UnterminatedEntity(range)) => (
            range.start,
            "`&` starts an entity that is not closed with `;`".to_string(),
        ),
        other => (0, other.to_string()),
    }
}

fn attr_error_message(e: &AttrError) -> (usize, &'static str) {
    match e {
        AttrError::ExpectedEq(p) => (*p, "an attribute name must be followed by `=`"),
        AttrError::ExpectedValue(p) => (*p, "an attribute has no value"),
        AttrError::UnquotedValue(p) => (*p, "an attribute value must be in quotes"),
        AttrError::ExpectedQuote(p, _) => (*p, "an attribute value has no closing quote"),
        AttrError::Duplicated(p, _) => (*p, "the same attribute is written twice"),
    }
}

/// Reads the element tree. Returns `None` (with an error recorded) when the text is not
/// well-formed XML, has a DOCTYPE, or breaks a limit.
pub(crate) struct TreeBuilder<'t, 's, 'p> {
    text: &'t str,
    lines: LineIndex<'t>,
    sink: &'s mut Sink<'p>,
    stack: Vec<Node>,
    root: Option<Node>,
    elements: usize,
    extra_root_reported: bool,
    outside_text_reported: bool,
}

impl<'t, 's, 'p> TreeBuilder<'t, 's, 'p> {
    /// A builder for `text` that records its errors in `sink`.
    pub(crate) fn new(text: &'t str, sink: &'s mut Sink<'p>) -> Self {
        Self {
            text,
            lines: LineIndex::new(text),
            sink,
            stack: Vec::new(),
            root: None,
            elements: 0,
            extra_root_reported: false,
            outside_text_reported: false,
        }
    }

    fn malformed(&mut self, offset: usize, what: impl std::fmt::Display) -> Option<Node> {
        let pos = self.lines.pos(offset);
        self.sink.error(
            pos,
            format!("malformed XML: {what}"),
            Some("fix the XML syntax; the file must be one well-formed XML document".into()),
        );
        None
    }

    pub(crate) fn build(mut self) -> Option<Node> {
        let mut reader = Reader::from_str(self.text);
        {
            let config = reader.config_mut();
            config.trim_text(false);
            config.check_comments = true;
            config.check_end_names = true;
            config.expand_empty_elements = false;
        }
        loop {
            let offset = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let event = match reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let at = usize::try_from(reader.error_position()).unwrap_or(offset);
                    return self.malformed(at, e);
                }
            };
            match event {
                Event::Start(e) => {
                    let node = self.open(&e, offset)?;
                    self.stack.push(node);
                }
                Event::Empty(e) => {
                    let node = self.open(&e, offset)?;
                    self.close(node);
                }
                Event::End(_) => match self.stack.pop() {
                    Some(node) => self.close(node),
                    None => return self.malformed(offset, "closing tag without an opening tag"),
                },
                Event::Text(e) => {
                    let lead = e.iter().take_while(|b| b.is_ascii_whitespace()).count();
                    let raw = match e.unescape() {
                        Ok(t) => t.into_owned(),
                        Err(err) => {
                            let (at, what) = escape_problem(&err);
                            let pos = self.lines.pos(offset.saturating_add(at));
                            self.sink.error(
                                pos,
                                format!("malformed XML: {what}"),
                                Some(
                                    "write &amp; for a literal &, &lt; for <, or put the text in \
                                     <![CDATA[…]]>"
                                        .into(),
                                ),
                            );
                            return None;
                        }
                    };
                    self.text_at(&raw, offset.saturating_add(lead));
                }
                Event::CData(e) => {
                    let raw = String::from_utf8_lossy(&e.into_inner()).into_owned();
                    let lead = raw.len() - raw.trim_start().len();
                    // The content starts after `<![CDATA[`.
                    self.text_at(&raw, offset.saturating_add(9).saturating_add(lead));
                }
                Event::DocType(_) => {
                    let pos = self.lines.pos(offset);
                    self.sink.error(
                        pos,
                        "DOCTYPE is not allowed in policy files (entity expansion is disabled)",
                        Some("remove the <!DOCTYPE …> declaration; policy files need none".into()),
                    );
                    return None;
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(open) = self.stack.last() {
            let (pos, name) = (open.pos, open.name.clone());
            self.sink.error(
                pos,
                format!("malformed XML: <{name}> is never closed"),
                Some(format!("add </{name}>")),
            );
            return None;
        }
        if self.root.is_none() {
            self.sink.error(
                Pos::new(1, 1),
                "no policy in the file: it has no root element",
                Some(format!(
                    "write one of {} as the root element",
                    PolicyKind::list("<", ">")
                )),
            );
        }
        self.root
    }

    /// Reads a start tag into a new node.
    fn open(&mut self, e: &BytesStart<'_>, offset: usize) -> Option<Node> {
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        if !is_xml_name(&name) {
            return self.malformed(
                offset,
                format!(
                    "invalid element name {} (a bare < must be written &lt;)",
                    quoted(&name)
                ),
            );
        }
        let depth = self.stack.len() + 1;
        if depth > MAX_DEPTH {
            let pos = self.lines.pos(offset);
            self.sink.error(
                pos,
                format!("elements are nested more than {MAX_DEPTH} levels deep"),
                Some("policy files are shallow; check for a runaway or generated file".into()),
            );
            return None;
        }
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            let pos = self.lines.pos(offset);
            self.sink.error(
                pos,
                format!("more than {MAX_ELEMENTS} elements in one policy file"),
                Some("policy files are small; check for a runaway or generated file".into()),
            );
            return None;
        }
        let pos = self.lines.pos(offset);
        if self.stack.is_empty() && self.root.is_some() && !self.extra_root_reported {
            self.extra_root_reported = true;
            self.sink.error(
                pos,
                format!("a second root element <{name}>: a policy file holds exactly one policy"),
                Some("put each policy in its own file".into()),
            );
        }
        let buf: &[u8] = e;
        let buf_start = buf.as_ptr() as usize;
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = match a {
                Ok(a) => a,
                Err(err) => {
                    let (rel, what) = attr_error_message(&err);
                    return self.malformed(offset.saturating_add(1).saturating_add(rel), what);
                }
            };
            // The key borrows from the tag's buffer; its distance from the buffer start is its
            // offset after the `<`.
            let key: &[u8] = a.key.as_ref();
            let rel = (key.as_ptr() as usize)
                .checked_sub(buf_start)
                .filter(|r| *r <= buf.len());
            let attr_offset = rel.map_or(offset, |r| offset.saturating_add(1).saturating_add(r));
            let attr_pos = self.lines.pos(attr_offset);
            let value = match a.unescape_value() {
                Ok(v) => v.into_owned(),
                Err(err) => {
                    let (_, what) = escape_problem(&err);
                    self.sink.error(
                        attr_pos,
                        format!("malformed XML: {what}"),
                        Some("write &amp; for a literal & and &lt; for <".into()),
                    );
                    return None;
                }
            };
            attrs.push(Attr {
                name: String::from_utf8_lossy(key).into_owned(),
                value,
                pos: attr_pos,
            });
        }
        Some(Node {
            name,
            pos,
            attrs,
            text: String::new(),
            text_pos: None,
            children: Vec::new(),
        })
    }

    fn close(&mut self, node: Node) {
        if let Some(parent) = self.stack.last_mut() {
            parent.children.push(node);
        } else if self.root.is_none() {
            self.root = Some(node);
        }
        // A second root was reported when it opened; it is dropped here.
    }

    /// Adds text found in the source; `first` is the source offset of its first non-blank
    /// character (used only when the text is not blank).
    fn text_at(&mut self, raw: &str, first: usize) {
        let blank = raw.chars().all(|c| c.is_whitespace() || c == '\u{feff}');
        match self.stack.last_mut() {
            Some(node) => {
                if !blank && node.text_pos.is_none() {
                    node.text_pos = Some(self.lines.pos(first));
                }
                node.text.push_str(raw);
            }
            None => {
                if !blank && !self.outside_text_reported {
                    self.outside_text_reported = true;
                    let pos = self.lines.pos(first);
                    self.sink.error(
                        pos,
                        "text outside the root element",
                        Some("everything but comments belongs inside the policy element".into()),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;
    use super::super::test_util::{messages, parse_ok};
    use crate::policy::model::Policy;

    #[test]
    fn positions_point_at_the_start_tag() {
        let out = parse(
            Path::new("p.xml"),
            "<?xml version=\"1.0\"?>\n<ResponseCache name=\"r\">\n  <CacheKey><KeyFragment ref=\"a\"/></CacheKey>\n    <Bogus/>\n</ResponseCache>\n",
        );
        let d = out
            .diagnostics
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            d.starts_with("p.xml:4:5: error: unknown element <Bogus> in <ResponseCache>"),
            "{d}"
        );
    }

    #[test]
    fn attribute_positions_are_exact() {
        let m = messages("<LookupCache  name=\"x\" bogus=\"1\"><CacheKey><KeyFragment>a</KeyFragment></CacheKey><AssignTo>v</AssignTo></LookupCache>");
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("t.xml:1:24: error: unknown attribute bogus on <LookupCache>"),
            "{m:?}"
        );
    }

    #[test]
    fn entities_and_cdata_are_resolved() {
        let p = parse_ok(
            "<ResponseCache name=\"r\"><CacheKey><KeyFragment>a&amp;b<![CDATA[<c>]]></KeyFragment></CacheKey>\
             <SkipCacheLookup>request.header.x = &quot;1&quot;</SkipCacheLookup></ResponseCache>",
        );
        let Policy::ResponseCache(rc) = p.policy else {
            panic!("kind")
        };
        assert_eq!(rc.cache_key.fragments[0].literal.as_deref(), Some("a&b<c>"));
        assert_eq!(
            rc.skip_cache_lookup.map(|s| s.value).as_deref(),
            Some("request.header.x = \"1\"")
        );
    }

    #[test]
    fn limits_are_errors_not_panics() {
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert!(messages(&deep)
            .iter()
            .any(|m| m.contains("nested more than 32")));
        let wide = format!(
            "<ResponseCache name=\"x\">{}</ResponseCache>",
            "<a/>".repeat(20_000)
        );
        assert!(messages(&wide)
            .iter()
            .any(|m| m.contains("more than 10000 elements")));
        let big = format!(
            "<ResponseCache name=\"x\"><!--{}--></ResponseCache>",
            "x".repeat(1 << 20)
        );
        assert!(messages(&big).iter().any(|m| m.contains("byte limit")));
    }

    #[test]
    fn well_formedness() {
        for (text, want) in [
            ("", "no root element"),
            ("<ResponseCache name=\"a\">", "is never closed"),
            ("<ResponseCache name=\"a\"></LookupCache>", "malformed XML"),
            ("<A/><B/>", "second root element"),
            ("x<A/>", "text outside the root"),
            ("<A x='1' x='2'/>", "written twice"),
            ("<A>a < b</A>", "invalid element name"),
            ("<A>&nbsp;</A>", "malformed XML"),
            ("<A x='&foo;'/>", "malformed XML"),
            (
                "<!DOCTYPE A [<!ENTITY e 'x'>]><A>&e;</A>",
                "DOCTYPE is not allowed",
            ),
        ] {
            let m = messages(text);
            assert!(m.iter().any(|m| m.contains(want)), "{text:?}: {m:?}");
        }
    }

    #[test]
    fn text_positions() {
        let m = messages(
            "<ResponseCache name=\"r\">\n  <CacheKey>\n   &#32;x</CacheKey>\n</ResponseCache>",
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("t.xml:3:4: error: unexpected text in <CacheKey>")),
            "{m:?}"
        );
        let m = messages(
            "<ResponseCache name=\"r\"><CacheKey><![CDATA[  x]]></CacheKey></ResponseCache>",
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("t.xml:1:46: error: unexpected text")),
            "{m:?}"
        );
        let m = messages("\n  x <A/>");
        assert!(
            m.iter()
                .any(|m| m.starts_with("t.xml:2:3: error: text outside")),
            "{m:?}"
        );
    }

    #[test]
    fn messages_are_one_line() {
        // Found by the property test: quick-xml quotes a closing tag name that spans lines.
        let out = parse(Path::new("t.xml"), "<A><B></Hea&amp;\n  <Q></B></A>");
        assert_eq!(out.diagnostics.len(), 1);
        assert!(
            !out.diagnostics[0].message.contains('\n'),
            "{:?}",
            out.diagnostics
        );
        assert!(
            out.diagnostics[0].message.contains("\\n"),
            "{:?}",
            out.diagnostics
        );
    }
}
