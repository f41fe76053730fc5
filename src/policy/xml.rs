//! Apigee XML policy files → [`PolicyFile`].
//!
//! Parsing happens in two steps. First `quick-xml` reads the text into a small element tree that
//! keeps the position of every element and attribute (the `<` of a start tag, 1-based line:col);
//! entities and CDATA are resolved there, comments and the `<?xml …?>` declaration are dropped, and
//! `<!DOCTYPE …>` is refused (no entity expansion, ever). The tree is bounded: 1 MiB of text, 32
//! levels of nesting, 10,000 elements. Then the tree is checked against a table of what each
//! element may contain (`Spec`) — unknown or misspelt elements and attributes, duplicates and
//! missing required elements are errors with a did-you-mean hint — and mapped to the model.
//!
//! Child elements may come in any order, as in Apigee. Empty elements (`<Prefix/>`,
//! `<CacheResource></CacheResource>`, `<ExpiryDate/>`, `<SkipCacheLookup/>`, …) are treated as
//! absent, which is how Apigee's generated skeletons use them.
//!
//! The same table drives [`known_elements`] and [`known_attributes`], which a test compares with
//! `schemas/policies.xsd` so that the schema and the parser cannot drift apart.

use std::collections::BTreeSet;
use std::path::Path;

use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::check::{self, quoted, shown, Issue, LineIndex, ScopeMatch, Sink};
use super::model::{
    Add, AssignMessage, AssignTo, AssignVariable, CacheContext, CacheKey, Common, Expiry,
    ExpirySettings, InvalidateCache, KeyFragment, LookupCache, MessageTarget, NameValue, Payload,
    Policy, PolicyFile, PolicyKind, PopulateCache, Remove, ResponseCache, Scope, Set, ValueOrRef,
};
use super::ParseOutcome;
use crate::diag::{Located, Pos};

/// Deepest element nesting accepted (the root is level 1).
pub const MAX_DEPTH: usize = 32;

/// Most elements accepted in one file.
pub const MAX_ELEMENTS: usize = 10_000;

// ---------------------------------------------------------------------------------------------
// What each element may contain.
// ---------------------------------------------------------------------------------------------

/// What an element holds besides attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Text (and CDATA) only.
    Text,
    /// Child elements only (whitespace and comments between them are fine).
    Elements,
    /// Anything; not looked at (`<FaultRules>`).
    Skip,
}

/// The attributes and children an element may have.
#[derive(Debug)]
struct Spec {
    attrs: &'static [&'static str],
    content: Content,
    children: &'static [Child],
    /// Apigee elements cachegate knowingly does not support, with what to do instead.
    unsupported: &'static [(&'static str, &'static str)],
}

/// One allowed child element.
#[derive(Debug)]
struct Child {
    name: &'static str,
    spec: &'static Spec,
    /// May appear more than once.
    many: bool,
    /// `Some(example)` when the child is required; the example goes into the hint.
    required: Option<&'static str>,
}

const fn text(attrs: &'static [&'static str]) -> Spec {
    Spec {
        attrs,
        content: Content::Text,
        children: &[],
        unsupported: &[],
    }
}

const fn opt(name: &'static str, spec: &'static Spec) -> Child {
    Child {
        name,
        spec,
        many: false,
        required: None,
    }
}

const fn many(name: &'static str, spec: &'static Spec) -> Child {
    Child {
        name,
        spec,
        many: true,
        required: None,
    }
}

const fn req(name: &'static str, spec: &'static Spec, example: &'static str) -> Child {
    Child {
        name,
        spec,
        many: false,
        required: Some(example),
    }
}

static TEXT: Spec = text(&[]);
static REF_TEXT: Spec = text(&["ref"]);
static REF_TYPE_TEXT: Spec = text(&["ref", "type"]);
static NAMED_TEXT: Spec = text(&["name"]);
static FAULT_RULES: Spec = Spec {
    attrs: &[],
    content: Content::Skip,
    children: &[],
    unsupported: &[],
};
static PROPERTIES: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[many("Property", &NAMED_TEXT)],
    unsupported: &[],
};

static CACHE_KEY: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[opt("Prefix", &TEXT), many("KeyFragment", &REF_TYPE_TEXT)],
    unsupported: &[],
};

static EXPIRY_SETTINGS: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[
        opt("TimeoutInSeconds", &REF_TEXT),
        opt("TimeoutInSec", &REF_TEXT),
        opt("ExpiryDate", &REF_TEXT),
        opt("TimeOfDay", &REF_TEXT),
    ],
    unsupported: &[],
};

static CACHE_CONTEXT: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[
        opt("APIProxyName", &REF_TYPE_TEXT),
        opt("ProxyName", &REF_TYPE_TEXT),
        opt("TargetName", &REF_TYPE_TEXT),
    ],
    unsupported: &[],
};

const ROOT_ATTRS: &[&str] = &["name", "enabled", "continueOnError", "async"];
const CACHE_KEY_EXAMPLE: &str = "<CacheKey><KeyFragment ref=\"request.uri\"/></CacheKey>";

