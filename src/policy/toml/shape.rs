//! The shape of a TOML policy file: the serde structs (`deny_unknown_fields`, [`Spanned`] where
//! the model keeps a position) for the top-level document and each policy kind's table, and the
//! hand-written visitors for the values that take two shapes ([`StrOrRef`], [`StrOrInt`]).
//!
//! Data only: turning these into the model, with the checks serde cannot do, is `mapper.rs`,
//! `cache.rs` and `assign.rs`. Kept apart because the key names here are the file format, which
//! the module docs of `policy::toml` describe.

use std::fmt;

use ::toml::Spanned;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Defines a policy table: the common keys, then the kind's own.
macro_rules! policy_table {
    ($name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty,)* }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            name: Spanned<String>,
            display_name: Option<String>,
            #[allow(dead_code)]
            description: Option<String>,
            enabled: Option<bool>,
            continue_on_error: Option<bool>,
            $($(#[$fm])* pub(super) $field: $ty,)*
        }

        impl $name {
            pub(super) fn common(&self) -> CommonKeys<'_> {
                CommonKeys {
                    name: &self.name,
                    display_name: self.display_name.as_deref(),
                    enabled: self.enabled,
                    continue_on_error: self.continue_on_error,
                }
            }
        }
    };
}

pub(super) struct CommonKeys<'a> {
    pub(super) name: &'a Spanned<String>,
    pub(super) display_name: Option<&'a str>,
    pub(super) enabled: Option<bool>,
    pub(super) continue_on_error: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Document {
    #[serde(rename = "ResponseCache")]
    pub(super) response_cache: Option<ResponseCacheT>,
    #[serde(rename = "LookupCache")]
    pub(super) lookup_cache: Option<LookupCacheT>,
    #[serde(rename = "PopulateCache")]
    pub(super) populate_cache: Option<PopulateCacheT>,
    #[serde(rename = "InvalidateCache")]
    pub(super) invalidate_cache: Option<InvalidateCacheT>,
    #[serde(rename = "AssignMessage")]
    pub(super) assign_message: Option<AssignMessageT>,
    #[serde(rename = "FlowCallout")]
    pub(super) flow_callout: Option<FlowCalloutT>,
    #[serde(rename = "RaiseFault")]
    pub(super) raise_fault: Option<RaiseFaultT>,
}

policy_table!(ResponseCacheT {
    cache_key: Spanned<CacheKeyT>,
    scope: Option<Spanned<String>>,
    cache_resource: Option<Spanned<String>>,
    expiry: Option<Spanned<ExpiryT>>,
    lookup_timeout_secs: Option<Spanned<i64>>,
    exclude_error_response: Option<bool>,
    skip_cache_lookup: Option<Spanned<String>>,
    skip_cache_population: Option<Spanned<String>>,
    use_accept_header: Option<bool>,
    use_response_cache_headers: Option<bool>,
    stale_while_revalidate_secs: Option<Spanned<i64>>,
    stale_if_error_secs: Option<Spanned<i64>>,
});

policy_table!(LookupCacheT {
    cache_key: Spanned<CacheKeyT>,
    scope: Option<Spanned<String>>,
    cache_resource: Option<Spanned<String>>,
    lookup_timeout_secs: Option<Spanned<i64>>,
    assign_to: Spanned<String>,
});

policy_table!(PopulateCacheT {
    cache_key: Spanned<CacheKeyT>,
    scope: Option<Spanned<String>>,
    cache_resource: Option<Spanned<String>>,
    expiry: Option<Spanned<ExpiryT>>,
    source: Spanned<String>,
});

policy_table!(InvalidateCacheT {
    cache_key: Spanned<CacheKeyT>,
    scope: Option<Spanned<String>>,
    cache_resource: Option<Spanned<String>>,
    cache_context: Option<Spanned<CacheContextT>>,
    purge_child_entries: Option<bool>,
    ignore_unresolved_variables: Option<bool>,
});

policy_table!(AssignMessageT {
    assign_to: Option<Spanned<String>>,
    ignore_unresolved_variables: Option<bool>,
    remove: Option<RemoveT>,
    add: Option<AddT>,
    set: Option<SetT>,
    assign_variable: Option<Vec<Spanned<AssignVariableT>>>,
});

policy_table!(RaiseFaultT {
    ignore_unresolved_variables: Option<bool>,
    remove: Option<RemoveT>,
    add: Option<AddT>,
    set: Option<SetT>,
    assign_variable: Option<Vec<Spanned<AssignVariableT>>>,
});

impl RaiseFaultT {
    /// The fault response as an AssignMessage of the error response (unresolved variables are
    /// ignored unless the file says otherwise, as in Apigee's RaiseFault).
    pub(super) fn into_assign(self) -> AssignMessageT {
        AssignMessageT {
            name: self.name,
            display_name: self.display_name,
            description: self.description,
            enabled: self.enabled,
            continue_on_error: self.continue_on_error,
            assign_to: None,
            ignore_unresolved_variables: Some(self.ignore_unresolved_variables.unwrap_or(true)),
            remove: self.remove,
            add: self.add,
            set: self.set,
            assign_variable: self.assign_variable,
        }
    }
}

policy_table!(FlowCalloutT {
    shared_flow_bundle: Spanned<String>,
    #[serde(default)]
    parameters: Vec<Spanned<CalloutParameterT>>,
});

