//! Cache keys: Apigee's readable `prefix__fragment__…` strings and collision-free storage keys.
//!
//! A policy's `<CacheKey>` + `<Scope>` (or a stage's AWS key parameters) is compiled once into a
//! [`KeySpec`]; per request, [`KeySpec::build`] evaluates it into a [`BuiltKey`] with two views:
//!
//! - `readable`: Apigee's string (`org__env__api__1__default__frag__frag`). It is what users see
//!   in `responsecache.<name>.cachekey`, but it is ambiguous (`"a__b" + "c"` reads like
//!   `"a" + "b__c"`), so it never identifies an entry.
//! - `framed`: every component that identifies the entry, each length-framed, preceded by
//!   [`KEY_SCHEMA_VERSION`]. Its SHA-256 (first 16 bytes) is the [`StoreKey`].
//!
//! Framing layout (all lengths big-endian; a string is framed as `u32 len ‖ bytes`, with the
//! escape `0xFFFF_FFFF ‖ u64 len ‖ bytes` for strings of 4 GiB or more, so no length is ever
//! truncated):
//!
//! ```text
//! version(1) ‖ namespace('R'|'V') ‖ str(stage) ‖ (0x00 | 0x01 ‖ str(cache resource))
//!   ‖ ('P' ‖ str(<Prefix>) | 'S' ‖ u32 count ‖ str(part)… | 'A')      — prefix kind
//!   ‖ (0x00 | 0x01 ‖ str(value))…                                     — each fragment
//!   ‖ [0x02 | 0x03 ‖ str(authorization)]                              — only with_authorization
//! ```
//!
//! Every item is self-delimiting, so the encoding is injective: an unresolved fragment (`0x00`)
//! differs from an empty one (`0x01 ‖ 0`), and no choice of separators inside values can make two
//! different keys frame alike. Scope-derived prefixes are framed by their *parts*, not by the
//! scope's name, so scopes that Apigee spells identically (Exclusive = Proxy; Target = Proxy
//! because both endpoints are called `default`) share entries exactly as they would in Apigee.

use crate::runtime::key_bytes::{framed_len, push_fragment, push_len, push_str};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::runtime::flow::Variables;

/// `<Scope>`: how the key prefix is built when `<Prefix>` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// `org__env__`: shared by every API in the stage.
    Global,
    /// `org__env__api__`: shared by every flow of the stage's API.
    Application,
    /// `org__env__api__revision__proxyEndpoint__`.
    Proxy,
    /// `org__env__api__revision__targetEndpoint__`.
    Target,
    /// The narrowest (default): like Proxy, or Target when attached on the target side.
    #[default]
    Exclusive,
}

impl Scope {
    /// All scopes, in Apigee's documentation order.
    pub const ALL: [Scope; 5] = [
        Scope::Global,
        Scope::Application,
        Scope::Proxy,
        Scope::Target,
        Scope::Exclusive,
    ];

    /// Apigee's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "Global",
            Scope::Application => "Application",
            Scope::Proxy => "Proxy",
            Scope::Target => "Target",
            Scope::Exclusive => "Exclusive",
        }
    }

    /// Parses Apigee's spelling (exact case, as Apigee requires).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A 16-byte storage key: a hash of the length-framed key material (see `key.rs`). The store
/// never sees the readable key, so nothing secret or user-controlled ends up in its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(pub [u8; 16]);

impl StoreKey {
    /// Lower-case hex, for Redis keys and logs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A declared cache key parameter (`method.request.<kind>.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParameter {
    /// `method.request.querystring.<name>`
    Query(String),
    /// `method.request.header.<name>` (stored lower-case)
    Header(String),
    /// `method.request.path.<name>`
    Path(String),
}

/// Version of the framing layout; bump it whenever the layout or the meaning of a component
/// changes, so entries written by an older gateway (e.g. in the shared Redis tier) are never
/// misread as matches.
pub const KEY_SCHEMA_VERSION: u8 = 1;

/// Apigee's limit on a cache key (its readable string), in bytes: a longer key is neither looked
/// up nor stored.
pub const MAX_KEY_BYTES: usize = 2048;

