//! ResponseCache policies compiled for the runtime: key spec built, conditions parsed.

use std::time::Duration;

use crate::cache::key::{KeySpec, Namespace, ScopeContext};
use crate::flow::condition::Condition;
use crate::policy::model::{Expiry, PolicyFile, ResponseCache};

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
        }
    }
}
