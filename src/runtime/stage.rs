//! The runtime model: an immutable snapshot of the whole configuration, compiled from the files.
//!
//! Nothing here is parsed per request: targets are resolved socket addresses, patterns and
//! conditions are compiled. A snapshot is shared as `Arc<RuntimeConfig>`; a reload builds a new
//! one and swaps it in whole (see `reload.rs`), so a request never sees two configurations.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::runtime::flow::assign::CompiledAssignMessage;
use crate::runtime::flow::condition::Condition;
pub use crate::runtime::key::KeyParameter;
use crate::runtime::key::KeySpec;
use crate::runtime::policy::{
    InvalidateCachePolicy, LookupCachePolicy, PopulateCachePolicy, ResponseCachePolicy,
};
use crate::runtime::resource::ResourcePattern;
pub use crate::runtime::target::{Target, TargetServer};

/// One complete, valid configuration.
#[derive(Debug)]
pub struct RuntimeConfig {
    /// The directory it was loaded from.
    pub source_dir: PathBuf,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Settings from `gateway.toml`.
    pub gateway: GatewaySettings,
    /// Stages, longest base path first (so routing can take the first match).
    pub stages: Vec<Arc<Stage>>,
}

impl RuntimeConfig {
    /// The stage whose base path is a prefix of `path` on a segment boundary, and the path suffix
    /// left after removing that base path (always starting with `/`, or empty for the bare base).
    pub fn route<'p>(&self, path: &'p str) -> Option<(&Arc<Stage>, &'p str)> {
        self.stages
            .iter()
            .find_map(|stage| stage.strip_base(path).map(|suffix| (stage, suffix)))
    }

    /// Looks a stage up by name.
    pub fn stage(&self, name: &str) -> Option<&Arc<Stage>> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Joins a stage folder's name and a ProxyEndpoint's in the name of the runtime stage of a
/// bundle's second and later ProxyEndpoints (`shop.admin`). Folder names never hold a `.`, so
/// such a name never collides with a folder's stage, and it stays one URL path segment (admin
/// `/stages/{stage}/…`).
pub const ENDPOINT_SEPARATOR: char = '.';

/// The stage folder a runtime stage comes from: `shop` for `shop` and for `shop.admin`.
///
/// Every ProxyEndpoint of one bundle is the same Apigee API proxy deployed to the same
/// environment (apigee-bundles.md §2.3), so their Scope prefixes name this stage (never the
/// endpoint's runtime name) and their policies' entries share its store partition: an
/// Application-scope entry is read by every endpoint of the proxy, as in Apigee.
pub fn folder_stage(name: &str) -> &str {
    name.split_once(ENDPOINT_SEPARATOR).map_or(name, |(s, _)| s)
}

/// Settings from `gateway.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    /// Organisation name in Scope-derived key prefixes.
    pub organization: String,
    /// Proxy listener.
    pub listen: SocketAddr,
    /// Proxy worker threads.
    pub threads: usize,
    /// Whether the proxy's threads share one work-stealing runtime.
    pub work_stealing: bool,
    /// Graceful shutdown period.
    pub grace_period: Duration,
    /// Where listening sockets are handed over on a graceful upgrade.
    pub upgrade_socket: String,
    /// `[server] upstream_ca_file`: the CAs trusted for TLS targets instead of the platform's
    /// roots (checked at load; Pingora reads it at start as `ServerConf.ca_file`).
    pub upstream_ca_file: Option<std::path::PathBuf>,
    /// Size limits checked on every request before anything else.
    pub limits: RequestLimits,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Environment variable with the admin token, if configured.
    pub admin_token_env: Option<String>,
    /// Mutating admin requests accepted per second (and burst).
    pub admin_mutations_per_second: u32,
    /// The shared tier, if configured.
    pub redis: Option<RedisSettings>,
    /// Apigee's environment, when the stages share one (`environment` in gateway.toml).
    pub environment: Option<Environment>,
    /// `[flow_hooks]`: shared flows every stage runs at Apigee's four hook points.
    pub flow_hooks: FlowHooks,
    /// The environment's TargetServers (`[[target_servers]]`), named by LoadBalancers.
    pub target_servers: Vec<TargetServer>,
    /// `[log]`: the access log.
    pub log: crate::runtime::access_log::AccessLogSettings,
}