/// Apigee's separator between prefix parts and fragments.
const SEPARATOR: &str = "__";
/// Separator of the AWS readable key (`GET /items/7 type=admin`).
const AWS_SEPARATOR: &str = " ";
/// Apigee's default endpoint name: a stage.toml stage's ProxyEndpoint and TargetEndpoint.
pub const DEFAULT_ENDPOINT: &str = "default";
/// Variable holding the request's Authorization header.
const AUTHORIZATION_VAR: &str = "request.header.authorization";
/// Headers `<UseAcceptHeader>` appends to the key, in Apigee's order.
const ACCEPT_HEADERS: [&str; 4] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
];

/// Fragment markers in the framing.
const ABSENT: u8 = 0x00;
const PRESENT: u8 = 0x01;
/// Stands in for the namespace tag when hashing key prefixes for purges (see
/// `BuiltKey::prefix_hashes`).
const NEUTRAL_NAMESPACE: u8 = 0xff;
const AUTH_ABSENT: u8 = 0x02;
const AUTH_PRESENT: u8 = 0x03;

/// Which family of entries a key addresses. ResponseCache stores whole responses while
/// LookupCache/PopulateCache store flow-variable values: the same `<CacheKey>` in both must not
/// return a response body as a variable value (or the reverse), so the namespace is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// ResponseCache entries (and AWS stage caching).
    Response,
    /// LookupCache / PopulateCache / InvalidateCache values.
    Value,
    /// Stage caching in `http` (RFC 9111) mode: its own namespace, so it can never share
    /// entries with a ResponseCache whose key happens to frame the same way.
    Standard,
}

impl Namespace {
    /// The framing tag.
    fn tag(self) -> u8 {
        match self {
            Namespace::Response => b'R',
            Namespace::Value => b'V',
            Namespace::Standard => b'H',
        }
    }
}

/// Where a policy runs, for Scope-derived prefixes: Apigee's org, environment, API proxy and
/// revision, mapped to the gateway organization, the stage name, its `api_name` and `revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeContext<'a> {
    /// Gateway `organization` (Apigee org).
    pub organization: &'a str,
    /// Stage name (Apigee environment).
    pub stage: &'a str,
    /// Stage `api_name` (Apigee API proxy name).
    pub api_name: &'a str,
    /// Stage `revision` (Apigee deployed revision).
    pub revision: u32,
    /// The ProxyEndpoint's name (Proxy scope).
    pub proxy_endpoint: &'a str,
    /// The TargetEndpoint's name (Target scope).
    pub target_endpoint: &'a str,
    /// The policy is attached on the TargetEndpoint: Exclusive then names it instead of the
    /// ProxyEndpoint.
    pub on_target: bool,
    /// The environment the stages share (gateway.toml `environment`): it replaces the stage as
    /// Apigee's environment in prefixes, and the policy's entries live in the environment's
    /// caches instead of the stage's.
    pub environment: Option<&'a str>,
}

/// The store partition of an environment cache (`None` or empty: the default cache). Stage
/// names never start with `@`, so an environment cache never shares a partition with a stage.
pub fn env_partition(environment: &str, resource: Option<&str>) -> String {
    match resource.filter(|r| !r.is_empty()) {
        None => format!("@{environment}"),
        Some(r) => format!("@{environment}/{r}"),
    }
}

/// The environment and cache (`""`: the default cache) of an [`env_partition`]; `None` for a
/// stage's own partition (metrics label the two apart).
pub fn env_partition_parts(partition: &str) -> Option<(&str, &str)> {
    let rest = partition.strip_prefix('@')?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// How the readable key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `prefix__frag__frag`.
    Apigee,
    /// `GET /path name=value header.x=value`.
    Aws,
}

/// Where a fragment's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A literal-only fragment: a constant.
    Const(String),
    /// A variable, with the literal as the fallback when it does not resolve.
    Ref {
        /// Variable name.
        name: String,
        /// Literal text used when the variable does not resolve.
        fallback: Option<String>,
    },
}

