//! `[cache]`: a stage's cache settings (mode, TTL, sizes, staleness, key parameters), with its
//! method overrides (`overrides.rs`) and invalidation settings (`invalidation.rs`).

use std::time::Duration;

use super::ctx::FileCtx;
use super::invalidation::invalidation;
use super::overrides::method_overrides;
use super::values::ttl;
use crate::config::file::{FileCache, FileStage};
use crate::runtime::resource::ResourcePattern;
use crate::runtime::stage::{CacheMode, KeyParameter, MethodOverride, StageCache};

/// Longest `revalidate_keep` accepted: entries past their freshness are only worth keeping while
/// their target is likely to answer 304, and the local tier evicts by size anyway.
const MAX_REVALIDATE_KEEP_SECS: u64 = 604_800;

/// `[cache]` including method overrides and invalidation.
pub(crate) fn cache(cx: &mut FileCtx, s: &FileStage, resources: &[ResourcePattern]) -> StageCache {
    let c = &s.cache;
    let ttl_secs = ttl(cx, &c.ttl, "ttl");
    let capacity = c.capacity.get_ref().0;
    if capacity == 0 {
        cx.error(
            &c.capacity,
            "capacity must be greater than 0",
            Some("write e.g. capacity = \"64MiB\"".into()),
        );
    }
    let max_object_size = c.max_object_size.get_ref().0;
    if max_object_size == 0 {
        cx.error(
            &c.max_object_size,
            "max_object_size must be greater than 0",
            Some("write e.g. max_object_size = 1048576".into()),
        );
    } else if capacity > 0 && max_object_size > capacity {
        cx.error(&c.max_object_size, format!("max_object_size ({max_object_size} bytes) is larger than capacity ({capacity} bytes)"), Some("raise capacity or lower max_object_size".into()));
    }
    for (v, key) in [
        (&c.stale_while_revalidate, "stale_while_revalidate"),
        (&c.stale_if_error, "stale_if_error"),
    ] {
        if *v.get_ref() > 86_400 {
            cx.error(
                v,
                format!("{key} = {} is over one day", v.get_ref()),
                Some(format!("write {key} = 86400 or less")),
            );
        }
    }

    let revalidate_keep = *c.revalidate_keep.get_ref();
    if revalidate_keep > MAX_REVALIDATE_KEEP_SECS {
        cx.error(
            &c.revalidate_keep,
            format!("revalidate_keep = {revalidate_keep} is over one week"),
            Some(format!(
                "write revalidate_keep = {MAX_REVALIDATE_KEEP_SECS} or less"
            )),
        );
    }

    let lock_timeout_ms = *c.lock_timeout_ms.get_ref();
    if !(1..=60_000).contains(&lock_timeout_ms) {
        cx.error(
            &c.lock_timeout_ms,
            format!("lock_timeout_ms = {lock_timeout_ms} is out of range"),
            Some("write a value from 1 to 60000".into()),
        );
    }
    let overrides = method_overrides(cx, c);
    let key_parameters = key_parameters(cx, c, resources, &overrides);
    let invalidation = invalidation(cx, &c.invalidation);
    let mode = cache_mode(cx, c);
    let forward_unkeyed_query = unkeyed_query(cx, c, mode);
    let targeted_cache_control = targeted_fields(cx, c, mode);
    StageCache {
        enabled: c.enabled,
        mode,
        ttl_secs,
        capacity,
        max_object_size,
        encrypted: c.encrypted,
        forward_unkeyed_query,
        key_parameters,
        stale_while_revalidate_secs: *c.stale_while_revalidate.get_ref(),
        stale_if_error_secs: *c.stale_if_error.get_ref(),
        revalidate_keep_secs: revalidate_keep.min(MAX_REVALIDATE_KEEP_SECS),
        lock_timeout: Duration::from_millis(lock_timeout_ms),
        allow_set_cookie: c.allow_set_cookie,
        allow_private: c.allow_private,
        allow_cookie: c.allow_cookie,
        allow_authorization: c.allow_authorization,
        targeted_cache_control,
        ignore_request_directives: c.ignore_request_directives,
        overrides,
        invalidation,
    }
}