/// gateway.toml `[flow_hooks]`: the shared flow (by name) each of Apigee's flow hooks runs, in
/// every stage (apigee-bundles.md §4.1, §6). Compiled into each stage's steps at load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowHooks {
    /// Before the ProxyEndpoint's PreFlow request steps.
    pub pre_proxy: Option<String>,
    /// Before each TargetEndpoint's PreFlow request steps.
    pub pre_target: Option<String>,
    /// After each TargetEndpoint's PostFlow response steps.
    pub post_target: Option<String>,
    /// After the ProxyEndpoint's PostFlow response steps.
    pub post_proxy: Option<String>,
}

/// The Apigee environment every stage is deployed to, and its caches.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// Its name (`environment.name`, the second part of Scope prefixes).
    pub name: String,
    /// Its caches: `(name, capacity)`, the default cache first with the name `""`.
    pub caches: Vec<(String, u64)>,
}

impl Environment {
    /// The store partition of cache `resource` (`None` or empty: the default cache). Stage
    /// names never start with `@`, so partitions never collide with a stage's own cache.
    pub fn partition(&self, resource: Option<&str>) -> String {
        crate::runtime::key::env_partition(&self.name, resource)
    }

    /// Whether `resource` names one of its caches.
    pub fn has_cache(&self, resource: &str) -> bool {
        self.caches.iter().any(|(n, _)| n == resource)
    }
}

/// `[server] max_*`: request size limits (reloadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest request target in bytes (`414` beyond).
    pub max_uri_bytes: usize,
    /// Largest total header size in bytes (`431` beyond).
    pub max_header_bytes: usize,
    /// Most header fields (`431` beyond).
    pub max_headers: usize,
    /// From a request's first byte to the end of its header section (`408` beyond).
    pub client_header_timeout: Duration,
    /// Longest wait between two reads of a request body.
    pub client_body_timeout: Duration,
    /// Longest wait for the client to accept more of a response.
    pub client_send_timeout: Duration,
    /// What a request header whose name contains `_` gets.
    pub underscores_in_headers: Underscores,
    /// How long an idle keep-alive connection waits for its next request.
    pub keepalive_timeout: Duration,
    /// Requests one client connection may carry.
    pub keepalive_requests: u32,
}

/// `[server] underscores_in_headers`: what a request header named with `_` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Underscores {
    /// Removed before routing, keying and forwarding (NGINX's default).
    #[default]
    Drop,
    /// `400`.
    Refuse,
    /// Forwarded as it is.
    Allow,
}

/// `[redis]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    /// Connection URL (may contain a password: never log it).
    pub url: String,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Deadline of one lookup.
    pub lookup_timeout: Duration,
    /// Deadline for connecting.
    pub connect_timeout: Duration,
    /// Cap on an entry's life in the local tier when Redis is configured.
    pub max_local_ttl: Duration,
    /// Environment variable with the encryption keys, if configured.
    pub encryption_keys_env: Option<String>,
}

