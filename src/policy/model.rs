//! The policy model: what a policy file says, after parsing and before compilation.
//!
//! Both surface syntaxes — Apigee XML (`xml/`) and TOML (`toml/`) — parse into these types, so
//! everything downstream (validation, compilation) sees one model. Values keep the
//! position they were written at so that cross-file validation can still point at the right line.
//! Element names in comments are Apigee's; see `shared/reference/apigee-aws-semantics.md` §1.

pub use crate::runtime::flow::assign::MessageTarget;
pub use crate::runtime::key::Scope;
pub use crate::runtime::ttl::{ExpiryDate, TimeOfDay};
use std::path::PathBuf;

use crate::diag::{Located, Pos};

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    /// The file the policy came from.
    pub path: PathBuf,
    /// Where the root element (XML) or the first key (TOML) is.
    pub pos: Pos,
    /// Attributes and elements every policy has.
    pub common: Common,
    /// The policy itself.
    pub policy: Policy,
}

impl PolicyFile {
    /// The policy's name (its `name` attribute), which flow steps refer to.
    pub fn name(&self) -> &str {
        &self.common.name.value
    }
}

/// Which kind of policy, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Caches whole responses (Apigee `<ResponseCache>`).
    ResponseCache(ResponseCache),
    /// Reads a cached value into a flow variable (`<LookupCache>`).
    LookupCache(LookupCache),
    /// Writes a flow variable's value to the cache (`<PopulateCache>`).
    PopulateCache(PopulateCache),
    /// Purges one entry or an entry and its children (`<InvalidateCache>`).
    InvalidateCache(InvalidateCache),
    /// Sets headers, query parameters, payloads and variables (`<AssignMessage>`, a subset).
    AssignMessage(AssignMessage),
    /// Runs a shared flow's steps in place (`<FlowCallout>`).
    FlowCallout(FlowCallout),
    /// Ends the normal flow with an error response (`<RaiseFault>`).
    RaiseFault(RaiseFault),
}

impl Policy {
    /// The Apigee element name of this kind, e.g. `ResponseCache`.
    pub fn kind(&self) -> PolicyKind {
        match self {
            Policy::ResponseCache(_) => PolicyKind::ResponseCache,
            Policy::LookupCache(_) => PolicyKind::LookupCache,
            Policy::PopulateCache(_) => PolicyKind::PopulateCache,
            Policy::InvalidateCache(_) => PolicyKind::InvalidateCache,
            Policy::AssignMessage(_) => PolicyKind::AssignMessage,
            Policy::FlowCallout(_) => PolicyKind::FlowCallout,
            Policy::RaiseFault(_) => PolicyKind::RaiseFault,
        }
    }
}

/// The kinds of policy cachegate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// `<ResponseCache>`
    ResponseCache,
    /// `<LookupCache>`
    LookupCache,
    /// `<PopulateCache>`
    PopulateCache,
    /// `<InvalidateCache>`
    InvalidateCache,
    /// `<AssignMessage>`
    AssignMessage,
    /// `<FlowCallout>`
    FlowCallout,
    /// `<RaiseFault>`
    RaiseFault,
}

impl PolicyKind {
    /// Every kind's name as `open name close`, in a readable list ("A, B or C"), for
    /// diagnostics in either syntax (`<ResponseCache>` in XML, `[ResponseCache]` in TOML).
    pub fn list(open: &str, close: &str) -> String {
        let names: Vec<String> = Self::ALL
            .iter()
            .map(|k| format!("{open}{}{close}", k.as_str()))
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }

    /// All kinds, in documentation order.
    pub const ALL: [PolicyKind; 7] = [
        PolicyKind::ResponseCache,
        PolicyKind::LookupCache,
        PolicyKind::PopulateCache,
        PolicyKind::InvalidateCache,
        PolicyKind::AssignMessage,
        PolicyKind::FlowCallout,
        PolicyKind::RaiseFault,
    ];