/// One compiled fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FragmentSpec {
    /// Where the value comes from.
    source: Source,
    /// Text written before the value in the readable key (AWS: `type=`), if any.
    label: Option<String>,
    /// Whether an unresolved value is reported in [`BuiltKey::unresolved`]. Implicit fragments
    /// (Accept headers) are commonly absent and are not reported.
    report_unresolved: bool,
}

impl FragmentSpec {
    /// A fragment read from variable `name`, without fallback.
    fn var(name: String, label: Option<String>, report_unresolved: bool) -> Self {
        Self {
            source: Source::Ref {
                name,
                fallback: None,
            },
            label,
            report_unresolved,
        }
    }

    /// Compiles one `<KeyFragment>`. An empty `ref` counts as absent; a fragment with neither a
    /// ref nor text is the constant empty string (present, empty), so it is stable.
    fn from_model(reference: Option<&str>, literal: Option<&str>) -> Self {
        let source = match reference.filter(|r| !r.is_empty()) {
            Some(name) => Source::Ref {
                name: name.to_owned(),
                fallback: literal.map(str::to_owned),
            },
            None => Source::Const(literal.unwrap_or_default().to_owned()),
        };
        Self {
            source,
            label: None,
            report_unresolved: true,
        }
    }

    /// The fragment's value for this request; `None` = unresolved.
    fn resolve(&self, vars: &dyn Variables) -> Option<String> {
        match &self.source {
            Source::Const(v) => Some(v.clone()),
            Source::Ref { name, fallback } => vars
                .get(name)
                .map(Cow::into_owned)
                .or_else(|| fallback.clone()),
        }
    }

    /// Whether the fragment reads a value the gateway did not read (see
    /// [`Variables::withheld`]); its literal fallback does not stand in for it.
    fn withheld(&self, vars: &dyn Variables) -> bool {
        matches!(&self.source, Source::Ref { name, .. } if vars.withheld(name))
    }

    /// Whether the fragment reads the request body.
    fn reads_request_body(&self) -> bool {
        matches!(&self.source, Source::Ref { name, .. }
            if crate::runtime::flow::vars::reads_request_body(name, true))
    }

    /// The name reported when the fragment does not resolve.
    fn name(&self) -> &str {
        match &self.source {
            Source::Const(v) => v,
            Source::Ref { name, .. } => name,
        }
    }
}

/// What a key is built from, compiled once per policy (or stage) at load time so that `build`
/// only resolves variables and copies bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// Response or value entries.
    namespace: Namespace,
    /// How the readable key is written.
    style: Style,
    /// The store partition its entries live in: the stage, or an environment cache.
    partition: Arc<str>,
    /// Constant framed bytes: version, namespace, partition, cache resource, prefix.
    framed_head: Vec<u8>,
    /// Constant start of the readable key (the prefix parts joined; empty for AWS).
    readable_head: String,
    /// Fragments, in order.
    fragments: Vec<FragmentSpec>,
    /// `with_accept_headers` was applied (makes it idempotent).
    accept_headers: bool,
    /// `with_authorization` was applied.
    authorization: bool,
}

/// The key prefix before compilation.
enum Prefix<'a> {
    /// `<Prefix>`, replacing the scope prefix.
    Custom(&'a str),
    /// Scope-derived parts.
    Parts(Vec<String>),
    /// AWS stage caching: no prefix beyond the stage.
    Aws,
}