/// `{ name = "x", ref = "request.header.x" }` or `{ name = "x", value = "literal" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CalloutParameterT {
    pub(super) name: String,
    #[serde(rename = "ref")]
    pub(super) reference: Option<String>,
    pub(super) value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CacheKeyT {
    pub(super) prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) fragments: Vec<Spanned<FragmentT>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FragmentT {
    #[serde(rename = "ref")]
    pub(super) reference: Option<String>,
    pub(super) literal: Option<String>,
    #[serde(rename = "type")]
    pub(super) type_: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExpiryT {
    pub(super) timeout_secs: Option<Spanned<i64>>,
    pub(super) date: Option<Spanned<String>>,
    pub(super) time_of_day: Option<Spanned<String>>,
    #[serde(rename = "ref")]
    pub(super) reference: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CacheContextT {
    pub(super) api_proxy_name: Option<Spanned<StrOrRef>>,
    pub(super) proxy_name: Option<Spanned<StrOrRef>>,
    pub(super) target_name: Option<Spanned<StrOrRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemoveT {
    pub(super) headers: Option<Vec<Spanned<String>>>,
    pub(super) all_headers: Option<Spanned<bool>>,
    pub(super) query_params: Option<Vec<Spanned<String>>>,
    pub(super) all_query_params: Option<Spanned<bool>>,
    pub(super) payload: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddT {
    pub(super) headers: Option<Vec<Spanned<NameValueT>>>,
    pub(super) query_params: Option<Vec<Spanned<NameValueT>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SetT {
    pub(super) headers: Option<Vec<Spanned<NameValueT>>>,
    pub(super) query_params: Option<Vec<Spanned<NameValueT>>>,
    pub(super) payload: Option<Spanned<PayloadT>>,
    pub(super) status_code: Option<Spanned<StrOrInt>>,
    pub(super) reason_phrase: Option<Spanned<String>>,
    pub(super) verb: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NameValueT {
    pub(super) name: String,
    #[serde(default)]
    pub(super) value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PayloadT {
    pub(super) content_type: Option<String>,
    pub(super) template: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignVariableT {
    pub(super) name: Spanned<String>,
    #[serde(rename = "ref")]
    pub(super) reference: Option<Spanned<String>>,
    pub(super) template: Option<Spanned<String>>,
    pub(super) value: Option<Spanned<String>>,
}

/// A string, or `{ ref = "var", value = "fallback" }` (hand-written so toml keeps spans).
#[derive(Debug, Default)]
pub(super) struct StrOrRef {
    pub(super) reference: Option<String>,
    pub(super) value: Option<String>,
}

impl<'de> Deserialize<'de> for StrOrRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a table { ref = \"variable\", value = \"fallback\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrRef, E> {
                Ok(StrOrRef {
                    reference: None,
                    value: Some(v.to_string()),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrOrRef, A::Error> {
                let mut out = StrOrRef::default();
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "ref" => &mut out.reference,
                        "value" => &mut out.value,
                        other => return Err(de::Error::unknown_field(other, &["ref", "value"])),
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string or an integer, kept as text (`status_code = 200` or `status_code = "{code}"`).
#[derive(Debug)]
pub(super) struct StrOrInt(pub(super) String);

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrOrInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{messages, outcome};
    use crate::policy::model::Policy;

    #[test]
    fn cache_context_and_assign_message() {
        let out = outcome(
            "[InvalidateCache]\nname='i'\ncache_key={fragments=[{literal='a'}]}\n\
             cache_context = { api_proxy_name = 'items', proxy_name = { ref = 'p', value = 'default' } }\n",
        );
        assert!(!out.has_errors(), "{:?}", out.diagnostics);
        let Some(Policy::InvalidateCache(ic)) = out.policy.map(|p| p.policy) else {
            panic!("kind")
        };
        let ctx = ic.cache_context.unwrap_or_default();
        assert_eq!(
            ctx.api_proxy_name.and_then(|v| v.literal).as_deref(),
            Some("items")
        );
        assert_eq!(
            ctx.proxy_name.and_then(|v| v.reference).as_deref(),
            Some("p")
        );
        let m = messages(
            "[InvalidateCache]\nname='i'\ncache_key={fragments=[{literal='a'}]}\ncache_context = { proxy_name = { reff = 'p' } }\n",
        );
        assert!(
            m.iter()
                .any(|m| m.contains("unknown field `reff`") && m.contains("did you mean `ref`")),
            "{m:?}"
        );

        let out = outcome(
            "[AssignMessage]\nname='am'\nassign_to='response'\n[AssignMessage.remove]\nall_headers=true\n\
             [AssignMessage.set]\nstatus_code=203\n[[AssignMessage.assign_variable]]\nname='x'\nvalue=''\n",
        );
        assert!(!out.has_errors(), "{:?}", out.diagnostics);
        let Some(Policy::AssignMessage(am)) = out.policy.map(|p| p.policy) else {
            panic!("kind")
        };
        assert_eq!(am.remove.and_then(|r| r.headers), Some(vec![]));
        assert_eq!(
            am.set
                .and_then(|s| s.status_code)
                .map(|s| s.value)
                .as_deref(),
            Some("203")
        );
        assert_eq!(am.assign_variables.len(), 1);
    }
}
