//! What each XML element may contain: the [`Spec`] table for every policy kind's root element and
//! everything under it (attributes, text or child elements, which children are required or may
//! repeat, and the Apigee elements cachegate knowingly does not support, with a hint).
//!
//! The table is data only. `mapper.rs` checks a tree against it (unknown, misspelt, duplicate and
//! missing elements and attributes); [`known_elements`] and [`known_attributes`] list it for the
//! test that compares it with `schemas/policies.xsd`. Kept apart so that the schema, the checker
//! and the mapping read from one place.

#[cfg(test)]
use std::collections::BTreeSet;

use crate::policy::model::PolicyKind;

/// What an element holds besides attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Content {
    /// Text (and CDATA) only.
    Text,
    /// Child elements only (whitespace and comments between them are fine).
    Elements,
    /// Anything; not looked at (`<FaultRules>`).
    Skip,
}

/// The attributes and children an element may have.
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) attrs: &'static [&'static str],
    pub(super) content: Content,
    pub(super) children: &'static [Child],
    /// Apigee elements cachegate knowingly does not support, with what to do instead.
    pub(super) unsupported: &'static [(&'static str, &'static str)],
}

/// One allowed child element.
#[derive(Debug)]
pub(super) struct Child {
    pub(super) name: &'static str,
    pub(super) spec: &'static Spec,
    /// May appear more than once.
    pub(super) many: bool,
    /// `Some(example)` when the child is required; the example goes into the hint.
    pub(super) required: Option<&'static str>,
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
pub(super) static REF_TYPE_TEXT: Spec = text(&["ref", "type"]);
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

pub(super) static EXPIRY_SETTINGS: Spec = Spec {
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

static FC_PARAMETERS: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[many("Parameter", &FC_PARAMETER)],
    unsupported: &[],
};
static FC_PARAMETER: Spec = text(&["name", "ref"]);

static FLOW_CALLOUT: Spec = Spec {
    attrs: ROOT_ATTRS,
    content: Content::Elements,
    children: &[
        opt("DisplayName", &TEXT),
        opt("Description", &TEXT),
        opt("Properties", &PROPERTIES),
        opt("FaultRules", &FAULT_RULES),
        req(
            "SharedFlowBundle",
            &TEXT,
            "<SharedFlowBundle>my-shared-flow</SharedFlowBundle>",
        ),
        opt("Parameters", &FC_PARAMETERS),
    ],
    unsupported: &[],
};

static FAULT_RESPONSE: Spec = Spec {
    attrs: &[],
    content: Content::Elements,
    children: &[
        opt("Remove", &AM_REMOVE),
        opt("Add", &AM_ADD),
        opt("Set", &AM_SET),
        many("AssignVariable", &AM_ASSIGN_VARIABLE),
    ],
    unsupported: &[(
        "Copy",
        "set the value with a {variable} template in <Set> instead",
    )],
};

static RAISE_FAULT: Spec = Spec {
    attrs: ROOT_ATTRS,
    content: Content::Elements,
    children: &[
        opt("DisplayName", &TEXT),
        opt("Description", &TEXT),
        opt("Properties", &PROPERTIES),
        opt("FaultRules", &FAULT_RULES),
        req(
            "FaultResponse",
            &FAULT_RESPONSE,
            "<FaultResponse><Set><StatusCode>404</StatusCode></Set></FaultResponse>",
        ),
        opt("IgnoreUnresolvedVariables", &TEXT),
        opt("ShortFaultReason", &TEXT),
    ],
    unsupported: &[],
};

/// The root element of each kind.
pub(super) fn root_spec(kind: PolicyKind) -> &'static Spec {
    match kind {
        PolicyKind::ResponseCache => &RESPONSE_CACHE,
        PolicyKind::LookupCache => &LOOKUP_CACHE,
        PolicyKind::PopulateCache => &POPULATE_CACHE,
        PolicyKind::InvalidateCache => &INVALIDATE_CACHE,
        PolicyKind::AssignMessage => &ASSIGN_MESSAGE,
        PolicyKind::FlowCallout => &FLOW_CALLOUT,
        PolicyKind::RaiseFault => &RAISE_FAULT,
    }
}

#[cfg(test)]
fn walk_specs(spec: &'static Spec, f: &mut dyn FnMut(&'static str, &'static Spec)) {
    for child in spec.children {
        f(child.name, child.spec);
        walk_specs(child.spec, f);
    }
}

/// Every element name the parser accepts, in any position (the XSD drift test asks).
#[cfg(test)]
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

/// Every attribute name the parser accepts, on any element (the XSD drift test asks).
#[cfg(test)]
pub fn known_attributes() -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for kind in PolicyKind::ALL {
        let root = root_spec(kind);
        out.extend(root.attrs.iter().copied());
        walk_specs(root, &mut |_, spec| out.extend(spec.attrs.iter().copied()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
