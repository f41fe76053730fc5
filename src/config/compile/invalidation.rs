//! `[cache.invalidation]`: whether clients must be authorised to invalidate, what happens when they
//! are not, and the grants (tokens and the resources they may invalidate).

use sha2::{Digest, Sha256};

use super::ctx::FileCtx;
use super::values::{env_var_name, is_name, METHODS};
use crate::config::file::{FileGrant, FileInvalidation};
use crate::runtime::stage::{Grant, InvalidationSettings, UnauthorizedStrategy};

/// `[cache.invalidation]` and its grants.
pub(super) fn invalidation(cx: &mut FileCtx, inv: &FileInvalidation) -> InvalidationSettings {
    let unauthorized = match inv.unauthorized.get_ref().as_str() {
        "FAIL_WITH_403" => UnauthorizedStrategy::FailWith403,
        "SUCCEED_WITH_RESPONSE_HEADER" => UnauthorizedStrategy::SucceedWithResponseHeader,
        "SUCCEED_WITHOUT_RESPONSE_HEADER" => UnauthorizedStrategy::SucceedWithoutResponseHeader,
        other => {
            cx.error(&inv.unauthorized, format!("`{other}` is not an unauthorized strategy"), Some("write FAIL_WITH_403, SUCCEED_WITH_RESPONSE_HEADER or SUCCEED_WITHOUT_RESPONSE_HEADER".into()));
            UnauthorizedStrategy::SucceedWithResponseHeader
        }
    };
    let mut grants = Vec::new();
    for g in &inv.grants {
        if grants.iter().any(|x: &Grant| x.name == *g.name.get_ref()) {
            cx.error(
                &g.name,
                format!("a second grant named `{}`", g.name.get_ref()),
                None,
            );
        }
        if let Some(grant) = grant(cx, g) {
            grants.push(grant);
        }
    }
    if !inv.require_authorization && !inv.grants.is_empty() {
        cx.warning(
            &inv.grants[0].name,
            "grants are ignored: require_authorization = false lets any client invalidate",
            Some("remove the grants or set require_authorization = true".into()),
        );
    }
    InvalidationSettings {
        require_authorization: inv.require_authorization,
        unauthorized,
        grants,
    }
}

fn grant(cx: &mut FileCtx, g: &FileGrant) -> Option<Grant> {
    let name = g.name.get_ref();
    if !is_name(name) {
        cx.error(
            &g.name,
            format!("grant name `{name}` must be letters, digits, `-`, `_` or `.`"),
            None,
        );
    }
    let mut resources = Vec::new();
    if g.resources.is_empty() {
        cx.error(
            &g.name,
            format!("grant `{name}` has no resources"),
            Some("write resources = [\"GET/items/*\"] (or [\"*/*\"] for everything)".into()),
        );
    }
    for r in &g.resources {
        let v = r.get_ref();
        match v.split_once('/') {
            Some((m, path)) if !m.is_empty() => {
                let method = if m == "*" {
                    None
                } else if METHODS.contains(&m) {
                    Some(m.to_owned())
                } else {
                    cx.error(
                        r,
                        format!("`{m}` is not an HTTP method"),
                        Some("write METHOD/resource-path, e.g. GET/items/*".into()),
                    );
                    continue;
                };
                resources.push((method, format!("/{path}")));
            }
            _ => cx.error(
                r,
                format!("`{v}` is not in METHOD/resource-path form"),
                Some("write e.g. \"GET/items/*\" or \"*/*\"".into()),
            ),
        }
    }
    let digest = match (&g.token_env, &g.token_sha256) {
        (Some(_), Some(d)) => {
            cx.error(d, "a grant takes token_env or token_sha256, not both", None);
            return None;
        }
        (Some(env), None) => {
            if !env_var_name(cx, env) {
                return None;
            }
            match std::env::var(env.get_ref()) {
                Ok(tok) if !tok.is_empty() => Sha256::digest(tok.as_bytes()).into(),
                _ => {
                    cx.warning(
                        env,
                        format!(
                            "grant `{name}` is disabled: environment variable {} is not set",
                            env.get_ref()
                        ),
                        Some(format!(
                            "export {}=<token> before starting cachegate",
                            env.get_ref()
                        )),
                    );
                    return None;
                }
            }
        }
        (None, Some(d)) => {
            let mut out = [0u8; 32];
            match hex::decode_to_slice(d.get_ref(), &mut out) {
                Ok(()) => out,
                Err(_) => {
                    cx.error(
                        d,
                        "token_sha256 must be 64 hexadecimal characters",
                        Some("compute it with: printf %s \"$TOKEN\" | sha256sum".into()),
                    );
                    return None;
                }
            }
        }
        (None, None) => {
            cx.error(
                &g.name,
                format!("grant `{name}` has no token"),
                Some("add token_env = \"VAR\" or token_sha256 = \"<hex digest>\"".into()),
            );
            return None;
        }
    };
    Some(Grant {
        name: name.clone(),
        token_sha256: digest,
        resources,
    })
}