/// One API stage.
#[derive(Debug)]
pub struct Stage {
    /// Folder name; Apigee's "environment".
    pub name: String,
    /// `/prod`, or `/` for a stage that owns the host.
    pub base_path: String,
    /// Apigee's "API proxy" name for key prefixes.
    pub api_name: String,
    /// Revision in Proxy/Target/Exclusive key prefixes.
    pub revision: u32,
    /// Send the client's Host header upstream.
    pub preserve_host: bool,
    /// Declared resource templates, in file order.
    pub resources: Vec<ResourcePattern>,
    /// Stage cache settings.
    pub cache: StageCache,
    /// The ProxyEndpoint's flows.
    pub proxy: Endpoint,
    /// TargetEndpoints: a stage.toml stage has one (`[target_endpoint]`, `default` by name).
    pub targets: Vec<TargetEndpoint>,
    /// RouteRules in order; the first whose condition holds picks the target. A stage.toml
    /// stage has one, to its target.
    pub routes: Vec<RouteRule>,
    /// The ResponseCache policies, compiled.
    pub response_caches: BTreeMap<String, Arc<ResponseCachePolicy>>,
    /// The other policies (run as flow steps), compiled.
    pub step_policies: BTreeMap<String, Arc<StepPolicy>>,
    /// The key of AWS-style stage caching (method + path + declared key parameters).
    pub default_key: KeySpec,
    /// Whether a policy or condition of the stage reads the request body (`request.content`,
    /// `request.formparam.*`, …): only then does the proxy read a body before the policies run.
    pub reads_request_body: bool,
}

impl Stage {
    /// The path suffix after the base path, if `path` is under this stage.
    pub fn strip_base<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.base_path == "/" {
            return Some(path);
        }
        let rest = path.strip_prefix(self.base_path.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// A fingerprint of everything that decides what a stored response means: the cache
    /// settings, the keys and the ResponseCache policies. A reload that changes it flushes the
    /// stage, so no entry is served under semantics it was not stored with (for example a
    /// `key_parameters` change reinterpreting old keys, or a tightened safety setting).
    pub fn cache_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!(
            "{:?}|{:?}|{:?}|{}",
            self.cache, self.default_key, self.response_caches, self.preserve_host
        )
        .hash(&mut h);
        h.finish()
    }

    /// The store partitions this stage's policies may keep entries in for longer than an hour
    /// (see `ResponseCachePolicy::long_lived`): their purge records must live that long too.
    pub fn long_lived_partitions(&self) -> impl Iterator<Item = &str> {
        let responses = self
            .response_caches
            .values()
            .filter(|p| p.long_lived())
            .map(|p| p.common.key.partition());
        let values = self.step_policies.values().filter_map(|p| match &**p {
            StepPolicy::PopulateCache(pc) if pc.long_lived() => Some(pc.common.key.partition()),
            _ => None,
        });
        responses.chain(values)
    }

    /// The names of every policy of this stage, in order.
    pub fn policy_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .response_caches
            .keys()
            .chain(self.step_policies.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// The first declared resource template matching `suffix`.
    pub fn resource_for(&self, suffix: &str) -> Option<&ResourcePattern> {
        let suffix = if suffix.is_empty() { "/" } else { suffix };
        self.resources.iter().find(|r| r.matches(suffix))
    }

    /// The first RouteRule whose condition holds (Apigee: document order, first match wins).
    /// `None`: no rule matched, which is a null route as in Apigee.
    pub fn select_route(&self, vars: &dyn crate::runtime::flow::Variables) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.condition.as_ref().is_none_or(|c| c.eval(vars)))
    }

    /// The TargetEndpoint a request selected (by its route, or on a cache hit the one where
    /// the ResponseCache stores).
    pub fn target_endpoint(&self, sel: &Selection) -> Option<&TargetEndpoint> {
        self.targets.get(sel.target?)
    }

    /// Where a request selected is forwarded: its TargetEndpoint's or its RouteRule's URL.
    /// `None` for a null route (the response is made by the policies).
    pub fn upstream(&self, sel: &Selection) -> Option<&Target> {
        match &self.routes.get(sel.route?)?.to {
            RouteTo::Endpoint(i) => self.targets.get(*i).map(|t| &t.target),
            RouteTo::Url(t) => Some(t),
            RouteTo::Null => None,
        }
    }

    /// The steps one side of a request runs, in Apigee's order, for a request whose choices are
    /// all made. Request: ProxyEndpoint (PreFlow, flow, PostFlow), then the selected
    /// TargetEndpoint's (the same three); response: the TargetEndpoint's, then the
    /// ProxyEndpoint's. (The request side is walked step by step by `engine::walk`, which makes
    /// the choices as it goes.)
    pub fn steps<'a>(&'a self, sel: &Selection, side: Side) -> impl Iterator<Item = &'a Step> + 'a {
        let sel = *sel;
        let target = move |on: bool| {
            self.target_endpoint(&sel)
                .filter(|_| on)
                .map(move |t| t.endpoint.steps(sel.target_flow, side))
                .into_iter()
                .flatten()
        };
        let response = side == Side::Response;
        target(response)
            .chain(self.proxy.steps(sel.flow, side))
            .chain(target(!response))
    }
}

