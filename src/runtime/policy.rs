//! ResponseCache policies compiled for the runtime: key spec built, conditions parsed.

use std::time::Duration;

use crate::policy::model::{Expiry, PolicyFile, ResponseCache};
use crate::runtime::flow::condition::Condition;
use crate::runtime::key::{KeySpec, Namespace, ScopeContext};

/// A ResponseCache policy ready to run.
#[derive(Debug)]
pub struct ResponseCachePolicy {
    /// Policy name (metrics label, flow variables).
    pub name: String,
    /// `enabled` attribute.
    pub enabled: bool,
    /// `continueOnError` attribute.
    pub continue_on_error: bool,
    /// How keys are built.
    pub key: KeySpec,
    /// `<CacheResource>`, reported in `responsecache.<name>.cachename`.
    pub cache_resource: Option<String>,
    /// `<ExpirySettings>`.
    pub expiry: Option<Expiry>,
    /// `<CacheLookupTimeoutInSeconds>`.
    pub lookup_timeout: Option<Duration>,
    /// `<ExcludeErrorResponse>`.
    pub exclude_error_response: bool,
    /// `<SkipCacheLookup>`.
    pub skip_cache_lookup: Option<Condition>,
    /// `<SkipCachePopulation>`.
    pub skip_cache_population: Option<Condition>,
    /// `<UseResponseCacheHeaders>`.
    pub use_response_cache_headers: bool,
    /// `<StaleWhileRevalidateInSeconds>`: overrides the stage window.
    pub stale_while_revalidate: Option<Duration>,
    /// `<StaleIfErrorInSeconds>`: overrides the stage window.
    pub stale_if_error: Option<Duration>,
}

impl ResponseCachePolicy {
    /// Compiles `rc` (already validated: conditions parse).
    pub fn compile(file: &PolicyFile, rc: &ResponseCache, ctx: &ScopeContext) -> Self {
        let cache_resource = rc.cache_resource.as_ref().map(|r| r.value.clone());
        let mut key = KeySpec::from_policy(
            Namespace::Response,
            &rc.cache_key,
            rc.scope,
            cache_resource.as_deref(),
            ctx,
        );
        if rc.use_accept_header {
            key = key.with_accept_headers();
        }
        let cond = |c: &Option<crate::diag::Located<String>>| {
            c.as_ref().and_then(|c| Condition::parse(&c.value).ok())
        };
        Self {
            name: file.name().to_owned(),
            enabled: file.common.enabled,
            continue_on_error: file.common.continue_on_error,
            key,
            cache_resource,
            expiry: rc.expiry.as_ref().map(|e| e.expiry.clone()),
            lookup_timeout: rc
                .lookup_timeout_secs
                .as_ref()
                .map(|t| Duration::from_secs(t.value)),
            exclude_error_response: rc.exclude_error_response,
            skip_cache_lookup: cond(&rc.skip_cache_lookup),
            skip_cache_population: cond(&rc.skip_cache_population),
            use_response_cache_headers: rc.use_response_cache_headers,
            stale_while_revalidate: rc
                .stale_while_revalidate_secs
                .as_ref()
                .map(|s| Duration::from_secs(s.value)),
            stale_if_error: rc
                .stale_if_error_secs
                .as_ref()
                .map(|s| Duration::from_secs(s.value)),
        }
    }
}

/// A LookupCache policy ready to run.
#[derive(Debug)]
pub struct LookupCachePolicy {
    /// Policy name.
    pub name: String,
    /// `enabled` attribute.
    pub enabled: bool,
    /// `continueOnError` attribute.
    pub continue_on_error: bool,
    /// Key (value namespace).
    pub key: KeySpec,
    /// `<CacheResource>`.
    pub cache_resource: Option<String>,
    /// `<CacheLookupTimeoutInSeconds>` (applies to the shared tier).
    pub lookup_timeout: Option<Duration>,
    /// `<AssignTo>`.
    pub assign_to: String,
}

/// A PopulateCache policy ready to run.
#[derive(Debug)]
pub struct PopulateCachePolicy {
    /// Policy name.
    pub name: String,
    /// `enabled` attribute.
    pub enabled: bool,
    /// `continueOnError` attribute.
    pub continue_on_error: bool,
    /// Key (value namespace).
    pub key: KeySpec,
    /// `<CacheResource>`.
    pub cache_resource: Option<String>,
    /// `<ExpirySettings>`; absent = the stage TTL (or 300 s when the stage TTL is 0).
    pub expiry: Option<Expiry>,
    /// `<Source>`: the variable stored (`response.content` is read from the body).
    pub source: String,
}