impl KeySpec {
    /// Compiles a policy's `<CacheKey>` + `<Scope>`. `cache_resource` names a separate cache
    /// within the stage: it is part of the storage key but not of Apigee's string. A non-empty
    /// `<Prefix>` replaces the Scope prefix (as in Apigee); an empty `<CacheResource>` means the
    /// stage's default cache.
    pub fn from_policy(
        ns: Namespace,
        prefix: Option<&str>,
        fragments: &[(Option<&str>, Option<&str>)],
        scope: Scope,
        cache_resource: Option<&str>,
        ctx: &ScopeContext,
    ) -> KeySpec {
        let custom = prefix.filter(|p| !p.is_empty());
        let prefix = match custom {
            Some(p) => Prefix::Custom(p),
            None => Prefix::Parts(scope_parts(scope, ctx)),
        };
        // In an environment the cache resource picks the partition; within a stage it is
        // framed into the key.
        let (partition, framed_resource) = match ctx.environment {
            Some(env) => (env_partition(env, cache_resource), None),
            None => (ctx.stage.to_owned(), cache_resource),
        };
        let readable_head = match &prefix {
            Prefix::Custom(p) => (*p).to_owned(),
            Prefix::Parts(parts) => parts.join(SEPARATOR),
            Prefix::Aws => String::new(),
        };
        let fragments = fragments
            .iter()
            .map(|(reference, literal)| FragmentSpec::from_model(*reference, *literal))
            .collect();
        KeySpec {
            namespace: ns,
            style: Style::Apigee,
            framed_head: framed_head(ns, &partition, framed_resource, &prefix),
            partition: Arc::from(partition),
            readable_head,
            fragments,
            accept_headers: false,
            authorization: false,
        }
    }

    /// AWS stage caching's default key: the method, the concrete request path relative to the
    /// base path (`proxy.pathsuffix`), then only the declared key parameters — undeclared query
    /// strings and headers never split (or poison) the cache, as in API Gateway. The stage is
    /// framed so stages never share entries. Readable form: `GET /items/7 type=admin
    /// header.x-tenant=acme path.id=7` (query parameters bare, headers and path parameters with
    /// their kind; unresolved parameters omitted).
    pub fn aws_default(stage: &str, key_parameters: &[KeyParameter]) -> KeySpec {
        let mut fragments = Vec::with_capacity(2 + key_parameters.len());
        fragments.push(FragmentSpec::var("request.verb".to_owned(), None, true));
        fragments.push(FragmentSpec::var("proxy.pathsuffix".to_owned(), None, true));
        fragments.extend(key_parameters.iter().map(|p| {
            let (var, label) = match p {
                KeyParameter::Query(n) => (format!("request.queryparam.{n}"), format!("{n}=")),
                KeyParameter::Header(n) => (format!("request.header.{n}"), format!("header.{n}=")),
                KeyParameter::Path(n) => (format!("request.path.{n}"), format!("path.{n}=")),
            };
            FragmentSpec::var(var, Some(label), true)
        }));
        KeySpec {
            namespace: Namespace::Response,
            style: Style::Aws,
            framed_head: framed_head(Namespace::Response, stage, None, &Prefix::Aws),
            partition: Arc::from(stage),
            readable_head: String::new(),
            fragments,
            accept_headers: false,
            authorization: false,
        }
    }

    /// Appends ResponseCache's `<UseAcceptHeader>` fragments: the request's `Accept`,
    /// `Accept-Encoding`, `Accept-Language` and `Accept-Charset` values, so differently
    /// negotiated representations get separate entries. Absent headers are unresolved fragments
    /// (framed as absent, omitted from the readable key) but are not listed in
    /// [`BuiltKey::unresolved`], since they are routinely missing. Applying it twice is a no-op.
    pub fn with_accept_headers(mut self) -> KeySpec {
        if self.accept_headers {
            return self;
        }
        self.accept_headers = true;
        let style = self.style;
        self.fragments.extend(ACCEPT_HEADERS.iter().map(|h| {
            let label = (style == Style::Aws).then(|| format!("header.{h}="));
            FragmentSpec::var(format!("request.header.{h}"), label, false)
        }));
        self
    }

    /// Adds the request's Authorization header to the key (a stage that opts in to caching
    /// authorized requests), so different callers never share entries. It is framed with its own
    /// markers after the fragments but is a secret: it appears neither in `readable` nor in
    /// `fragments`, and its absence is not reported as unresolved.
    pub fn with_authorization(mut self) -> KeySpec {
        self.authorization = true;
        self
    }