/// What a request selected on its way through a stage: the ProxyEndpoint's conditional flow,
/// the RouteRule, the TargetEndpoint and its conditional flow (indexes into the stage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// The ProxyEndpoint flow.
    pub flow: Option<usize>,
    /// The RouteRule (`None`: none matched — a null route — or not evaluated yet).
    pub route: Option<usize>,
    /// The TargetEndpoint whose steps run.
    pub target: Option<usize>,
    /// The TargetEndpoint flow.
    pub target_flow: Option<usize>,
}

/// One endpoint's flows: Apigee's PreFlow, conditional Flows and PostFlow.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// Endpoint name (`default` for a stage.toml stage).
    pub name: String,
    /// Steps before the matched flow.
    pub preflow: FlowSteps,
    /// Conditional flows, in file order.
    pub flows: Vec<Flow>,
    /// Steps after the matched flow.
    pub postflow: FlowSteps,
    /// FaultRules, in document order (`engine::fault` evaluates a ProxyEndpoint's from the
    /// last, a TargetEndpoint's from the first, as Apigee does).
    pub fault_rules: Vec<FaultRule>,
    /// DefaultFaultRule.
    pub default_fault_rule: Option<FaultRule>,
    /// PostClientFlow response steps: run after the response is sent (a ProxyEndpoint's;
    /// `engine::response::run_post_client_flow`).
    pub post_client_flow: Vec<Step>,
    /// Whether a flow condition reads the response (`response.*`, `message.*`, `error.*`,
    /// `fault.*`, `is.error`, `responsecache.*`): then the response path may choose another flow
    /// than the request did, even when no step changed a variable between them.
    pub flows_read_response: bool,
}

/// A FaultRule or the DefaultFaultRule (apigee-bundles.md §5).
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Name (for logs).
    pub name: String,
    /// When it applies (`None`: always).
    pub condition: Option<Condition>,
    /// Its steps, run on the error response.
    pub steps: Vec<Step>,
    /// DefaultFaultRule `<AlwaysEnforce>`: also after a FaultRule ran.
    pub always_enforce: bool,
}

impl Endpoint {
    /// The first conditional flow whose condition holds (Apigee: first match wins).
    pub fn select_flow(&self, vars: &dyn crate::runtime::flow::Variables) -> Option<usize> {
        self.flows
            .iter()
            .position(|f| f.condition.as_ref().is_none_or(|c| c.eval(vars)))
    }

    /// PreFlow, the flow at `flow`, PostFlow: one side's steps of this endpoint.
    pub fn steps(&self, flow: Option<usize>, side: Side) -> impl Iterator<Item = &Step> + '_ {
        let flow_steps = flow
            .and_then(|i| self.flows.get(i))
            .map_or(&[][..], |f| f.steps.side(side));
        self.preflow
            .side(side)
            .iter()
            .chain(flow_steps)
            .chain(self.postflow.side(side))
    }
}