    /// The XML root element name (also the TOML `kind` value).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::ResponseCache => "ResponseCache",
            PolicyKind::LookupCache => "LookupCache",
            PolicyKind::PopulateCache => "PopulateCache",
            PolicyKind::InvalidateCache => "InvalidateCache",
            PolicyKind::AssignMessage => "AssignMessage",
            PolicyKind::FlowCallout => "FlowCallout",
            PolicyKind::RaiseFault => "RaiseFault",
        }
    }

    /// Parses an element name; exact spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Attributes and elements shared by every policy (`stepDefinition` in Apigee's XSD).
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// `name` attribute: letters, digits, space, `-`, `_`, `.`; at most 255 characters.
    pub name: Located<String>,
    /// `<DisplayName>`; falls back to the name.
    pub display_name: Option<String>,
    /// `enabled` attribute (default true): false skips the policy wherever it is attached.
    pub enabled: bool,
    /// `continueOnError` attribute (default false): true lets the flow go on after a failure.
    pub continue_on_error: bool,
    /// `async` attribute: deprecated in Apigee, accepted and ignored.
    pub async_: bool,
}

/// `<CacheKey>`: the prefix and fragments that name a cache entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheKey {
    /// Where `<CacheKey>` was written.
    pub pos: Pos,
    /// `<Prefix>`: when present (and non-empty) it replaces the Scope-derived prefix.
    pub prefix: Option<Located<String>>,
    /// `<KeyFragment>`s, in order.
    pub fragments: Vec<KeyFragment>,
}

/// One `<KeyFragment>`: a literal, a variable reference, or (Apigee allows it) both, in which case
/// the literal is used when the variable does not resolve.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFragment {
    /// Where the fragment was written.
    pub pos: Pos,
    /// `ref` attribute: a flow variable name. Empty `ref=""` is treated as absent.
    pub reference: Option<String>,
    /// Text content.
    pub literal: Option<String>,
    /// `type` attribute (e.g. `string`); informational.
    pub type_: Option<String>,
}

/// A value that is either written literally or read from a flow variable, with the literal as the
/// fallback when the variable does not resolve (Apigee's `<TimeoutInSeconds ref="x">300</…>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueOrRef<T> {
    /// Where the element was written.
    pub pos: Pos,
    /// `ref` attribute (a flow variable), if any.
    pub reference: Option<String>,
    /// The literal value, if any.
    pub literal: Option<T>,
}

/// `<ExpirySettings>`: exactly one way of saying when an entry expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpirySettings {
    /// Where `<ExpirySettings>` was written.
    pub pos: Pos,
    /// How the entry expires.
    pub expiry: Expiry,
}

/// The kinds of expiry Apigee offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// `<TimeoutInSeconds>` (or the deprecated `<TimeoutInSec>`): seconds after storing.
    Timeout(ValueOrRef<u64>),
    /// `<ExpiryDate>` `mm-dd-yyyy`: expires at the end of that day (UTC).
    Date(ValueOrRef<ExpiryDate>),
    /// `<TimeOfDay>` `hh:mm:ss`: expires daily at that time (UTC).
    TimeOfDay(ValueOrRef<TimeOfDay>),
}

/// A condition expression written in a policy (e.g. `<SkipCacheLookup>`), kept as text with its
/// position; it is compiled (and its syntax checked) by the flow module during validation.
pub type ConditionText = Located<String>;

/// `<ResponseCache>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseCache {
    /// `<CacheKey>` (required).
    pub cache_key: CacheKey,
    /// `<Scope>` (default Exclusive).
    pub scope: Scope,
    /// `<CacheResource>`: a named cache within the stage; absent = the stage's default cache.
    pub cache_resource: Option<Located<String>>,
    /// `<ExpirySettings>`; absent = the stage TTL.
    pub expiry: Option<ExpirySettings>,
    /// `<CacheLookupTimeoutInSeconds>`: a lookup slower than this is a miss.
    pub lookup_timeout_secs: Option<Located<u64>>,
    /// `<ExcludeErrorResponse>`: only 200–205 are stored when true.
    pub exclude_error_response: bool,
    /// `<SkipCacheLookup>`: when true the lookup is skipped and the response re-populates.
    pub skip_cache_lookup: Option<ConditionText>,
    /// `<SkipCachePopulation>`: when true the response is not stored.
    pub skip_cache_population: Option<ConditionText>,
    /// `<UseAcceptHeader>`: append `Accept*` request header values to the key.
    pub use_accept_header: bool,
    /// `<UseResponseCacheHeaders>`: TTL from the upstream's `s-maxage` / `max-age` / `Expires`.
    pub use_response_cache_headers: bool,
    /// `<StaleWhileRevalidateInSeconds>` (cachegate extension): overrides the stage's
    /// stale-while-revalidate window for this policy's entries.
    pub stale_while_revalidate_secs: Option<Located<u64>>,
    /// `<StaleIfErrorInSeconds>` (cachegate extension): overrides the stage's stale-if-error
    /// window for this policy's entries.
    pub stale_if_error_secs: Option<Located<u64>>,
}