    /// The namespace the key addresses.
    /// The query parameters the key reads (`request.queryparam.{name}` fragments).
    pub fn query_params(&self) -> impl Iterator<Item = &str> {
        self.fragments.iter().filter_map(|f| match &f.source {
            Source::Ref { name, .. } => name.strip_prefix("request.queryparam."),
            Source::Const(_) => None,
        })
    }

    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    /// The same key in another namespace (an InvalidateCache removes both the response and the
    /// value stored under one `<CacheKey>`).
    pub fn with_namespace(mut self, ns: Namespace) -> KeySpec {
        self.namespace = ns;
        if let Some(tag) = self.framed_head.get_mut(1) {
            *tag = ns.tag();
        }
        self
    }

    /// A key from explicit fragment values instead of variables (the admin API: "invalidate the
    /// entry whose fragments are …"). `values` may be shorter than the spec's fragment list: the
    /// key then stands for a prefix of keys (for purging children).
    pub fn build_values(&self, values: Vec<Option<String>>) -> BuiltKey {
        let (framed, fragment_ends) = self.framed(&values, None);
        BuiltKey {
            readable: self.readable(&values),
            framed,
            fragments: values,
            unresolved: Vec::new(),
            withheld: false,
            head_len: self.framed_head.len(),
            fragment_ends,
            partition: Arc::clone(&self.partition),
        }
    }

    /// Names of the request headers the key reads (`request.header.<name>` fragments, lower
    /// case), plus `authorization` when it is keyed. An authorized refresh forwards only these.
    pub fn header_inputs(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .fragments
            .iter()
            .filter_map(|f| match &f.source {
                Source::Ref { name, .. } => name
                    .strip_prefix("request.header.")
                    .map(str::to_ascii_lowercase),
                Source::Const(_) => None,
            })
            .collect();
        if self.authorization {
            out.push("authorization".to_owned());
        }
        out
    }

    /// Number of fragments a built key has (without the Accept headers' extra fragments).
    pub fn fragment_count(&self) -> usize {
        self.fragments.len()
    }

    /// Whether a fragment reads the request body (`request.content`, `request.formparam.*`):
    /// only then may a request with a body be keyed at all (see `engine::plan`).
    pub fn reads_request_body(&self) -> bool {
        self.fragments.iter().any(|f| f.reads_request_body())
    }

    /// Whether a fragment reading the request body has a value of its own for this request (a
    /// literal fallback does not count): only then does the body tell the key apart from a
    /// request without one, whose body fragments are all unresolved.
    pub fn keys_request_body(&self, vars: &dyn Variables) -> bool {
        self.fragments.iter().any(|f| {
            f.reads_request_body()
                && matches!(&f.source, Source::Ref { name, .. } if vars.get(name).is_some())
        })
    }

    /// Evaluates the spec against a request's variables. Unresolved fragments are left out of
    /// the readable key (as Apigee does) but framed as absent, so a request lacking a header never
    /// shares an entry with one whose header is empty.
    pub fn build(&self, vars: &dyn Variables) -> BuiltKey {
        let mut fragments = Vec::with_capacity(self.fragments.len());
        let mut unresolved = Vec::new();
        for spec in &self.fragments {
            let value = spec.resolve(vars);
            if value.is_none() && spec.report_unresolved {
                unresolved.push(spec.name().to_owned());
            }
            fragments.push(value);
        }
        let authorization = if self.authorization {
            Some(vars.get(AUTHORIZATION_VAR))
        } else {
            None
        };
        let (framed, fragment_ends) = self.framed(&fragments, authorization.as_ref());
        BuiltKey {
            readable: self.readable(&fragments),
            framed,
            withheld: self.fragments.iter().any(|f| f.withheld(vars)),
            fragments,
            unresolved,
            head_len: self.framed_head.len(),
            fragment_ends,
            partition: Arc::clone(&self.partition),
        }
    }