/// A TargetEndpoint: its flows and where it forwards.
#[derive(Debug, Clone)]
pub struct TargetEndpoint {
    /// Its flows (name included).
    pub endpoint: Endpoint,
    /// The upstream.
    pub target: Target,
}

/// A RouteRule.
#[derive(Debug, Clone)]
pub struct RouteRule {
    /// Name (for messages).
    pub name: String,
    /// `None`: always.
    pub condition: Option<Condition>,
    /// Where it sends the request.
    pub to: RouteTo,
}

/// A RouteRule's destination.
#[derive(Debug, Clone)]
pub enum RouteTo {
    /// A TargetEndpoint of the stage, by index.
    Endpoint(usize),
    /// A URL, bypassing every TargetEndpoint.
    Url(Target),
    /// No target: the policies make the response.
    Null,
}

/// A policy run as a flow step (ResponseCache is run by the cache machinery instead).
#[derive(Debug)]
pub enum StepPolicy {
    /// LookupCache.
    LookupCache(LookupCachePolicy),
    /// PopulateCache.
    PopulateCache(PopulateCachePolicy),
    /// InvalidateCache.
    InvalidateCache(InvalidateCachePolicy),
    /// AssignMessage.
    AssignMessage(AssignMessagePolicy),
    /// FlowCallout: sets its parameters; its shared flow's steps follow it (see [`Step::span`]).
    FlowCallout(FlowCalloutPolicy),
    /// RaiseFault: enters the error flow with the response it builds.
    RaiseFault(AssignMessagePolicy),
}

/// A FlowCallout ready to run: the shared flow's steps are compiled in place after its step.
#[derive(Debug)]
pub struct FlowCalloutPolicy {
    /// Policy name.
    pub name: String,
    /// `enabled` attribute.
    pub enabled: bool,
    /// `continueOnError` attribute.
    pub continue_on_error: bool,
    /// The shared flow it runs (for messages and `explain`).
    pub shared_flow: String,
    /// `<Parameter>`s: `(variable, ref, literal)`, set in order before the shared flow runs.
    pub parameters: Vec<(String, Option<String>, Option<String>)>,
}

/// An AssignMessage ready to run.
#[derive(Debug)]
pub struct AssignMessagePolicy {
    /// Policy name.
    pub name: String,
    /// `enabled` attribute.
    pub enabled: bool,
    /// `continueOnError` attribute.
    pub continue_on_error: bool,
    /// The compiled changes.
    pub assign: CompiledAssignMessage,
}

impl StepPolicy {
    /// The policy's name.
    pub fn name(&self) -> &str {
        match self {
            StepPolicy::LookupCache(p) => &p.common.name,
            StepPolicy::PopulateCache(p) => &p.common.name,
            StepPolicy::InvalidateCache(p) => &p.common.name,
            StepPolicy::AssignMessage(p) => &p.name,
            StepPolicy::FlowCallout(p) => &p.name,
            StepPolicy::RaiseFault(p) => &p.name,
        }
    }

    /// `enabled` attribute.
    pub fn enabled(&self) -> bool {
        match self {
            StepPolicy::LookupCache(p) => p.common.enabled,
            StepPolicy::PopulateCache(p) => p.common.enabled,
            StepPolicy::InvalidateCache(p) => p.common.enabled,
            StepPolicy::AssignMessage(p) => p.enabled,
            StepPolicy::FlowCallout(p) => p.enabled,
            StepPolicy::RaiseFault(p) => p.enabled,
        }
    }

    /// `continueOnError` attribute.
    pub fn continue_on_error(&self) -> bool {
        match self {
            StepPolicy::LookupCache(p) => p.common.continue_on_error,
            StepPolicy::PopulateCache(p) => p.common.continue_on_error,
            StepPolicy::InvalidateCache(p) => p.common.continue_on_error,
            StepPolicy::AssignMessage(p) => p.continue_on_error,
            StepPolicy::FlowCallout(p) => p.continue_on_error,
            StepPolicy::RaiseFault(p) => p.continue_on_error,
        }
    }
}

