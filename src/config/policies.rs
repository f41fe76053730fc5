//! Compiling the cache policies of the policy model into their runtime form
//! (`runtime::policy`): keys built for the stage's scope, conditions taken from the load's
//! [`Conditions`], ExpirySettings without parse positions.
//!
//! Everything here has been validated first (`policy::check`, `config::crossref`), so a value
//! that does not compile has already been reported: compiling it to nothing (a condition that
//! does not parse) keeps the configuration from being used, never silently.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::policy::model::{self, CacheKey, PolicyFile, ResponseCache, Scope};
use crate::runtime::flow::condition::{Condition, ConditionError};
use crate::runtime::key::{KeySpec, Namespace, ScopeContext};
use crate::runtime::policy::{
    InvalidateCachePolicy, LookupCachePolicy, PolicyCommon, PopulateCachePolicy,
    ResponseCachePolicy,
};
use crate::runtime::ttl::{self, Expiry};

/// Every condition of one load, parsed once: validation reports a text's syntax error when it
/// first asks, and compilation takes the parsed condition from here.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    parsed: HashMap<String, Result<Condition, ConditionError>>,
}

impl Conditions {
    /// The condition `text` parses to, parsing it on first use only.
    pub(crate) fn parse(&mut self, text: &str) -> &Result<Condition, ConditionError> {
        self.parsed
            .entry(text.to_owned())
            .or_insert_with(|| Condition::parse(text))
    }

    /// How many distinct condition texts were parsed (tests assert "once").
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.parsed.len()
    }
}

/// The diagnostic of a condition that does not parse, pointing at the character it stopped at.
pub(crate) fn condition_error(
    path: &Path,
    pos: Option<Pos>,
    text: &str,
    e: &ConditionError,
) -> Diagnostic {
    let col = text
        .get(..e.offset)
        .map(|s| s.chars().count() + 1)
        .unwrap_or(1);
    let mut d = Diagnostic::error(
        path,
        pos,
        format!("invalid condition (at character {col}): {}", e.message),
    );
    d.hint = e.hint.clone();
    d
}

/// A `ref` as Apigee resolves it: spaces around the name are ignored (validation warns), and an
/// empty one is no reference.
fn trimmed_ref(r: Option<&str>) -> Option<&str> {
    r.map(str::trim).filter(|r| !r.is_empty())
}

/// A policy's `<CacheKey>` + `<Scope>` as a runtime key spec.
pub(crate) fn key_spec(
    ns: Namespace,
    key: &CacheKey,
    scope: Scope,
    cache_resource: Option<&str>,
    ctx: &ScopeContext,
) -> KeySpec {
    let fragments: Vec<(Option<&str>, Option<&str>)> = key
        .fragments
        .iter()
        .map(|f| (trimmed_ref(f.reference.as_deref()), f.literal.as_deref()))
        .collect();
    KeySpec::from_policy(
        ns,
        key.prefix.as_ref().map(|p| p.value.as_str()),
        &fragments,
        scope,
        cache_resource,
        ctx,
    )
}

/// `<ExpirySettings>` without its parse positions.
pub(crate) fn expiry(e: &model::Expiry) -> Expiry {
    fn value<T: Copy>(v: &model::ValueOrRef<T>) -> ttl::ValueOrRef<T> {
        ttl::ValueOrRef {
            reference: trimmed_ref(v.reference.as_deref()).map(str::to_owned),
            literal: v.literal,
        }
    }
    match e {
        model::Expiry::Timeout(v) => Expiry::Timeout(value(v)),
        model::Expiry::Date(v) => Expiry::Date(value(v)),
        model::Expiry::TimeOfDay(v) => Expiry::TimeOfDay(value(v)),
    }
}

fn common(
    file: &PolicyFile,
    ns: Namespace,
    key: &CacheKey,
    scope: Scope,
    cache_resource: Option<&crate::diag::Located<String>>,
    ctx: &ScopeContext,
) -> PolicyCommon {
    let cache_resource = cache_resource.map(|r| r.value.clone());
    PolicyCommon {
        name: file.name().to_owned(),
        enabled: file.common.enabled,
        continue_on_error: file.common.continue_on_error,
        key: key_spec(ns, key, scope, cache_resource.as_deref(), ctx),
        cache_resource,
    }
}

fn secs(v: Option<&crate::diag::Located<u64>>) -> Option<Duration> {
    v.map(|t| Duration::from_secs(t.value))
}