    /// The store partition the key's entries live in (a stage, or an environment cache).
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// Apigee's string: the head, then each resolved fragment (with its label), separated.
    fn readable(&self, values: &[Option<String>]) -> String {
        let sep = match self.style {
            Style::Apigee => SEPARATOR,
            Style::Aws => AWS_SEPARATOR,
        };
        let resolved = || {
            self.fragments
                .iter()
                .zip(values)
                .filter_map(|(spec, v)| v.as_deref().map(|v| (spec.label.as_deref(), v)))
        };
        let capacity = self.readable_head.len()
            + resolved()
                .map(|(label, v)| sep.len() + label.map_or(0, str::len) + v.len())
                .sum::<usize>();
        let mut out = String::with_capacity(capacity);
        out.push_str(&self.readable_head);
        let mut first = self.readable_head.is_empty();
        for (label, v) in resolved() {
            if !first {
                out.push_str(sep);
            }
            first = false;
            out.push_str(label.unwrap_or_default());
            out.push_str(v);
        }
        out
    }

    /// The framed bytes: the precomputed head, each fragment, then the authorization (if any).
    fn framed(
        &self,
        values: &[Option<String>],
        authorization: Option<&Option<Cow<'_, str>>>,
    ) -> (Vec<u8>, Vec<usize>) {
        let fragment_len = |v: Option<&str>| 1 + v.map_or(0, |v| framed_len(v.len()));
        let capacity = self.framed_head.len()
            + values
                .iter()
                .map(|v| fragment_len(v.as_deref()))
                .sum::<usize>()
            + authorization.map_or(0, |a| fragment_len(a.as_deref()));
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&self.framed_head);
        let mut ends = Vec::with_capacity(values.len());
        for v in values {
            push_fragment(&mut out, v.as_deref(), ABSENT, PRESENT);
            ends.push(out.len());
        }
        if let Some(a) = authorization {
            push_fragment(&mut out, a.as_deref(), AUTH_ABSENT, AUTH_PRESENT);
        }
        (out, ends)
    }
}

/// The Scope → prefix parts table (shared reference §1.2). Exclusive names the endpoint the
/// policy is attached on.
fn scope_parts(scope: Scope, ctx: &ScopeContext) -> Vec<String> {
    let env = ctx.environment.unwrap_or(ctx.stage);
    let mut parts = vec![ctx.organization.to_owned(), env.to_owned()];
    if scope == Scope::Global {
        return parts;
    }
    parts.push(ctx.api_name.to_owned());
    if scope == Scope::Application {
        return parts;
    }
    parts.push(ctx.revision.to_string());
    parts.extend(ctx.endpoint_named(scope).map(str::to_owned));
    parts
}

impl ScopeContext<'_> {
    /// The endpoint a `scope` prefix names (shared reference §1.2): the ProxyEndpoint for Proxy,
    /// the TargetEndpoint for Target, the endpoint the policy runs in for Exclusive; none for
    /// Global and Application, whose entries do not depend on where the policy runs.
    pub fn endpoint_named(&self, scope: Scope) -> Option<&str> {
        match scope {
            Scope::Global | Scope::Application => None,
            Scope::Proxy => Some(self.proxy_endpoint),
            Scope::Target => Some(self.target_endpoint),
            Scope::Exclusive if self.on_target => Some(self.target_endpoint),
            Scope::Exclusive => Some(self.proxy_endpoint),
        }
    }
}

/// The constant framed bytes of a spec.
fn framed_head(
    ns: Namespace,
    stage: &str,
    cache_resource: Option<&str>,
    prefix: &Prefix,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(KEY_SCHEMA_VERSION);
    out.push(ns.tag());
    push_str(&mut out, stage);
    match cache_resource.filter(|r| !r.is_empty()) {
        None => out.push(0x00),
        Some(r) => {
            out.push(0x01);
            push_str(&mut out, r);
        }
    }
    match prefix {
        Prefix::Custom(p) => {
            out.push(b'P');
            push_str(&mut out, p);
        }
        Prefix::Parts(parts) => {
            out.push(b'S');
            push_len(&mut out, parts.len());
            for p in parts {
                push_str(&mut out, p);
            }
        }
        Prefix::Aws => out.push(b'A'),
    }
    out
}

