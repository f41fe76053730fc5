//! `[[cache.method]]`: per-resource, per-method overrides of the cache settings, sorted most
//! specific first.

use toml::Spanned;

use super::ctx::FileCtx;
use super::values::{pattern, ttl, METHODS};
use crate::config::file::FileCache;
use crate::runtime::stage::MethodOverride;

fn method(cx: &mut FileCtx, v: &Spanned<String>) -> Option<Option<String>> {
    let m = v.get_ref();
    if m == "*" {
        return Some(None);
    }
    let upper = m.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        if upper != *m {
            cx.warning(
                v,
                format!("method `{m}` is written in lower case"),
                Some(format!("write \"{upper}\"")),
            );
        }
        return Some(Some(upper));
    }
    cx.error(
        v,
        format!("`{m}` is not an HTTP method"),
        Some(format!("write one of {} or \"*\"", METHODS.join(", "))),
    );
    None
}

/// The `[[cache.method]]` overrides, most specific first.
pub(super) fn method_overrides(cx: &mut FileCtx, c: &FileCache) -> Vec<MethodOverride> {
    let mut overrides = Vec::new();
    for m in &c.method {
        let resource = pattern(cx, &m.resource);
        let method = method(cx, &m.method);
        let ttl_secs = m.ttl.as_ref().map(|t| ttl(cx, t, "ttl"));
        if m.caching.is_none() && m.ttl.is_none() && m.encrypted.is_none() {
            cx.warning(
                &m.resource,
                "this [[cache.method]] override changes nothing",
                Some("set caching, ttl or encrypted".into()),
            );
        }
        if let (Some(resource), Some(method)) = (resource, method) {
            if overrides.iter().any(|o: &MethodOverride| {
                o.resource.as_str() == resource.as_str() && o.method == method
            }) {
                cx.error(
                    &m.resource,
                    format!(
                        "a second override for {} {resource}",
                        method.as_deref().unwrap_or("*")
                    ),
                    Some("merge the two [[cache.method]] entries".into()),
                );
            }
            overrides.push(MethodOverride {
                resource,
                method,
                caching: m.caching,
                ttl_secs,
                encrypted: m.encrypted,
            });
        }
    }
    // Most specific first, so the runtime takes the first match; the sort is stable, so among
    // equally specific overrides the file order decides.
    overrides.sort_by(|a, b| {
        (b.resource.specificity(), b.method.is_some())
            .cmp(&(a.resource.specificity(), a.method.is_some()))
    });
    overrides
}