/// `[cache]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct StageCache {
    /// Stage caching on.
    pub enabled: bool,
    /// How stage caching decides freshness.
    pub mode: CacheMode,
    /// Default TTL in seconds (0 = off).
    pub ttl_secs: u64,
    /// Local tier bytes.
    pub capacity: u64,
    /// Largest stored body.
    pub max_object_size: u64,
    /// Encrypt in the shared tier.
    pub encrypted: bool,
    /// `aws` mode: forward query parameters that are not in the key (`unkeyed_query =
    /// "forward"`) instead of only the declared ones.
    pub forward_unkeyed_query: bool,
    /// Declared key parameters.
    pub key_parameters: Vec<KeyParameter>,
    /// Stale-while-revalidate window, seconds.
    pub stale_while_revalidate_secs: u64,
    /// Stale-if-error window, seconds.
    pub stale_if_error_secs: u64,
    /// `mode = "http"`: how long an entry with a validator is kept past its stale windows, for
    /// revalidation, seconds.
    pub revalidate_keep_secs: u64,
    /// How long a request waits for another one filling the same entry.
    pub lock_timeout: Duration,
    /// Store responses with `Set-Cookie`.
    pub allow_set_cookie: bool,
    /// Store `private` / `no-store` responses.
    pub allow_private: bool,
    /// Cache requests with `Cookie` (not keyed by it).
    pub allow_cookie: bool,
    /// Cache requests with `Authorization` (keyed by it).
    pub allow_authorization: bool,
    /// http mode: the targeted cache-control fields (RFC 9213) read in this order, lower-case.
    pub targeted_cache_control: Vec<http::HeaderName>,
    /// http mode: request `Cache-Control`/`Pragma` directives are ignored (else honoured, see
    /// `engine::request_directives`).
    pub ignore_request_directives: bool,
    /// Method overrides, most specific first.
    pub overrides: Vec<MethodOverride>,
    /// Client invalidation settings.
    pub invalidation: InvalidationSettings,
}

/// How stage caching decides what to store and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// AWS API Gateway: the stage (or override) TTL, keys from declared parameters.
    Aws,
    /// RFC 9111 shared cache: freshness from the target's headers, keys on the whole URI.
    Http,
}

/// `[[cache.method]]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodOverride {
    /// Resource pattern.
    pub resource: ResourcePattern,
    /// Upper-case method, or `None` for `*`.
    pub method: Option<String>,
    /// Caching on/off for matches.
    pub caching: Option<bool>,
    /// TTL for matches.
    pub ttl_secs: Option<u64>,
    /// Encryption for matches.
    pub encrypted: Option<bool>,
}

/// What an unauthorized `Cache-Control: max-age=0` request gets (AWS
/// `unauthorizedCacheControlHeaderStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnauthorizedStrategy {
    /// 403 with a JSON body; nothing is fetched.
    FailWith403,
    /// Served as if the header were absent, with a warning header.
    SucceedWithResponseHeader,
    /// Served as if the header were absent.
    SucceedWithoutResponseHeader,
}

/// `[cache.invalidation]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidationSettings {
    /// Tokens required.
    pub require_authorization: bool,
    /// Unauthorized handling.
    pub unauthorized: UnauthorizedStrategy,
    /// Usable grants (grants whose token variable is unset are left out, with a warning).
    pub grants: Vec<Grant>,
}

/// One invalidation grant.
#[derive(Clone, PartialEq)]
pub struct Grant {
    /// Name for audit logs.
    pub name: String,
    /// SHA-256 of the token: tokens are compared as digests, in constant time.
    pub token_sha256: [u8; 32],
    /// `(method or None for *, path glob)` pairs.
    pub resources: Vec<(Option<String>, String)>,
}

impl std::fmt::Debug for Grant {
    /// Never prints the digest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("name", &self.name)
            .field("resources", &self.resources)
            .finish()
    }
}