/// `key_parameters`: the request parameters that go into the cache key (aws mode).
fn key_parameters(
    cx: &mut FileCtx,
    c: &FileCache,
    resources: &[ResourcePattern],
    overrides: &[MethodOverride],
) -> Vec<KeyParameter> {
    let mut key_parameters = Vec::new();
    for k in &c.key_parameters {
        let v = k.get_ref();
        let hint = Some("write method.request.querystring.<name>, method.request.header.<name> or method.request.path.<name>".to_owned());
        let param = if let Some(q) = v.strip_prefix("method.request.querystring.") {
            Some(KeyParameter::Query(q.to_owned()))
        } else if let Some(h) = v.strip_prefix("method.request.header.") {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                cx.error(k, format!("`{h}` is not a valid header name"), None);
            }
            Some(KeyParameter::Header(h.to_ascii_lowercase()))
        } else if let Some(p) = v.strip_prefix("method.request.path.") {
            let declared = resources
                .iter()
                .chain(overrides.iter().map(|o| &o.resource))
                .any(|r| r.param_names().any(|n| n == p));
            if !declared {
                cx.error(
                    k,
                    format!("path parameter `{p}` is not declared by any resource template"),
                    Some(format!("declare it, e.g. resources = [\"/items/{{{p}}}\"]")),
                );
            }
            Some(KeyParameter::Path(p.to_owned()))
        } else {
            cx.error(k, format!("`{v}` is not a request parameter"), hint.clone());
            None
        };
        if let Some(p) = param {
            let name_empty = matches!(&p, KeyParameter::Query(n) | KeyParameter::Header(n) | KeyParameter::Path(n) if n.is_empty());
            if name_empty {
                cx.error(k, format!("`{v}` names no parameter"), hint);
            } else if key_parameters.contains(&p) {
                cx.error(k, format!("`{v}` is declared twice"), None);
            } else {
                key_parameters.push(p);
            }
        }
    }
    key_parameters
}

/// `targeted_cache_control`: header names ending in `-cache-control`, each once (lower-case);
/// the default list when unset. Set on an aws-mode stage, it is unused: a warning.
fn targeted_fields(cx: &mut FileCtx, c: &FileCache, mode: CacheMode) -> Vec<http::HeaderName> {
    let Some(list) = &c.targeted_cache_control else {
        return crate::runtime::targeted::DEFAULT_TARGETS
            .iter()
            .map(|&n| http::HeaderName::from_static(n))
            .collect();
    };
    if let (CacheMode::Aws, Some(first)) = (mode, list.first()) {
        cx.warning(
            first,
            "targeted_cache_control is only read in http mode",
            Some("remove it, or use mode = \"http\"".into()),
        );
    }
    let mut names: Vec<http::HeaderName> = Vec::new();
    for n in list {
        let lower = n.get_ref().to_ascii_lowercase();
        let targeted = lower.len() > "-cache-control".len() && lower.ends_with("-cache-control");
        match http::HeaderName::from_bytes(lower.as_bytes()) {
            Ok(name) if targeted && !names.contains(&name) => names.push(name),
            Ok(_) if targeted => cx.error(n, format!("`{}` is listed twice", n.get_ref()), None),
            _ => cx.error(
                n,
                format!("`{}` is not a targeted cache-control field", n.get_ref()),
                Some(
                    "write a header name ending in -Cache-Control, e.g. \"CDN-Cache-Control\""
                        .into(),
                ),
            ),
        }
    }
    names
}

/// `mode`: aws or http, with a warning for key parameters that http mode ignores.
/// `unkeyed_query`: whether undeclared query parameters reach the target. Forwarding them is
/// allowed (it is AWS's behaviour) but always warned about, so the choice shows in `validate`.
fn unkeyed_query(cx: &mut FileCtx, c: &FileCache, mode: CacheMode) -> bool {
    let v = &c.unkeyed_query;
    match v.get_ref().as_str() {
        "strip" => false,
        "forward" if mode == CacheMode::Aws && c.enabled => {
            cx.warning(
                v,
                "stage caching forwards query parameters that are not in key_parameters: a target that varies on one lets the first client's value be served to every client (cache poisoning)",
                Some("declare such parameters in key_parameters, or write unkeyed_query = \"strip\"".into()),
            );
            true
        }
        "forward" => true,
        other => {
            cx.error(
                v,
                format!("`{other}` is not a value of unkeyed_query"),
                Some("write unkeyed_query = \"strip\" or \"forward\"".into()),
            );
            false
        }
    }
}

fn cache_mode(cx: &mut FileCtx, c: &FileCache) -> CacheMode {
    let mode = match c.mode.get_ref().as_str() {
        "aws" => CacheMode::Aws,
        "http" => CacheMode::Http,
        other => {
            cx.error(
                &c.mode,
                format!("`{other}` is not a cache mode"),
                Some("write mode = \"aws\" or mode = \"http\"".into()),
            );
            CacheMode::Aws
        }
    };
    if mode == CacheMode::Http {
        if let Some(k) = c.key_parameters.first() {
            cx.warning(
                k,
                "key_parameters are ignored in http mode, which keys on the whole URI",
                Some("remove key_parameters, or use mode = \"aws\"".into()),
            );
        }
    }
    mode
}