static RESPONSE_CACHE: Spec = Spec {
    attrs: ROOT_ATTRS,
    content: Content::Elements,
    children: &[
        opt("DisplayName", &TEXT),
        opt("Description", &TEXT),
        opt("Properties", &PROPERTIES),
        opt("FaultRules", &FAULT_RULES),
        req("CacheKey", &CACHE_KEY, CACHE_KEY_EXAMPLE),
        opt("CacheResource", &TEXT),
        opt("Scope", &TEXT),
        opt("ExpirySettings", &EXPIRY_SETTINGS),
        opt("CacheLookupTimeoutInSeconds", &TEXT),
        opt("ExcludeErrorResponse", &TEXT),
        opt("SkipCacheLookup", &TEXT),
        opt("SkipCachePopulation", &TEXT),
        opt("UseAcceptHeader", &TEXT),
        opt("UseResponseCacheHeaders", &TEXT),
        opt("StaleWhileRevalidateInSeconds", &TEXT),
        opt("StaleIfErrorInSeconds", &TEXT),
    ],
    unsupported: &[],
};

static LOOKUP_CACHE: Spec = Spec {
    attrs: ROOT_ATTRS,
    content: Content::Elements,
    children: &[
        opt("DisplayName", &TEXT),
        opt("Description", &TEXT),
        opt("Properties", &PROPERTIES),
        opt("FaultRules", &FAULT_RULES),
        req("CacheKey", &CACHE_KEY, CACHE_KEY_EXAMPLE),
        opt("CacheResource", &TEXT),
        opt("Scope", &TEXT),
        opt("CacheLookupTimeoutInSeconds", &TEXT),
        req("AssignTo", &TEXT, "<AssignTo>cached.value</AssignTo>"),
    ],
    unsupported: &[],
};

static POPULATE_CACHE: Spec = Spec {
    attrs: ROOT_ATTRS,
    content: Content::Elements,
    children: &[
        opt("DisplayName", &TEXT),
        opt("Description", &TEXT),
        opt("Properties", &PROPERTIES),
        opt("FaultRules", &FAULT_RULES),
        req("CacheKey", &CACHE_KEY, CACHE_KEY_EXAMPLE),
        opt("CacheResource", &TEXT),
        opt("Scope", &TEXT),
        opt("ExpirySettings", &EXPIRY_SETTINGS),
        req("Source", &TEXT, "<Source>response.content</Source>"),
    ],
    unsupported: &[],
};

static INVALIDATE_CACHE: Spec = Spec {
    attrs: ROOT_ATTRS,
    content: Content::Elements,
    children: &[
        opt("DisplayName", &TEXT),
        opt("Description", &TEXT),
        opt("Properties", &PROPERTIES),
        opt("FaultRules", &FAULT_RULES),
        req("CacheKey", &CACHE_KEY, CACHE_KEY_EXAMPLE),
        opt("CacheResource", &TEXT),
        opt("Scope", &TEXT),
        opt("CacheContext", &CACHE_CONTEXT),
        opt("PurgeChildEntries", &TEXT),
        opt("IgnoreUnresolvedVariables", &TEXT),
    ],
    unsupported: &[],
};

const FORM_PARAMS_HINT: &str =
    "cachegate's AssignMessage changes <Headers>, <QueryParams> and the payload, not form parameters";

static AM_ASSIGN_TO: Spec = text(&["createNew", "transport", "type"]);
static AM_HEADERS: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[many("Header", &NAMED_TEXT)],
    unsupported: &[],
};
static AM_QUERY_PARAMS: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[many("QueryParam", &NAMED_TEXT)],
    unsupported: &[],
};
static AM_PAYLOAD: Spec = text(&["contentType"]);
static AM_REMOVE: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[
        opt("Headers", &AM_HEADERS),
        opt("QueryParams", &AM_QUERY_PARAMS),
        opt("Payload", &TEXT),
    ],
    unsupported: &[("FormParams", FORM_PARAMS_HINT)],
};
static AM_ADD: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[
        opt("Headers", &AM_HEADERS),
        opt("QueryParams", &AM_QUERY_PARAMS),
    ],
    unsupported: &[("FormParams", FORM_PARAMS_HINT)],
};
static AM_SET: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[
        opt("Headers", &AM_HEADERS),
        opt("QueryParams", &AM_QUERY_PARAMS),
        opt("Payload", &AM_PAYLOAD),
        opt("StatusCode", &TEXT),
        opt("ReasonPhrase", &TEXT),
        opt("Verb", &TEXT),
        opt("Path", &TEXT),
    ],
    unsupported: &[
        ("FormParams", FORM_PARAMS_HINT),
        (
            "Version",
            "cachegate does not change the HTTP version; remove <Version>",
        ),
    ],
};
static AM_ASSIGN_VARIABLE: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[
        req("Name", &TEXT, "<Name>my.variable</Name>"),
        opt("Ref", &TEXT),
        opt("Template", &TEXT),
        opt("Value", &TEXT),
    ],
    unsupported: &[
        (
            "PropertySetRef",
            "read the property with <Ref>propertyset.set.key</Ref> instead",
        ),
        (
            "ResourceURL",
            "write the value with <Value> or <Template> instead",
        ),
    ],
};
static ASSIGN_MESSAGE: Spec = Spec {
    attrs: ROOT_ATTRS,
    content: Content::Elements,
    children: &[
        opt("DisplayName", &TEXT),
        opt("Description", &TEXT),
        opt("Properties", &PROPERTIES),
        opt("FaultRules", &FAULT_RULES),
        opt("AssignTo", &AM_ASSIGN_TO),
        opt("Remove", &AM_REMOVE),
        opt("Add", &AM_ADD),
        opt("Set", &AM_SET),
        many("AssignVariable", &AM_ASSIGN_VARIABLE),
        opt("IgnoreUnresolvedVariables", &TEXT),
    ],
    unsupported: &[(
        "Copy",
        "set the value with a {variable} template in <Set>, or with <AssignVariable> and <Ref>",
    )],
};

