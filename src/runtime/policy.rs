//! The cache policies compiled for the runtime: keys built, conditions parsed, no parse
//! positions. `config::policies` compiles them from the policy model; `engine` runs them.

use std::time::Duration;

use crate::runtime::flow::condition::Condition;
use crate::runtime::key::KeySpec;
use crate::runtime::ttl::Expiry;

/// What every cache policy has.
#[derive(Debug)]
pub struct PolicyCommon {
    /// Policy name (metrics label, flow variables).
    pub name: String,
    /// `enabled` attribute.
    pub enabled: bool,
    /// `continueOnError` attribute.
    pub continue_on_error: bool,
    /// How keys are built.
    pub key: KeySpec,
    /// `<CacheResource>`, reported in `<kind>.<name>.cachename`.
    pub cache_resource: Option<String>,
}

/// A ResponseCache policy ready to run.
#[derive(Debug)]
pub struct ResponseCachePolicy {
    /// Name, attributes, key and `<CacheResource>`.
    pub common: PolicyCommon,
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

/// A LookupCache policy ready to run.
#[derive(Debug)]
pub struct LookupCachePolicy {
    /// Name, attributes, key and `<CacheResource>`.
    pub common: PolicyCommon,
    /// `<CacheLookupTimeoutInSeconds>` (applies to the shared tier).
    pub lookup_timeout: Option<Duration>,
    /// `<AssignTo>`.
    pub assign_to: String,
}

/// A PopulateCache policy ready to run.
#[derive(Debug)]
pub struct PopulateCachePolicy {
    /// Name, attributes, key and `<CacheResource>`.
    pub common: PolicyCommon,
    /// `<ExpirySettings>`; absent = the stage TTL (or 300 s when the stage TTL is 0).
    pub expiry: Option<Expiry>,
    /// `<Source>`: the variable stored (`response.content` is read from the body).
    pub source: String,
}

/// An InvalidateCache policy ready to run.
#[derive(Debug)]
pub struct InvalidateCachePolicy {
    /// Name, attributes, key and `<CacheResource>`.
    pub common: PolicyCommon,
    /// `<PurgeChildEntries>`.
    pub purge_child_entries: bool,
    /// `<IgnoreUnresolvedVariables>`.
    pub ignore_unresolved_variables: bool,
}

impl ResponseCachePolicy {
    /// Whether an entry it stores may be kept longer than an hour: its ExpirySettings allow it,
    /// or the target's `Cache-Control` decides (`UseResponseCacheHeaders`). Sizes the purge
    /// records of the cache it writes to (`cache::purge`).
    pub fn long_lived(&self) -> bool {
        self.use_response_cache_headers
            || crate::runtime::ttl::may_exceed_hour(self.expiry.as_ref())
    }
}

impl PopulateCachePolicy {
    /// Whether a value it stores may be kept longer than an hour (see
    /// [`ResponseCachePolicy::long_lived`]).
    pub fn long_lived(&self) -> bool {
        crate::runtime::ttl::may_exceed_hour(self.expiry.as_ref())
    }
}