/// Compiles a ResponseCache, reporting what cannot be compiled (a condition that does not
/// parse) in `diags`; `None` then.
pub(crate) fn response_cache(
    file: &PolicyFile,
    rc: &ResponseCache,
    ctx: &ScopeContext,
    conditions: &mut Conditions,
    diags: &mut Diagnostics,
) -> Option<ResponseCachePolicy> {
    let mut common = common(
        file,
        Namespace::Response,
        &rc.cache_key,
        rc.scope,
        rc.cache_resource.as_ref(),
        ctx,
    );
    if rc.use_accept_header {
        common.key = common.key.with_accept_headers();
    }
    let mut ok = true;
    let mut cond = |c: &Option<crate::diag::Located<String>>| match c {
        None => None,
        Some(c) => match conditions.parse(&c.value) {
            Ok(parsed) => Some(parsed.clone()),
            Err(e) => {
                diags.push(condition_error(&file.path, Some(c.pos), &c.value, e));
                ok = false;
                None
            }
        },
    };
    let skip_cache_lookup = cond(&rc.skip_cache_lookup);
    let skip_cache_population = cond(&rc.skip_cache_population);
    ok.then(|| ResponseCachePolicy {
        common,
        expiry: rc.expiry.as_ref().map(|e| expiry(&e.expiry)),
        lookup_timeout: secs(rc.lookup_timeout_secs.as_ref()),
        exclude_error_response: rc.exclude_error_response,
        skip_cache_lookup,
        skip_cache_population,
        use_response_cache_headers: rc.use_response_cache_headers,
        stale_while_revalidate: secs(rc.stale_while_revalidate_secs.as_ref()),
        stale_if_error: secs(rc.stale_if_error_secs.as_ref()),
    })
}

/// Compiles a LookupCache.
pub(crate) fn lookup_cache(
    file: &PolicyFile,
    lc: &model::LookupCache,
    ctx: &ScopeContext,
) -> LookupCachePolicy {
    LookupCachePolicy {
        common: common(
            file,
            Namespace::Value,
            &lc.cache_key,
            lc.scope,
            lc.cache_resource.as_ref(),
            ctx,
        ),
        lookup_timeout: secs(lc.lookup_timeout_secs.as_ref()),
        assign_to: lc.assign_to.value.clone(),
    }
}

/// Compiles a PopulateCache.
pub(crate) fn populate_cache(
    file: &PolicyFile,
    pc: &model::PopulateCache,
    ctx: &ScopeContext,
) -> PopulateCachePolicy {
    PopulateCachePolicy {
        common: common(
            file,
            Namespace::Value,
            &pc.cache_key,
            pc.scope,
            pc.cache_resource.as_ref(),
            ctx,
        ),
        expiry: pc.expiry.as_ref().map(|e| expiry(&e.expiry)),
        source: pc.source.value.clone(),
    }
}

/// Compiles an InvalidateCache. `<CacheContext><APIProxyName>` replaces the API name in the
/// Scope prefix (its literal value; a `ref` is read from its literal fallback), so a stage can
/// invalidate what another API name's policies wrote; `<ProxyName>` and `<TargetName>` replace
/// the endpoint names the same way.
pub(crate) fn invalidate_cache(
    file: &PolicyFile,
    ic: &model::InvalidateCache,
    ctx: &ScopeContext,
) -> InvalidateCachePolicy {
    let api = ic
        .cache_context
        .as_ref()
        .and_then(|c| c.api_proxy_name.as_ref())
        .and_then(|v| v.literal.as_deref());
    fn literal(v: &Option<model::ValueOrRef<String>>) -> Option<&str> {
        v.as_ref().and_then(|v| v.literal.as_deref())
    }
    let cc = ic.cache_context.as_ref();
    let scope_ctx = ScopeContext {
        api_name: api.unwrap_or(ctx.api_name),
        proxy_endpoint: cc
            .and_then(|c| literal(&c.proxy_name))
            .unwrap_or(ctx.proxy_endpoint),
        target_endpoint: cc
            .and_then(|c| literal(&c.target_name))
            .unwrap_or(ctx.target_endpoint),
        ..*ctx
    };
    InvalidateCachePolicy {
        common: common(
            file,
            Namespace::Value,
            &ic.cache_key,
            ic.scope,
            ic.cache_resource.as_ref(),
            &scope_ctx,
        ),
        purge_child_entries: ic.purge_child_entries,
        ignore_unresolved_variables: ic.ignore_unresolved_variables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_text_is_parsed_once_per_load() {
        let mut c = Conditions::default();
        assert!(c.parse("request.verb = \"GET\"").is_ok());
        assert!(c.parse("request.verb = \"GET\"").is_ok());
        assert!(c.parse("request.verb = ").is_err());
        assert!(c.parse("request.verb = ").is_err());
        assert_eq!(c.len(), 2);
    }
}