/// `<LookupCache>`.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupCache {
    /// `<CacheKey>` (required).
    pub cache_key: CacheKey,
    /// `<Scope>` (default Exclusive).
    pub scope: Scope,
    /// `<CacheResource>`.
    pub cache_resource: Option<Located<String>>,
    /// `<CacheLookupTimeoutInSeconds>`.
    pub lookup_timeout_secs: Option<Located<u64>>,
    /// `<AssignTo>` (required): the variable that receives the value on a hit.
    pub assign_to: Located<String>,
}

/// `<PopulateCache>`.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulateCache {
    /// `<CacheKey>` (required).
    pub cache_key: CacheKey,
    /// `<Scope>` (default Exclusive).
    pub scope: Scope,
    /// `<CacheResource>`.
    pub cache_resource: Option<Located<String>>,
    /// `<ExpirySettings>`; absent = the stage TTL (a warning, as apigeelint PO030 gives).
    pub expiry: Option<ExpirySettings>,
    /// `<Source>` (required): the variable whose value is stored.
    pub source: Located<String>,
}

/// `<InvalidateCache>`.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidateCache {
    /// `<CacheKey>` (required).
    pub cache_key: CacheKey,
    /// `<Scope>` (default Exclusive).
    pub scope: Scope,
    /// `<CacheResource>`.
    pub cache_resource: Option<Located<String>>,
    /// `<CacheContext>`: rebuild another API's / endpoint's scope prefix.
    pub cache_context: Option<CacheContext>,
    /// `<PurgeChildEntries>`: purge every entry whose fragments start with this key's.
    pub purge_child_entries: bool,
    /// `<IgnoreUnresolvedVariables>` (cachegate extension, as in AssignMessage): when false (the
    /// default) a fragment whose variable does not resolve makes the policy fail instead of purging
    /// a shorter key than intended.
    pub ignore_unresolved_variables: bool,
}

/// `<CacheContext>` of `<InvalidateCache>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheContext {
    /// Where `<CacheContext>` was written.
    pub pos: Pos,
    /// `<APIProxyName>`: the API that added the entry.
    pub api_proxy_name: Option<ValueOrRef<String>>,
    /// `<ProxyName>`: the proxy endpoint the entry was cached for.
    pub proxy_name: Option<ValueOrRef<String>>,
    /// `<TargetName>`: the target endpoint the entry was cached for.
    pub target_name: Option<ValueOrRef<String>>,
}

/// `<AssignMessage>` (the subset cachegate supports).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AssignMessage {
    /// `<AssignTo>`: which message is changed. cachegate supports the flow's own request or
    /// response (`createNew="false"`); absent = the message of the flow the step runs in.
    pub assign_to: Option<AssignTo>,
    /// `<Remove>` (applied first, as in Apigee).
    pub remove: Option<Remove>,
    /// `<Add>` (applied second).
    pub add: Option<Add>,
    /// `<Set>` (applied third).
    pub set: Option<Set>,
    /// `<AssignVariable>`s (applied last).
    pub assign_variables: Vec<AssignVariable>,
    /// `<IgnoreUnresolvedVariables>` (default false): when false an unresolved `{var}` in a
    /// template fails the step.
    pub ignore_unresolved_variables: bool,
}