/// Steps of a pre- or post-flow.
#[derive(Debug, Clone, Default)]
pub struct FlowSteps {
    /// Request steps, in order.
    pub request: Vec<Step>,
    /// Response steps, in order.
    pub response: Vec<Step>,
}

impl FlowSteps {
    /// One side's steps.
    pub fn side(&self, side: Side) -> &[Step] {
        match side {
            Side::Request => &self.request,
            Side::Response => &self.response,
        }
    }
}

/// Which side of the exchange a step runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Before the target is called (and before the cache lookup).
    Request,
    /// On the response, for hits and misses alike.
    Response,
}

/// A conditional flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Name (metrics label).
    pub name: String,
    /// Selection condition; `None` = always.
    pub condition: Option<Condition>,
    /// The flow's steps.
    pub steps: FlowSteps,
}

/// A step: a policy, optionally conditional.
///
/// A FlowCallout's shared flow is compiled in place: the FlowCallout step is followed by the
/// shared flow's steps (`span` of them, nested callouts included), whose policies are named
/// `<shared flow>/<policy>` in the stage. The FlowCallout's condition is evaluated once, as in
/// Apigee: when it does not hold, or the FlowCallout is disabled, the `span` steps are passed.
#[derive(Debug, Clone)]
pub struct Step {
    /// Policy name (exists in the stage: checked at load).
    pub policy: String,
    /// Step condition.
    pub condition: Option<Condition>,
    /// How many of the following steps belong to this step's shared flow (0 for any other
    /// policy).
    pub span: usize,
    /// For a step of a shared flow: when it fails without `continueOnError` and a FlowCallout
    /// around it has `continueOnError="true"`, how many following steps to pass to leave the
    /// innermost such callout (Apigee: a fault in a shared flow is a fault of the FlowCallout
    /// step). `None`: the fault ends the request.
    pub escape: Option<usize>,
}

/// `method` below is the method a request is cached under (a HEAD is already GET: it is
/// answered from the GET's entry, see `engine::facts::cache_method`).
impl StageCache {
    /// The overrides matching `method` and `suffix`, most specific first.
    fn matching<'a>(
        &'a self,
        method: &'a str,
        suffix: &'a str,
    ) -> impl Iterator<Item = &'a MethodOverride> + 'a {
        let path = if suffix.is_empty() { "/" } else { suffix };
        self.overrides.iter().filter(move |o| {
            o.method.as_deref().is_none_or(|m| m == method) && o.resource.matches(path)
        })
    }

    /// Whether requests with `method` on `suffix` may be cached: GET and HEAD by default, any
    /// method when the most specific override that says so allows it (AWS method settings).
    /// Each attribute falls through to the next matching override that sets it.
    pub fn caching_allowed(&self, method: &str, suffix: &str) -> bool {
        self.matching(method, suffix)
            .find_map(|o| o.caching)
            .unwrap_or(method == "GET")
    }

    /// The override TTL for `method` on `suffix`, if one sets it.
    pub fn override_ttl(&self, method: &str, suffix: &str) -> Option<u64> {
        self.matching(method, suffix).find_map(|o| o.ttl_secs)
    }

    /// The targeted field that names cachegate itself (`runtime::targeted::own_field`), in http
    /// mode: removed from every response before it is forwarded or stored.
    pub fn own_targeted_field(&self) -> Option<&http::HeaderName> {
        (self.mode == CacheMode::Http)
            .then(|| crate::runtime::targeted::own_field(&self.targeted_cache_control))
            .flatten()
    }

    /// Whether entries for `method` on `suffix` are encrypted in the shared tier.
    pub fn encrypted_for(&self, method: &str, suffix: &str) -> bool {
        self.matching(method, suffix)
            .find_map(|o| o.encrypted)
            .unwrap_or(self.encrypted)
    }
}