/// A key evaluated for one request.
#[derive(Clone, PartialEq, Eq)]
pub struct BuiltKey {
    /// Apigee's readable key string (`prefix__frag__frag`), shown in
    /// `responsecache.<name>.cachekey`. Informational only: it is ambiguous, never hashed.
    pub readable: String,
    /// Length-framed, versioned bytes of everything that identifies the entry (see the module
    /// docs). This is what gets hashed. May contain the Authorization header: never log it.
    pub framed: Vec<u8>,
    /// The fragment values in order (for PurgeChildEntries); `None` = unresolved. Excludes the
    /// Authorization header.
    pub fragments: Vec<Option<String>>,
    /// Variable names of fragments that did not resolve (for IgnoreUnresolvedVariables and
    /// diagnostics); literal fallbacks count as resolved.
    pub unresolved: Vec<String>,
    /// A fragment reads a request body the gateway did not read (longer than it reads ahead):
    /// every such request would get the same key whatever its body, so none is looked up or
    /// stored under it (as for a key over 2 KB).
    pub withheld: bool,
    /// Length of the framed head (everything before the first fragment).
    pub head_len: usize,
    /// Offset in `framed` just after each fragment.
    pub fragment_ends: Vec<usize>,
    /// The store partition (see [`KeySpec::partition`]).
    partition: Arc<str>,
}

impl BuiltKey {
    /// Whether the key is over Apigee's 2 KB limit ([`MAX_KEY_BYTES`]).
    pub fn too_long(&self) -> bool {
        self.readable.len() > MAX_KEY_BYTES
    }

    /// The store partition the entry lives in: the stage, or an environment cache.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// Appends a value that is not a fragment (e.g. the `Host` of a stage that forwards it) to
    /// the framed key, after everything else, under its own `tag`. Prefix hashes are unchanged.
    pub fn append_extra(&mut self, tag: u8, value: Option<&str>) {
        match value {
            None => self.framed.push(tag),
            Some(v) => {
                self.framed.push(tag.wrapping_add(1));
                push_str(&mut self.framed, v);
            }
        }
    }

    /// Hashes of the key's prefixes: the head (namespace-neutral: namespace, stage, cache
    /// resource, prefix) and the head followed by the first 1, 2, … n fragments. A purge of a key
    /// with PurgeChildEntries records the hash of its full fragment list, which is one of the
    /// prefixes of every child entry's key. Namespace-neutral, so an InvalidateCache reaches
    /// ResponseCache entries and LookupCache/PopulateCache values alike (Apigee has one cache).
    pub fn prefix_hashes(&self) -> Vec<[u8; 16]> {
        let mut out = Vec::with_capacity(self.fragment_ends.len() + 1);
        let mut neutral = self.framed.clone();
        if let Some(ns) = neutral.get_mut(1) {
            *ns = NEUTRAL_NAMESPACE;
        }
        let mut hash_upto = |end: usize| {
            let digest = Sha256::digest(neutral.get(..end).unwrap_or(&neutral));
            let mut key = [0u8; 16];
            for (k, d) in key.iter_mut().zip(digest.iter()) {
                *k = *d;
            }
            out.push(key);
        };
        hash_upto(self.head_len);
        for &end in &self.fragment_ends {
            hash_upto(end);
        }
        out
    }

    /// The hash of the full fragment list (the last of [`BuiltKey::prefix_hashes`]): what a
    /// purge of this key and its children records.
    pub fn children_hash(&self) -> [u8; 16] {
        self.prefix_hashes().pop().unwrap_or([0; 16])
    }

    /// The storage key: the first 16 bytes of SHA-256(`framed`). 128 bits keep accidental
    /// collisions out of reach while halving the index size of a full digest.
    pub fn store_key(&self) -> StoreKey {
        let digest = Sha256::digest(&self.framed);
        let mut key = [0u8; 16];
        for (k, d) in key.iter_mut().zip(digest.iter()) {
            *k = *d;
        }
        StoreKey(key)
    }
}

impl fmt::Debug for BuiltKey {
    /// Leaves out `framed`, which may carry the Authorization header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltKey")
            .field("readable", &self.readable)
            .field("store_key", &self.store_key().to_hex())
            .field("fragments", &self.fragments)
            .field("unresolved", &self.unresolved)
            .finish()
    }
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
