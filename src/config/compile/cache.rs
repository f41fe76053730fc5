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
    StageCache {
        enabled: c.enabled,
        mode,
        ttl_secs,
        capacity,
        max_object_size,
        encrypted: c.encrypted,
        key_parameters,
        stale_while_revalidate_secs: *c.stale_while_revalidate.get_ref(),
        stale_if_error_secs: *c.stale_if_error.get_ref(),
        lock_timeout: Duration::from_millis(lock_timeout_ms),
        allow_set_cookie: c.allow_set_cookie,
        allow_private: c.allow_private,
        allow_cookie: c.allow_cookie,
        allow_authorization: c.allow_authorization,
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

/// `mode`: aws or http, with a warning for key parameters that http mode ignores.
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