/// `<FlowCallout>`: runs the steps of an environment's shared flow where the step stands, in
/// the calling request's message context (apigee-bundles.md §6).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowCallout {
    /// `<SharedFlowBundle>`: the shared flow bundle's name (its `<SharedFlowBundle name>`).
    pub shared_flow_bundle: Located<String>,
    /// `<Parameters>/<Parameter>`: each becomes a flow variable of its name before the shared
    /// flow runs.
    pub parameters: Vec<CalloutParameter>,
}

/// `<RaiseFault>`: enters the error flow with the response its `<FaultResponse>` builds
/// (apigee-bundles.md §5).
#[derive(Debug, Clone, PartialEq)]
pub struct RaiseFault {
    /// `<FaultResponse>`: `<Set>`, `<Add>`, `<Remove>`, `<AssignVariable>` applied to the error
    /// response (a `500` to start with), as AssignMessage applies them to a response.
    /// `<IgnoreUnresolvedVariables>` (default true for RaiseFault) is its
    /// `ignore_unresolved_variables`.
    pub fault_response: AssignMessage,
}

/// `<Parameter name="…" ref="…">literal</Parameter>`.
#[derive(Debug, Clone, PartialEq)]
pub struct CalloutParameter {
    /// The variable it sets, and where it is written.
    pub name: Located<String>,
    /// `ref`: the value is this variable's (the literal is the fallback when it is unset).
    pub reference: Option<String>,
    /// The element's text.
    pub literal: Option<String>,
}

/// `<AssignTo createNew="false" type="request">request</AssignTo>`.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignTo {
    /// Where it was written.
    pub pos: Pos,
    /// The message changed.
    pub target: MessageTarget,
}

/// A name/value pair such as `<Header name="X">{value}</Header>`; the value is a `{var}` template.
#[derive(Debug, Clone, PartialEq)]
pub struct NameValue {
    /// Where it was written.
    pub pos: Pos,
    /// Header or query parameter name.
    pub name: String,
    /// Template text (may be empty).
    pub value: String,
}

/// `<Remove>`: headers and query parameters to drop (a value-less entry, or all with `<Headers/>`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Remove {
    /// Header names: `None` = no `<Headers>` (remove nothing); `Some(empty)` = `<Headers/>`
    /// (remove all, as in Apigee); `Some(list)` = remove the listed headers.
    pub headers: Option<Vec<NameValue>>,
    /// Query parameter names, with the same three meanings as `headers`.
    pub query_params: Option<Vec<NameValue>>,
    /// `<Payload/>`: remove the body.
    pub payload: bool,
}

/// `<Add>`: headers and query parameters to append.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Add {
    /// Headers to append.
    pub headers: Vec<NameValue>,
    /// Query parameters to append.
    pub query_params: Vec<NameValue>,
}

/// `<Set>`: headers, query parameters, payload, status, verb or path to overwrite.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Set {
    /// Headers to set (replace).
    pub headers: Vec<NameValue>,
    /// Query parameters to set (replace).
    pub query_params: Vec<NameValue>,
    /// `<Payload contentType="…">template</Payload>`.
    pub payload: Option<Payload>,
    /// `<StatusCode>` (response only).
    pub status_code: Option<Located<String>>,
    /// `<ReasonPhrase>` (response only).
    pub reason_phrase: Option<Located<String>>,
    /// `<Verb>` (request only).
    pub verb: Option<Located<String>>,
    /// `<Path>` (request only).
    pub path: Option<Located<String>>,
}

/// `<Payload>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// Where it was written.
    pub pos: Pos,
    /// `contentType` attribute.
    pub content_type: Option<String>,
    /// Template text.
    pub template: String,
}

/// `<AssignVariable>`: sets a flow variable from `<Ref>`, `<Template>` or `<Value>` (first that
/// resolves, in that order, as Apigee documents).
#[derive(Debug, Clone, PartialEq)]
pub struct AssignVariable {
    /// Where it was written.
    pub pos: Pos,
    /// `<Name>` (required).
    pub name: Located<String>,
    /// `<Ref>`: another variable.
    pub reference: Option<Located<String>>,
    /// `<Template>`: `{var}` template.
    pub template: Option<Located<String>>,
    /// `<Value>`: literal fallback.
    pub value: Option<Located<String>>,
}