/// An InvalidateCache policy ready to run.
#[derive(Debug)]
pub struct InvalidateCachePolicy {
    /// Policy name.
    pub name: String,
    /// `enabled` attribute.
    pub enabled: bool,
    /// `continueOnError` attribute.
    pub continue_on_error: bool,
    /// Key in the value namespace; the response-namespace twin is derived with
    /// `KeySpec::with_namespace`.
    pub key: KeySpec,
    /// `<CacheResource>`.
    pub cache_resource: Option<String>,
    /// `<PurgeChildEntries>`.
    pub purge_child_entries: bool,
    /// `<IgnoreUnresolvedVariables>`.
    pub ignore_unresolved_variables: bool,
}

fn scope_with_context<'a>(ctx: &ScopeContext<'a>, api: Option<&'a str>) -> ScopeContext<'a> {
    ScopeContext {
        organization: ctx.organization,
        stage: ctx.stage,
        api_name: api.unwrap_or(ctx.api_name),
        revision: ctx.revision,
    }
}

impl LookupCachePolicy {
    /// Compiles a LookupCache.
    pub fn compile(
        file: &PolicyFile,
        lc: &crate::policy::model::LookupCache,
        ctx: &ScopeContext,
    ) -> Self {
        let cache_resource = lc.cache_resource.as_ref().map(|r| r.value.clone());
        Self {
            name: file.name().to_owned(),
            enabled: file.common.enabled,
            continue_on_error: file.common.continue_on_error,
            key: KeySpec::from_policy(
                Namespace::Value,
                &lc.cache_key,
                lc.scope,
                cache_resource.as_deref(),
                ctx,
            ),
            cache_resource,
            lookup_timeout: lc
                .lookup_timeout_secs
                .as_ref()
                .map(|t| Duration::from_secs(t.value)),
            assign_to: lc.assign_to.value.clone(),
        }
    }
}

impl PopulateCachePolicy {
    /// Compiles a PopulateCache.
    pub fn compile(
        file: &PolicyFile,
        pc: &crate::policy::model::PopulateCache,
        ctx: &ScopeContext,
    ) -> Self {
        let cache_resource = pc.cache_resource.as_ref().map(|r| r.value.clone());
        Self {
            name: file.name().to_owned(),
            enabled: file.common.enabled,
            continue_on_error: file.common.continue_on_error,
            key: KeySpec::from_policy(
                Namespace::Value,
                &pc.cache_key,
                pc.scope,
                cache_resource.as_deref(),
                ctx,
            ),
            cache_resource,
            expiry: pc.expiry.as_ref().map(|e| e.expiry.clone()),
            source: pc.source.value.clone(),
        }
    }
}

impl InvalidateCachePolicy {
    /// Compiles an InvalidateCache. `<CacheContext><APIProxyName>` replaces the API name in the
    /// Scope prefix (its literal value; a `ref` is read from its literal fallback), so a stage
    /// can invalidate what another API name's policies wrote. Proxy and target endpoint names
    /// are always `default` in cachegate.
    pub fn compile(
        file: &PolicyFile,
        ic: &crate::policy::model::InvalidateCache,
        ctx: &ScopeContext,
    ) -> Self {
        let cache_resource = ic.cache_resource.as_ref().map(|r| r.value.clone());
        let api = ic
            .cache_context
            .as_ref()
            .and_then(|c| c.api_proxy_name.as_ref())
            .and_then(|v| v.literal.as_deref());
        let scope_ctx = scope_with_context(ctx, api);
        Self {
            name: file.name().to_owned(),
            enabled: file.common.enabled,
            continue_on_error: file.common.continue_on_error,
            key: KeySpec::from_policy(
                Namespace::Value,
                &ic.cache_key,
                ic.scope,
                cache_resource.as_deref(),
                &scope_ctx,
            ),
            cache_resource,
            purge_child_entries: ic.purge_child_entries,
            ignore_unresolved_variables: ic.ignore_unresolved_variables,
        }
    }
}