/// The root element of each kind.
fn root_spec(kind: PolicyKind) -> &'static Spec {
    match kind {
        PolicyKind::ResponseCache => &RESPONSE_CACHE,
        PolicyKind::LookupCache => &LOOKUP_CACHE,
        PolicyKind::PopulateCache => &POPULATE_CACHE,
        PolicyKind::InvalidateCache => &INVALIDATE_CACHE,
        PolicyKind::AssignMessage => &ASSIGN_MESSAGE,
    }
}

fn walk_specs(spec: &'static Spec, f: &mut dyn FnMut(&'static str, &'static Spec)) {
    for child in spec.children {
        f(child.name, child.spec);
        walk_specs(child.spec, f);
    }
}

/// Every element name the parser accepts, in any position.
pub fn known_elements() -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for kind in PolicyKind::ALL {
        out.insert(kind.as_str());
        walk_specs(root_spec(kind), &mut |name, _| {
            out.insert(name);
        });
    }
    out
}

/// Every attribute name the parser accepts, on any element.
pub fn known_attributes() -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for kind in PolicyKind::ALL {
        let root = root_spec(kind);
        out.extend(root.attrs.iter().copied());
        walk_specs(root, &mut |_, spec| out.extend(spec.attrs.iter().copied()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The element tree.
// ---------------------------------------------------------------------------------------------

/// One attribute, unescaped.
#[derive(Debug, Clone)]
struct Attr {
    name: String,
    value: String,
    pos: Pos,
}

/// One element with everything the mapping needs.
#[derive(Debug, Clone)]
struct Node {
    name: String,
    /// Position of the `<` of the start tag.
    pos: Pos,
    attrs: Vec<Attr>,
    /// All text and CDATA directly inside, concatenated, entities resolved, not trimmed.
    text: String,
    /// Where the first non-whitespace text is.
    text_pos: Option<Pos>,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Node> + 's {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The attribute's value when it is present and not empty.
    fn attr_value(&self, name: &str) -> Option<&str> {
        self.attr(name)
            .map(|a| a.value.trim())
            .filter(|v| !v.is_empty())
    }

    fn trimmed(&self) -> &str {
        self.text.trim()
    }

    /// The trimmed text with the element's position, or `None` when empty.
    fn located_text(&self) -> Option<Located<String>> {
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
struct TreeBuilder<'t, 's, 'p> {
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
    fn malformed(&mut self, offset: usize, what: impl std::fmt::Display) -> Option<Node> {
        let pos = self.lines.pos(offset);
        self.sink.error(
            pos,
            format!("malformed XML: {what}"),
            Some("fix the XML syntax; the file must be one well-formed XML document".into()),
        );
        None
    }

    fn build(mut self) -> Option<Node> {
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

fn element_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("<{n}>"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Entry point.
// ---------------------------------------------------------------------------------------------

/// Parses an Apigee XML policy file. `path` is used in diagnostics as given.
pub fn parse(path: &Path, text: &str) -> ParseOutcome {
    let mut sink = Sink::new(path);
    if text.len() > check::MAX_POLICY_FILE_BYTES {
        sink.error(
            Pos::new(1, 1),
            format!(
                "policy file is {} bytes, more than the {} byte limit",
                text.len(),
                check::MAX_POLICY_FILE_BYTES
            ),
            Some("policy files are small; split or shorten the file".into()),
        );
        return ParseOutcome {
            policy: None,
            diagnostics: sink.finish(),
        };
    }
    let builder = TreeBuilder {
        text,
        lines: LineIndex::new(text),
        sink: &mut sink,
        stack: Vec::new(),
        root: None,
        elements: 0,
        extra_root_reported: false,
        outside_text_reported: false,
    };
    let root = builder.build();
    let policy = root.and_then(|root| Mapper { sink: &mut sink }.policy_file(path, &root));
    let policy = if sink.has_errors() { None } else { policy };
    ParseOutcome {
        policy,
        diagnostics: sink.finish(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tree → model.
// ---------------------------------------------------------------------------------------------

struct Mapper<'s, 'p> {
    sink: &'s mut Sink<'p>,
}

impl Mapper<'_, '_> {
    /// Checks `node` (and everything under it) against `spec`: attributes, children, duplicates,
    /// required children, stray text.
    fn check(&mut self, node: &Node, spec: &Spec) {
        for a in &node.attrs {
            if spec.attrs.contains(&a.name.as_str()) {
                continue;
            }
            let hint = if spec.attrs.is_empty() {
                format!("<{}> takes no attributes", node.name)
            } else {
                let expected = spec.attrs.join(", ");
                match check::did_you_mean(&a.name, spec.attrs) {
                    Some(s) => format!("did you mean {s}? expected one of {expected}"),
                    None => format!("expected one of {expected}"),
                }
            };
            self.sink.error(
                a.pos,
                format!("unknown attribute {} on <{}>", shown(&a.name), node.name),
                Some(hint),
            );
        }
        match spec.content {
            Content::Skip => {}
            Content::Text => {
                for c in &node.children {
                    self.sink.error(
                        c.pos,
                        format!("unknown element <{}> in <{}>", shown(&c.name), node.name),
                        Some(if node.name == "Payload" {
                            "<Payload> holds text; write an XML payload inside <![CDATA[…]]>"
                                .to_string()
                        } else {
                            format!("<{}> holds text, not elements", node.name)
                        }),
                    );
                }
            }
            Content::Elements => {
                let names: Vec<&str> = spec.children.iter().map(|c| c.name).collect();
                if let Some(tp) = node.text_pos {
                    self.sink.error(
                        tp,
                        format!("unexpected text in <{}>", node.name),
                        Some(format!(
                            "<{}> holds only elements: {}",
                            node.name,
                            element_list(&names)
                        )),
                    );
                }
                let mut seen: Vec<(&str, Pos)> = Vec::new();
                for c in &node.children {
                    if let Some(child) = spec.children.iter().find(|s| s.name == c.name) {
                        if !child.many {
                            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == child.name) {
                                self.sink.error(
                                    c.pos,
                                    format!("duplicate <{}> in <{}>", c.name, node.name),
                                    Some(format!(
                                        "write <{}> once (the first one is at line {})",
                                        c.name, first.line
                                    )),
                                );
                            } else {
                                seen.push((child.name, c.pos));
                            }
                        }
                        self.check(c, child.spec);
                    } else if let Some((_, hint)) =
                        spec.unsupported.iter().find(|(n, _)| *n == c.name)
                    {
                        self.sink.error(
                            c.pos,
                            format!("<{}> is not supported by cachegate's AssignMessage", c.name),
                            Some((*hint).to_string()),
                        );
                    } else {
                        let expected = format!("expected one of {}", element_list(&names));
                        let hint = match check::did_you_mean(&c.name, &names) {
                            Some(s) => format!("did you mean <{s}>? {expected}"),
                            None => expected,
                        };
                        self.sink.error(
                            c.pos,
                            format!("unknown element <{}> in <{}>", shown(&c.name), node.name),
                            Some(hint),
                        );
                    }
                }
                for child in spec.children {
                    if let Some(example) = child.required {
                        if node.child(child.name).is_none() {
                            self.sink.error(
                                node.pos,
                                format!("missing <{}> in <{}>", child.name, node.name),
                                Some(format!("add {example}")),
                            );
                        }
                    }
                }
            }
        }
    }

    fn policy_file(&mut self, path: &Path, root: &Node) -> Option<PolicyFile> {
        let Some(kind) = PolicyKind::from_name(&root.name) else {
            let names: Vec<&str> = PolicyKind::ALL.iter().map(|k| k.as_str()).collect();
            let supported = format!("cachegate supports {}", PolicyKind::list("<", ">"));
            let hint = match check::did_you_mean(&root.name, &names) {
                Some(s) => format!("did you mean <{s}>? {supported}"),
                None => supported,
            };
            self.sink.error(
                root.pos,
                format!("unsupported policy type <{}>", shown(&root.name)),
                Some(hint),
            );
            return None;
        };
        self.check(root, root_spec(kind));
        let common = self.common(root);
        let policy = match kind {
            PolicyKind::ResponseCache => self.response_cache(root).map(Policy::ResponseCache),
            PolicyKind::LookupCache => self.lookup_cache(root).map(Policy::LookupCache),
            PolicyKind::PopulateCache => self.populate_cache(root).map(Policy::PopulateCache),
            PolicyKind::InvalidateCache => self.invalidate_cache(root).map(Policy::InvalidateCache),
            PolicyKind::AssignMessage => Some(Policy::AssignMessage(self.assign_message(root))),
        };
        Some(PolicyFile {
            path: path.to_path_buf(),
            pos: root.pos,
            common: common?,
            policy: policy?,
        })
    }

    fn common(&mut self, root: &Node) -> Option<Common> {
        let name = match root.attr("name") {
            Some(a) => {
                if let Err(issue) = check::check_name(&a.value) {
                    self.sink.issue(a.pos, issue);
                }
                Located::new(a.value.clone(), a.pos)
            }
            None => {
                self.sink.error(
                    root.pos,
                    format!("missing name attribute on <{}>", root.name),
                    Some(format!("write <{} name=\"{}-1\">", root.name, root.name)),
                );
                return None;
            }
        };
        let display_name = root
            .child("DisplayName")
            .map(|d| d.trimmed().to_string())
            .filter(|d| !d.is_empty());
        Some(Common {
            name,
            display_name,
            enabled: self.bool_attr(root, "enabled", true),
            continue_on_error: self.bool_attr(root, "continueOnError", false),
            async_: self.bool_attr(root, "async", false),
        })
    }

    fn bool_attr(&mut self, node: &Node, name: &str, default: bool) -> bool {
        let Some(a) = node.attr(name) else {
            return default;
        };
        match check::parse_bool(a.value.trim(), &format!("{name} on <{}>", node.name)) {
            Ok(b) => b,
            Err(issue) => {
                self.sink.issue(a.pos, issue);
                default
            }
        }
    }

    /// A boolean element; absent or empty = false.
    fn bool_elem(&mut self, parent: &Node, name: &str) -> bool {
        let Some(node) = parent.child(name) else {
            return false;
        };
        let t = node.trimmed();
        if t.is_empty() {
            return false;
        }
        match check::parse_bool(t, &format!("<{name}>")) {
            Ok(b) => b,
            Err(issue) => {
                self.sink.issue(node.pos, issue);
                false
            }
        }
    }

    fn lookup_timeout(&mut self, parent: &Node) -> Option<Located<u64>> {
        self.seconds_elem(parent, "CacheLookupTimeoutInSeconds")
    }

    /// A non-negative number of seconds in element `name` (empty = absent).
    fn seconds_elem(&mut self, parent: &Node, name: &str) -> Option<Located<u64>> {
        let node = parent.child(name)?;
        let t = node.trimmed();
        if t.is_empty() {
            return None;
        }
        match check::parse_seconds(t, &format!("<{name}>")) {
            Ok(s) => Some(Located::new(s, node.pos)),
            Err(issue) => {
                self.sink.issue(node.pos, issue);
                None
            }
        }
    }

    fn scope(&mut self, parent: &Node) -> Scope {
        let Some(node) = parent.child("Scope") else {
            return Scope::default();
        };
        let t = node.trimmed();
        if t.is_empty() {
            return Scope::default();
        }
        match check::parse_scope(t) {
            Ok(ScopeMatch::Exact(s)) => s,
            Ok(ScopeMatch::WrongCase(s)) => {
                self.sink.warning(
                    node.pos,
                    format!("scope {} is not spelt as Apigee spells it", quoted(t)),
                    Some(format!("write {}", s.as_str())),
                );
                s
            }
            Err(issue) => {
                let hint = match check::did_you_mean(t, &Scope::ALL.map(Scope::as_str)) {
                    Some(s) => Some(format!(
                        "did you mean {s}? {}",
                        issue.hint.unwrap_or_default()
                    )),
                    None => issue.hint,
                };
                self.sink.error(node.pos, issue.message, hint);
                Scope::default()
            }
        }
    }

    fn cache_key(&mut self, parent: &Node) -> Option<CacheKey> {
        let node = parent.child("CacheKey")?;
        let prefix = node.child("Prefix").and_then(Node::located_text);
        let mut fragments = Vec::new();
        for f in node.children_named("KeyFragment") {
            let reference = f.attr_value("ref").map(str::to_string);
            let literal = Some(f.trimmed().to_string()).filter(|t| !t.is_empty());
            // A fragment with a misspelt attribute was already reported; "empty" would be noise.
            let misspelt = f
                .attrs
                .iter()
                .any(|a| !REF_TYPE_TEXT.attrs.contains(&a.name.as_str()));
            if reference.is_none() && literal.is_none() && !misspelt {
                self.sink.error(
                    f.pos,
                    "empty <KeyFragment>",
                    Some(
                        "write <KeyFragment ref=\"request.uri\"/> for a variable or \
                         <KeyFragment>text</KeyFragment> for a literal"
                            .into(),
                    ),
                );
                continue;
            }
            if reference.is_none() && literal.is_none() {
                continue;
            }
            let type_ = f.attr_value("type").map(str::to_string);
            fragments.push(KeyFragment {
                pos: f.pos,
                reference,
                literal,
                type_,
            });
        }
        Some(CacheKey {
            pos: node.pos,
            prefix,
            fragments,
        })
    }

    fn required_text(
        &mut self,
        parent: &Node,
        name: &str,
        example: &str,
    ) -> Option<Located<String>> {
        let node = parent.child(name)?;
        let located = node.located_text();
        if located.is_none() {
            self.sink.error(
                node.pos,
                format!("empty <{name}> in <{}>", parent.name),
                Some(format!("write the flow variable's name, e.g. {example}")),
            );
        }
        located
    }

    fn expiry(&mut self, parent: &Node) -> Option<ExpirySettings> {
        let node = parent.child("ExpirySettings")?;
        // The first of each child that says something; empty ones are absent.
        let mut parts: Vec<&Node> = Vec::new();
        for c in &node.children {
            let known = EXPIRY_SETTINGS.children.iter().any(|s| s.name == c.name);
            let empty = c.trimmed().is_empty() && c.attr_value("ref").is_none();
            if !known || empty || parts.iter().any(|p| p.name == c.name) {
                continue;
            }
            if c.name == "TimeoutInSec" {
                self.sink.warning(
                    c.pos,
                    "<TimeoutInSec> is deprecated",
                    Some("write <TimeoutInSeconds>".into()),
                );
            }
            parts.push(c);
        }
        let [part] = parts.as_slice() else {
            match parts.as_slice() {
                [] => self.sink.error(
                    node.pos,
                    "<ExpirySettings> has no expiry",
                    Some("write <TimeoutInSeconds>300</TimeoutInSeconds> inside it".into()),
                ),
                [first, second, ..] => {
                    let timeouts = ["TimeoutInSeconds", "TimeoutInSec"];
                    let message = if timeouts.contains(&first.name.as_str())
                        && timeouts.contains(&second.name.as_str())
                    {
                        "<ExpirySettings> has both <TimeoutInSeconds> and <TimeoutInSec>"
                            .to_string()
                    } else {
                        format!(
                            "<ExpirySettings> has more than one kind of expiry: <{}> and <{}>",
                            first.name, second.name
                        )
                    };
                    self.sink.error(
                        second.pos,
                        message,
                        Some(
                            "keep exactly one of <TimeoutInSeconds>, <ExpiryDate> or <TimeOfDay>"
                                .into(),
                        ),
                    );
                }
                [_] => {}
            }
            return None;
        };
        let reference = part.attr_value("ref").map(str::to_string);
        let raw = part.trimmed();
        let what = format!("<{}>", part.name);
        let expiry = match part.name.as_str() {
            "ExpiryDate" => {
                let literal = self.literal(raw, part.pos, |r| check::parse_date(r, &what))?;
                Expiry::Date(ValueOrRef {
                    pos: part.pos,
                    reference,
                    literal,
                })
            }
            "TimeOfDay" => {
                let literal =
                    self.literal(raw, part.pos, |r| check::parse_time_of_day(r, &what))?;
                Expiry::TimeOfDay(ValueOrRef {
                    pos: part.pos,
                    reference,
                    literal,
                })
            }
            _ => {
                let literal = self.literal(raw, part.pos, |r| check::parse_seconds(r, &what))?;
                if let Some(issue) = literal.and_then(|s| check::long_timeout(s, &what)) {
                    self.sink.warning(part.pos, issue.message, issue.hint);
                }
                Expiry::Timeout(ValueOrRef {
                    pos: part.pos,
                    reference,
                    literal,
                })
            }
        };
        Some(ExpirySettings {
            pos: node.pos,
            expiry,
        })
    }

    /// Parses an optional literal: `Some(None)` when empty, `None` (error recorded) when invalid.
    fn literal<T>(
        &mut self,
        raw: &str,
        pos: Pos,
        parse: impl FnOnce(&str) -> Result<T, Issue>,
    ) -> Option<Option<T>> {
        if raw.is_empty() {
            return Some(None);
        }
        match parse(raw) {
            Ok(v) => Some(Some(v)),
            Err(issue) => {
                self.sink.issue(pos, issue);
                None
            }
        }
    }

    fn response_cache(&mut self, root: &Node) -> Option<ResponseCache> {
        let cache_key = self.cache_key(root);
        let scope = self.scope(root);
        let cache_resource = root.child("CacheResource").and_then(Node::located_text);
        let expiry = self.expiry(root);
        let lookup_timeout_secs = self.lookup_timeout(root);
        let exclude_error_response = self.bool_elem(root, "ExcludeErrorResponse");
        let skip_cache_lookup = root.child("SkipCacheLookup").and_then(Node::located_text);
        let skip_cache_population = root
            .child("SkipCachePopulation")
            .and_then(Node::located_text);
        let use_accept_header = self.bool_elem(root, "UseAcceptHeader");
        let use_response_cache_headers = self.bool_elem(root, "UseResponseCacheHeaders");
        let stale_while_revalidate_secs = self.seconds_elem(root, "StaleWhileRevalidateInSeconds");
        let stale_if_error_secs = self.seconds_elem(root, "StaleIfErrorInSeconds");
        Some(ResponseCache {
            cache_key: cache_key?,
            scope,
            cache_resource,
            expiry,
            lookup_timeout_secs,
            exclude_error_response,
            skip_cache_lookup,
            skip_cache_population,
            use_accept_header,
            use_response_cache_headers,
            stale_while_revalidate_secs,
            stale_if_error_secs,
        })
    }

    fn lookup_cache(&mut self, root: &Node) -> Option<LookupCache> {
        let cache_key = self.cache_key(root);
        let scope = self.scope(root);
        let cache_resource = root.child("CacheResource").and_then(Node::located_text);
        let lookup_timeout_secs = self.lookup_timeout(root);
        let assign_to = self.required_text(root, "AssignTo", "<AssignTo>cached.value</AssignTo>");
        Some(LookupCache {
            cache_key: cache_key?,
            scope,
            cache_resource,
            lookup_timeout_secs,
            assign_to: assign_to?,
        })
    }

    fn populate_cache(&mut self, root: &Node) -> Option<PopulateCache> {
        let cache_key = self.cache_key(root);
        let scope = self.scope(root);
        let cache_resource = root.child("CacheResource").and_then(Node::located_text);
        let expiry = self.expiry(root);
        if root.child("ExpirySettings").is_none() {
            self.sink.warning(
                root.pos,
                "no <ExpirySettings>: entries use the stage TTL",
                Some(
                    "add <ExpirySettings><TimeoutInSeconds>300</TimeoutInSeconds></ExpirySettings>"
                        .into(),
                ),
            );
        }
        let source = self.required_text(root, "Source", "<Source>response.content</Source>");
        Some(PopulateCache {
            cache_key: cache_key?,
            scope,
            cache_resource,
            expiry,
            source: source?,
        })
    }

    fn invalidate_cache(&mut self, root: &Node) -> Option<InvalidateCache> {
        let cache_key = self.cache_key(root);
        let scope = self.scope(root);
        let cache_resource = root.child("CacheResource").and_then(Node::located_text);
        let cache_context = root.child("CacheContext").map(|c| {
            let value = |name: &str| {
                let n = c.child(name)?;
                let reference = n.attr_value("ref").map(str::to_string);
                let literal = Some(n.trimmed().to_string()).filter(|t| !t.is_empty());
                (reference.is_some() || literal.is_some()).then_some(ValueOrRef {
                    pos: n.pos,
                    reference,
                    literal,
                })
            };
            CacheContext {
                pos: c.pos,
                api_proxy_name: value("APIProxyName"),
                proxy_name: value("ProxyName"),
                target_name: value("TargetName"),
            }
        });
        let purge_child_entries = self.bool_elem(root, "PurgeChildEntries");
        let ignore_unresolved_variables = self.bool_elem(root, "IgnoreUnresolvedVariables");
        Some(InvalidateCache {
            cache_key: cache_key?,
            scope,
            cache_resource,
            cache_context,
            purge_child_entries,
            ignore_unresolved_variables,
        })
    }

    fn assign_message(&mut self, root: &Node) -> AssignMessage {
        let assign_to = root.child("AssignTo").and_then(|n| self.am_assign_to(n));
        let remove = root.child("Remove").map(|r| Remove {
            headers: r.child("Headers").map(|h| self.name_values(h, "Header")),
            query_params: r
                .child("QueryParams")
                .map(|q| self.name_values(q, "QueryParam")),
            payload: r.child("Payload").is_some_and(|p| {
                let t = p.trimmed();
                t.is_empty() || {
                    match check::parse_bool(t, "<Payload> in <Remove>") {
                        Ok(b) => b,
                        Err(issue) => {
                            self.sink.issue(p.pos, issue);
                            false
                        }
                    }
                }
            }),
        });
        let add = root.child("Add").map(|a| Add {
            headers: a
                .child("Headers")
                .map(|h| self.name_values(h, "Header"))
                .unwrap_or_default(),
            query_params: a
                .child("QueryParams")
                .map(|q| self.name_values(q, "QueryParam"))
                .unwrap_or_default(),
        });
        let set = root.child("Set").map(|s| self.am_set(s));
        let assign_variables = root
            .children_named("AssignVariable")
            .filter_map(|v| self.assign_variable(v))
            .collect();
        let ignore_unresolved_variables = self.bool_elem(root, "IgnoreUnresolvedVariables");
        AssignMessage {
            assign_to,
            remove,
            add,
            set,
            assign_variables,
            ignore_unresolved_variables,
        }
    }

    fn am_assign_to(&mut self, node: &Node) -> Option<AssignTo> {
        if let Some(a) = node.attr("createNew") {
            if self.bool_attr(node, "createNew", false) {
                self.sink.error(
                    a.pos,
                    "cachegate's AssignMessage changes the flow's own request or response; \
                     createNew is not supported",
                    Some("write createNew=\"false\" or leave the attribute out".into()),
                );
            }
        }
        if let Some(a) = node.attr("transport") {
            if !a.value.trim().eq_ignore_ascii_case("http") {
                self.sink.error(
                    a.pos,
                    format!("unsupported transport {} on <AssignTo>", quoted(&a.value)),
                    Some("write transport=\"http\" or leave the attribute out".into()),
                );
            }
        }
        let parse_target = |t: &str| match t {
            "request" => Some(MessageTarget::Request),
            "response" => Some(MessageTarget::Response),
            _ => None,
        };
        let by_type = match node.attr("type") {
            Some(a) => match parse_target(a.value.trim()) {
                Some(t) => Some(t),
                None => {
                    self.sink.error(
                        a.pos,
                        format!("invalid type {} on <AssignTo>", quoted(&a.value)),
                        Some("write type=\"request\" or type=\"response\"".into()),
                    );
                    return None;
                }
            },
            None => None,
        };
        let t = node.trimmed();
        if t.is_empty() {
            return by_type.map(|target| AssignTo {
                pos: node.pos,
                target,
            });
        }
        let Some(target) = parse_target(t) else {
            self.sink.error(
                node.pos,
                format!(
                    "cachegate's AssignMessage changes the flow's own request or response, not {}",
                    quoted(t)
                ),
                Some("write <AssignTo>request</AssignTo> or <AssignTo>response</AssignTo>".into()),
            );
            return None;
        };
        if by_type.is_some_and(|b| b != target) {
            self.sink.error(
                node.pos,
                format!("<AssignTo> names {t} but its type attribute says otherwise"),
                Some(format!("write type=\"{t}\" or leave the attribute out")),
            );
        }
        Some(AssignTo {
            pos: node.pos,
            target,
        })
    }

    fn name_values(&mut self, list: &Node, item: &str) -> Vec<NameValue> {
        let mut out = Vec::new();
        for n in list.children_named(item) {
            match n.attr_value("name") {
                Some(name) => out.push(NameValue {
                    pos: n.pos,
                    name: name.to_string(),
                    value: n.trimmed().to_string(),
                }),
                None => self.sink.error(
                    n.pos,
                    format!("<{item}> has no name attribute"),
                    Some(format!("write <{item} name=\"x-example\">value</{item}>")),
                ),
            }
        }
        out
    }

    fn am_set(&mut self, s: &Node) -> Set {
        let status_code = s.child("StatusCode").and_then(Node::located_text);
        if let Some(code) = &status_code {
            if let Err(issue) = check::check_status_code(&code.value, "<StatusCode>") {
                self.sink.issue(code.pos, issue);
            }
        }
        Set {
            headers: s
                .child("Headers")
                .map(|h| self.name_values(h, "Header"))
                .unwrap_or_default(),
            query_params: s
                .child("QueryParams")
                .map(|q| self.name_values(q, "QueryParam"))
                .unwrap_or_default(),
            payload: s.child("Payload").map(|p| Payload {
                pos: p.pos,
                content_type: p.attr_value("contentType").map(str::to_string),
                template: payload_text(&p.text).to_string(),
            }),
            status_code,
            reason_phrase: s.child("ReasonPhrase").and_then(Node::located_text),
            verb: s.child("Verb").and_then(Node::located_text),
            path: s.child("Path").and_then(Node::located_text),
        }
    }

    fn assign_variable(&mut self, v: &Node) -> Option<AssignVariable> {
        let name = self.required_text(v, "Name", "<Name>my.variable</Name>")?;
        let reference = v.child("Ref").and_then(Node::located_text);
        let template = v.child("Template").and_then(Node::located_text);
        // An empty <Value/> assigns the empty string, so it is kept.
        let value = v
            .child("Value")
            .map(|n| Located::new(n.trimmed().to_string(), n.pos));
        if reference.is_none() && template.is_none() && value.is_none() {
            self.sink.error(
                v.pos,
                format!("<AssignVariable> for {} has no <Ref>, <Template> or <Value>", name.value),
                Some("add <Value>text</Value>, <Ref>variable</Ref> or <Template>{variable}</Template>".into()),
            );
            return None;
        }
        Some(AssignVariable {
            pos: v.pos,
            name,
            reference,
            template,
            value,
        })
    }
}

/// `<Payload>` text as written, without the blank lines around it: leading whitespace up to and
/// including the last line break before the content, and trailing whitespace from the first line
/// break after it. Text on the same line as the tags keeps its spaces.
fn payload_text(raw: &str) -> &str {
    let content_start = raw.len() - raw.trim_start().len();
    let start = raw
        .get(..content_start)
        .and_then(|lead| lead.rfind('\n'))
        .map_or(0, |i| i + 1);
    let content_end = raw.trim_end().len();
    let end = raw
        .get(content_end..)
        .and_then(|tail| tail.find(['\r', '\n']))
        .map_or(raw.len(), |i| content_end + i);
    if content_end <= content_start {
        return "";
    }
    raw.get(start..end).unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> PolicyFile {
        let out = parse(Path::new("t.xml"), text);
        let shown: Vec<String> = out.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(out.diagnostics.iter().all(|d| !d.is_error()), "{shown:#?}");
        out.policy
            .unwrap_or_else(|| panic!("no policy: {shown:#?}"))
    }

    fn messages(text: &str) -> Vec<String> {
        parse(Path::new("t.xml"), text)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn payload_text_trims_blank_lines_only() {
        assert_eq!(payload_text("\n    {\"a\": 1}\n  "), "    {\"a\": 1}");
        assert_eq!(payload_text(" {a} "), " {a} ");
        assert_eq!(payload_text("\r\n  x\r\n"), "  x");
        assert_eq!(payload_text("  \n \n"), "");
        assert_eq!(payload_text(""), "");
        assert_eq!(payload_text("a\n\nb\n"), "a\n\nb");
    }

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
    fn assign_message_subset() {
        let p = parse_ok(
            r#"<AssignMessage name="AM-1">
  <AssignTo createNew="false" transport="http" type="response">response</AssignTo>
  <Remove><Headers/><QueryParams><QueryParam name="debug"/></QueryParams><Payload/></Remove>
  <Add><Headers><Header name="X-Tier">{client.tier}</Header></Headers></Add>
  <Set>
    <Payload contentType="application/json"><![CDATA[{"tier": "{client.tier}"}]]></Payload>
    <StatusCode>200</StatusCode>
  </Set>
  <AssignVariable><Name>a</Name><Value/></AssignVariable>
  <IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables>
</AssignMessage>"#,
        );
        let Policy::AssignMessage(am) = p.policy else {
            panic!("kind")
        };
        assert_eq!(
            am.assign_to.map(|a| a.target),
            Some(MessageTarget::Response)
        );
        let remove = am.remove.unwrap_or_default();
        assert_eq!(remove.headers, Some(vec![]), "<Headers/> = remove all");
        assert_eq!(remove.query_params.map(|q| q.len()), Some(1));
        assert!(remove.payload);
        assert_eq!(
            am.add.map(|a| a.headers[0].value.clone()).as_deref(),
            Some("{client.tier}")
        );
        let set = am.set.unwrap_or_default();
        assert_eq!(
            set.payload.map(|p| p.template).as_deref(),
            Some("{\"tier\": \"{client.tier}\"}")
        );
        assert_eq!(
            am.assign_variables[0]
                .value
                .as_ref()
                .map(|v| v.value.as_str()),
            Some("")
        );
        assert!(am.ignore_unresolved_variables);
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

    #[test]
    fn known_sets() {
        let e = known_elements();
        assert!(
            e.contains("ExcludeErrorResponse") && e.contains("Header") && e.contains("Property")
        );
        assert!(!e.contains("Copy"));
        let a = known_attributes();
        assert!(a.contains("continueOnError") && a.contains("contentType") && a.contains("ref"));
    }
}
