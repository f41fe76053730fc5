//! The TOML file model: `gateway.toml` and `<stage>/stage.toml`, exactly as written.
//!
//! These types mirror the text (with spans for the values validation may complain about); they are
//! turned into the runtime model by `compile/`. Every struct denies unknown keys so a misspelt
//! setting is an error rather than silently ignored. The JSON Schemas in `schemas/` are generated
//! from these types (`cachegate schema`), so the `///` comments here are the schema descriptions.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::defaults;
use super::file_values::{ModeSchema, UnauthorizedSchema, UnderscoresSchema, UnkeyedQuerySchema};
pub use super::units::ByteSize;
use super::units::ByteSizeSchema;

/// `gateway.toml`: listeners, the optional shared Redis tier and global settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "cachegate gateway.toml")]
pub struct FileGateway {
    /// The proxy listener that serves the stages.
    #[serde(default)]
    pub server: FileServer,
    /// The admin listener (health, metrics, config status, admin API).
    #[serde(default)]
    pub admin: FileAdmin,
    /// The shared Redis tier. Absent: each instance caches locally only.
    pub redis: Option<FileRedis>,
    /// The organisation name used in Apigee-style key prefixes (`org__env__api__…`).
    #[serde(default = "defaults::organization")]
    #[schemars(with = "String")]
    pub organization: Spanned<String>,
    /// Apigee's environment: every stage is an API proxy deployed to it, and the cache
    /// policies of all stages use the environment's caches, so Global-scope entries are shared
    /// by every stage and Application-scope ones by the stages of one API. Absent: each stage
    /// is an environment of its own, named after its folder.
    #[schemars(with = "Option<String>")]
    pub environment: Option<Spanned<String>>,
    /// Bytes of the environment's default cache (the one policies without `<CacheResource>`
    /// use); needs `environment`.
    #[schemars(with = "Option<ByteSizeSchema>")]
    pub default_cache_capacity: Option<Spanned<ByteSize>>,
    /// The environment's named caches, addressed by a policy's `<CacheResource>`; needs
    /// `environment`.
    #[serde(default)]
    pub caches: Vec<FileEnvCache>,
    /// Apigee's flow hooks: a shared flow (by its name, from `sharedflows/`) that every stage
    /// runs at one of four points.
    #[serde(default)]
    pub flow_hooks: FileFlowHooks,
    /// The environment's target servers (Apigee TargetServers): named backends that a bundle's
    /// `<LoadBalancer><Server name="…"/>` balances requests across. Shared by every stage;
    /// each LoadBalancer keeps its own view of their health.
    #[serde(default)]
    pub target_servers: Vec<FileTargetServer>,
    /// The access log.
    #[serde(default)]
    pub log: super::file_log::FileLog,
}

/// `[flow_hooks]`: each value names a shared flow of `policies/sharedflows/`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileFlowHooks {
    /// Before each stage's ProxyEndpoint PreFlow (Apigee's PreProxyFlowHook).
    #[schemars(with = "Option<String>")]
    pub pre_proxy: Option<Spanned<String>>,
    /// Before each TargetEndpoint's PreFlow (PreTargetFlowHook). Not run for a RouteRule that
    /// sends to a URL, which has no TargetEndpoint.
    #[schemars(with = "Option<String>")]
    pub pre_target: Option<Spanned<String>>,
    /// After each TargetEndpoint's PostFlow response steps (PostTargetFlowHook).
    #[schemars(with = "Option<String>")]
    pub post_target: Option<Spanned<String>>,
    /// After the ProxyEndpoint's PostFlow response steps (PostProxyFlowHook).
    #[schemars(with = "Option<String>")]
    pub post_proxy: Option<Spanned<String>>,
}

impl FileFlowHooks {
    /// Each hook that is set, with its key.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Spanned<String>)> {
        [
            ("pre_proxy", &self.pre_proxy),
            ("pre_target", &self.pre_target),
            ("post_target", &self.post_target),
            ("post_proxy", &self.post_proxy),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

/// `[[target_servers]]`: a TargetServer of the environment (Apigee's `name`, `host`, `port`,
/// `isEnabled`, `sSLInfo`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTargetServer {
    /// Its name, as `<Server name="…"/>` writes it: letters, digits, `-`, `_`, `.`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Host name or IP address of the backend, without scheme, port or path (e.g.
    /// `"backend-1.internal"`). Resolved once, when the configuration loads, never on the
    /// request path.
    #[schemars(with = "String")]
    pub host: Spanned<String>,
    /// Port the backend listens on (1–65535).
    #[schemars(with = "u16")]
    pub port: Spanned<i64>,
    /// Apigee's `isEnabled`: `false` takes the server out of every LoadBalancer's rotation
    /// without changing the bundles that list it.
    #[serde(default = "defaults::enabled")]
    #[schemars(with = "bool")]
    pub enabled: Spanned<bool>,
    /// Apigee's `sSLInfo`: TLS to the backend, e.g. `ssl = { enabled = true }`. The host is
    /// the SNI and the name its certificate must carry; the certificate is verified against
    /// `[server] upstream_ca_file` (else the platform's roots).
    pub ssl: Option<FileTargetServerSsl>,
}

/// `[[target_servers]] ssl`: Apigee's TargetServer `sSLInfo`, in snake case. Keys cachegate
/// does not implement are accepted only to be refused by name (never silently ignored).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTargetServerSsl {
    /// Whether connections to the server are TLS (Apigee `enabled`).
    #[schemars(with = "bool")]
    pub enabled: Spanned<bool>,
    /// Apigee `ignoreValidationErrors`: do not verify the server's certificate. Insecure;
    /// warned about at every load.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub ignore_validation_errors: Option<Spanned<bool>>,
    /// Apigee `trustStore`: not supported (refused); trust anchors come from
    /// `[server] upstream_ca_file`.
    #[schemars(with = "Option<serde_json::Value>")]
    pub trust_store: Option<Spanned<toml::Value>>,
    /// Apigee `clientAuthEnabled` (mutual TLS): not supported (refused when true).
    #[schemars(with = "Option<serde_json::Value>")]
    pub client_auth_enabled: Option<Spanned<toml::Value>>,
    /// Apigee `keyStore` (mutual TLS): not supported (refused).
    #[schemars(with = "Option<serde_json::Value>")]
    pub key_store: Option<Spanned<toml::Value>>,
    /// Apigee `keyAlias` (mutual TLS): not supported (refused).
    #[schemars(with = "Option<serde_json::Value>")]
    pub key_alias: Option<Spanned<toml::Value>>,
    /// Apigee `protocols`: ignored with a warning (TLS 1.2 and 1.3 are offered).
    #[schemars(with = "Option<serde_json::Value>")]
    pub protocols: Option<Spanned<toml::Value>>,
    /// Apigee `ciphers`: ignored with a warning (rustls's safe default suites are offered).
    #[schemars(with = "Option<serde_json::Value>")]
    pub ciphers: Option<Spanned<toml::Value>>,
}

/// `[[caches]]`: a named cache of the environment (Apigee's environment cache resource).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEnvCache {
    /// Its name, as `<CacheResource>` writes it.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Bytes it may hold in each instance's memory: an integer or a string such as `"256MiB"`.
    #[serde(default = "defaults::capacity")]
    #[schemars(with = "ByteSizeSchema")]
    pub capacity: Spanned<ByteSize>,
}

impl Default for FileGateway {
    fn default() -> Self {
        Self {
            server: FileServer::default(),
            admin: FileAdmin::default(),
            redis: None,
            organization: defaults::organization(),
            environment: None,
            default_cache_capacity: None,
            caches: Vec::new(),
            flow_hooks: FileFlowHooks::default(),
            target_servers: Vec::new(),
            log: super::file_log::FileLog::default(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    /// Address the proxy listens on, `host:port`. Changing it needs a restart.
    #[serde(default = "defaults::server_listen")]
    #[schemars(with = "String")]
    pub listen: Spanned<String>,
    /// Worker threads for the proxy. Changing it needs a restart.
    #[serde(default = "defaults::threads")]
    #[schemars(with = "u32", range(min = 1, max = 256))]
    pub threads: Spanned<u32>,
    /// Whether the worker threads of each service (proxy, admin, background tasks) steal each
    /// other's queued work (one shared Tokio runtime per service) instead of each running its
    /// own connections on its own runtime, as NGINX workers do. Off by default: without stealing, a request's tasks never hop between threads, which
    /// measured 10–25 % more requests per second on two cores (`make bench`); turn it on when a
    /// few long requests (large bodies, slow targets) should not hold up others on their thread.
    /// Changing it needs a restart.
    #[serde(default)]
    pub work_stealing: bool,
    /// Seconds a graceful shutdown (SIGTERM) waits for in-flight requests.
    #[serde(default = "defaults::grace_period_secs")]
    pub grace_period_secs: u64,
    /// Longest request target (path and query) accepted, in bytes; longer ones get `414`.
    #[serde(default = "defaults::max_uri_bytes")]
    #[schemars(with = "u32", range(min = 256, max = 1048575))]
    pub max_uri_bytes: Spanned<u32>,
    /// Largest total size of the request's header fields (names, values and `": "`/CRLF), in
    /// bytes; larger ones get `431`. Every header is hashed, matched and maybe keyed, so a bound
    /// well below Pingora's 1 MiB keeps one request from costing megabytes of work.
    #[serde(default = "defaults::max_request_header_bytes")]
    #[schemars(with = "u32", range(min = 1024, max = 1048575))]
    pub max_request_header_bytes: Spanned<u32>,
    /// Most header fields a request may carry; more get `431`.
    #[serde(default = "defaults::max_request_headers")]
    #[schemars(with = "u32", range(min = 1, max = 256))]
    pub max_request_headers: Spanned<u32>,
    /// Milliseconds a client has from the first byte of a request to the end of its header
    /// section (NGINX's `client_header_timeout`); slower ones get `408` and are disconnected.
    #[serde(default = "defaults::client_header_timeout_ms")]
    #[schemars(with = "u32", range(min = 100, max = 120000))]
    pub client_header_timeout_ms: Spanned<u32>,
    /// Longest wait, in milliseconds, between two reads of a request body (NGINX's
    /// `client_body_timeout`); a client that stalls longer is disconnected.
    #[serde(default = "defaults::client_body_timeout_ms")]
    #[schemars(with = "u32", range(min = 100, max = 600000))]
    pub client_body_timeout_ms: Spanned<u32>,
    /// Longest wait, in milliseconds, for a client to accept more of a response (NGINX's
    /// `send_timeout`); a client that stops reading is disconnected.
    #[serde(default = "defaults::client_send_timeout_ms")]
    #[schemars(with = "u32", range(min = 100, max = 600000))]
    pub client_send_timeout_ms: Spanned<u32>,
    /// Unix socket through which a running gateway hands its listening sockets to a new one
    /// started with `cachegate run --upgrade` (zero-downtime restart: start the new process, then
    /// send the old one SIGQUIT). An absolute path of at most 100 bytes, in a directory only the
    /// gateway's user can write. Changing it needs a restart.
    #[serde(default = "defaults::upgrade_socket")]
    #[schemars(with = "String")]
    pub upgrade_socket: Spanned<String>,
    /// PEM file of the certificate authorities trusted for `https://` targets and TargetServers
    /// with `ssl`, instead of the platform's roots (relative paths are relative to
    /// gateway.toml's directory). Checked when the configuration loads. Changing it needs a
    /// restart (Pingora reads it once, as `ServerConf.ca_file`).
    #[schemars(with = "Option<String>")]
    pub upstream_ca_file: Option<Spanned<String>>,
    /// What happens to a request header whose name contains `_` (`Content_Length`): `drop`
    /// (default, as NGINX's `ignore_invalid_headers`) removes it before routing, keying and
    /// forwarding; `refuse` answers `400`; `allow` forwards it. A part behind the gateway that
    /// reads `_` as `-` (CGI, some frameworks) would otherwise see another header than the
    /// gateway did (RFC 9110 §17.10). A name that folds to a framing or routing field
    /// (`Transfer_Encoding`, `Content--Length`) gets `400` whatever this says.
    #[serde(default = "defaults::underscores_in_headers")]
    #[schemars(with = "UnderscoresSchema")]
    pub underscores_in_headers: Spanned<String>,
    /// Seconds an idle keep-alive connection is kept open waiting for its next request (NGINX's
    /// `keepalive_timeout`; 1–3600, default 60). Applies after every request, not only the first.
    #[serde(default = "defaults::keepalive_timeout")]
    #[schemars(with = "u32", range(min = 1, max = 3600))]
    pub keepalive_timeout: Spanned<u32>,
    /// Requests one client connection may carry before the gateway closes it (NGINX's
    /// `keepalive_requests`; 1–1000000, default 1000): the last response says
    /// `Connection: close`. Bounds what one long-lived connection can hold on to.
    #[serde(default = "defaults::keepalive_requests")]
    #[schemars(with = "u32", range(min = 1, max = 1_000_000))]
    pub keepalive_requests: Spanned<u32>,
}

impl Default for FileServer {
    fn default() -> Self {
        Self {
            listen: defaults::server_listen(),
            threads: defaults::threads(),
            work_stealing: false,
            grace_period_secs: defaults::grace_period_secs(),
            max_uri_bytes: defaults::max_uri_bytes(),
            max_request_header_bytes: defaults::max_request_header_bytes(),
            max_request_headers: defaults::max_request_headers(),
            client_header_timeout_ms: defaults::client_header_timeout_ms(),
            client_body_timeout_ms: defaults::client_body_timeout_ms(),
            client_send_timeout_ms: defaults::client_send_timeout_ms(),
            upgrade_socket: defaults::upgrade_socket(),
            upstream_ca_file: None,
            underscores_in_headers: defaults::underscores_in_headers(),
            keepalive_timeout: defaults::keepalive_timeout(),
            keepalive_requests: defaults::keepalive_requests(),
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    /// Address of the admin listener (`/healthz`, `/metrics`, `/config`, admin API). Keep it on
    /// loopback unless a firewall protects it. Changing it needs a restart.
    #[serde(default = "defaults::admin_listen")]
    #[schemars(with = "String")]
    pub listen: Spanned<String>,
    /// Name of the environment variable holding the admin bearer token. Without a token every
    /// mutating admin endpoint refuses.
    #[schemars(with = "Option<String>")]
    pub token_env: Option<Spanned<String>>,
    /// Most mutating admin requests (POST: reload, flush, invalidate) accepted per second, with
    /// a burst of as many; more get `429`. Counted before the token is checked, so it also slows
    /// down token guessing.
    #[serde(default = "defaults::admin_mutations_per_second")]
    #[schemars(with = "u32")]
    pub mutations_per_second: Spanned<u32>,
}

impl Default for FileAdmin {
    fn default() -> Self {
        Self {
            listen: defaults::admin_listen(),
            token_env: None,
            mutations_per_second: defaults::admin_mutations_per_second(),
        }
    }
}

/// `[redis]`: the shared tier.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRedis {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path/to/socket`.
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// Prefix of every key cachegate writes, so several deployments can share one Redis.
    #[serde(default = "defaults::redis_key_prefix")]
    #[schemars(with = "String")]
    pub key_prefix: Spanned<String>,
    /// Deadline of one Redis lookup in milliseconds; a slower lookup is a miss.
    #[serde(default = "defaults::redis_lookup_timeout_ms")]
    #[schemars(with = "u64", range(min = 1, max = 30000))]
    pub lookup_timeout_ms: Spanned<u64>,
    /// Deadline for connecting to Redis in milliseconds.
    #[serde(default = "defaults::redis_connect_timeout_ms")]
    #[schemars(with = "u64")]
    pub connect_timeout_ms: Spanned<u64>,
    /// Longest time, in milliseconds, an entry lives in an instance's local tier before it is
    /// looked up in Redis again. Bounds how long a lost invalidation message can keep a stale
    /// entry on one instance.
    #[serde(default = "defaults::redis_max_local_ttl_ms")]
    #[schemars(with = "u64")]
    pub max_local_ttl_ms: Spanned<u64>,
    /// Environment variable holding the AES-256-GCM keys for `encrypted` entries:
    /// `id:base64key[,id:base64key…]` (the first seals; all open, for rotation).
    #[schemars(with = "Option<String>")]
    pub encryption_keys_env: Option<Spanned<String>>,
}

/// `<stage>/stage.toml`: one API stage (AWS API Gateway's stage and method settings, plus
/// Apigee-style flows that attach policies).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "cachegate stage.toml")]
pub struct FileStage {
    /// Path prefix this stage serves, e.g. `/prod` (default: `/` + the folder name). `/` lets the
    /// stage own the whole host. Stripped before the request goes to the target.
    #[schemars(with = "Option<String>")]
    pub base_path: Option<Spanned<String>>,
    /// Upstream URL, `http://host:port[/path]`. The host is resolved once, when the configuration
    /// loads, never on the request path. Required, except beside an Apigee bundle (`apiproxy/`),
    /// whose TargetEndpoints say where to forward.
    #[schemars(with = "Option<String>")]
    pub target: Option<Spanned<String>>,
    /// The API name used as Apigee's "API proxy" in Scope-derived key prefixes (default: the stage
    /// folder name).
    #[schemars(with = "Option<String>")]
    pub api_name: Option<Spanned<String>>,
    /// The deployed revision, part of Proxy/Target/Exclusive-scoped keys as in Apigee: bump it to
    /// move those policies to a fresh key namespace. Default: 1; for an Apigee bundle, the
    /// bundle's `revision` attribute, else a number derived from its content (so every edit
    /// deploys a new revision, as in Apigee).
    #[schemars(with = "Option<u32>")]
    pub revision: Option<Spanned<u32>>,
    /// Policy kinds to run as no-ops (e.g. `["StatisticsCollector", "Quota"]`), for an Apigee
    /// bundle's policies or Apigee XML policies of such kinds beside this file. Without it, a
    /// stage using a kind cachegate does not run is refused. Kinds that protect the API must
    /// also be listed in `acknowledge_unprotected`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub skip_policies: Vec<Spanned<String>>,
    /// The security kinds of `skip_policies` (VerifyAPIKey, OAuthV2, VerifyJWT, …) listed
    /// again, to acknowledge that the API runs without that protection. Logged as a warning at
    /// every start.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub acknowledge_unprotected: Vec<Spanned<String>>,
    /// Milliseconds allowed to connect to the target.
    #[serde(default = "defaults::connect_timeout_ms")]
    #[schemars(with = "u64")]
    pub connect_timeout_ms: Spanned<u64>,
    /// Milliseconds allowed between two reads from the target.
    #[serde(default = "defaults::read_timeout_ms")]
    #[schemars(with = "u64")]
    pub read_timeout_ms: Spanned<u64>,
    /// Milliseconds allowed between two writes to the target.
    #[serde(default = "defaults::write_timeout_ms")]
    #[schemars(with = "u64")]
    pub write_timeout_ms: Spanned<u64>,
    /// Send the client's `Host` header to the target instead of the target's own host.
    #[serde(default)]
    pub preserve_host: bool,
    /// Resource path templates of this API relative to the base path, e.g. `/items/{id}`. The
    /// matched template labels metrics and defines `method.request.path.<name>` parameters.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Spanned<String>>,
    /// Stage caching (AWS API Gateway stage cache settings).
    #[serde(default)]
    pub cache: FileCache,
    /// Steps run for every request before the matched flow.
    #[serde(default)]
    pub preflow: FileSteps,
    /// Steps run for every request after the matched flow.
    #[serde(default)]
    pub postflow: FileSteps,
    /// Conditional flows; the first whose condition is true runs.
    #[serde(default)]
    pub flows: Vec<FileFlow>,
    /// Apigee's ProxyEndpoint name (default `default`): `proxy.name`, and the endpoint part of
    /// Proxy- and Exclusive-scoped key prefixes of the policies the flows above attach.
    #[schemars(with = "Option<String>")]
    pub proxy_endpoint: Option<Spanned<String>>,
    /// The name of the stage's one RouteRule (default `default`): `route.name`.
    #[schemars(with = "Option<String>")]
    pub route_rule: Option<Spanned<String>>,
    /// Apigee's TargetEndpoint: the name and the flows of the endpoint that forwards to
    /// `target`. Its request steps run after the flows above, its response steps before them.
    pub target_endpoint: Option<FileTargetEndpoint>,
}

/// `[target_endpoint]`: the stage's TargetEndpoint (what `cachegate import` writes for an Apigee
/// bundle's `targets/*.xml`).
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FileTargetEndpoint {
    /// Its name (default `default`): `target.name`, and the endpoint part of Target-scoped key
    /// prefixes and of Exclusive-scoped ones of policies attached here only.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Steps run before the TargetEndpoint's flow (after the ProxyEndpoint's on the request).
    #[serde(default)]
    pub preflow: FileSteps,
    /// Steps run after the TargetEndpoint's flow.
    #[serde(default)]
    pub postflow: FileSteps,
    /// The TargetEndpoint's conditional flows; the first whose condition is true runs.
    #[serde(default)]
    pub flows: Vec<FileFlow>,
}

/// `[cache]`: the stage cache.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCache {
    /// Turns stage caching on (AWS `CacheClusterEnabled`).
    #[serde(default)]
    pub enabled: bool,
    /// How stage caching decides freshness: `aws` (default: the stage TTL, GET only, keys from
    /// `key_parameters`) or `http` (a standards-compliant shared cache, RFC 9111: freshness from
    /// the target's `Cache-Control`/`Expires`/`Age`, keys on the whole URI).
    #[serde(default = "defaults::mode")]
    #[schemars(with = "ModeSchema")]
    pub mode: Spanned<String>,
    /// Seconds a response stays fresh (default 300, at most 3600, 0 disables caching).
    #[serde(default = "defaults::ttl")]
    #[schemars(with = "u64", range(min = 0, max = 3600))]
    pub ttl: Spanned<u64>,
    /// Bytes the local tier may hold for this stage: an integer or a string such as `"256MiB"`.
    #[serde(default = "defaults::capacity")]
    #[schemars(with = "ByteSizeSchema")]
    pub capacity: Spanned<ByteSize>,
    /// Largest response body stored, in bytes (default 1,048,576); larger responses stream
    /// through uncached.
    #[serde(default = "defaults::max_object_size")]
    #[schemars(with = "ByteSizeSchema")]
    pub max_object_size: Spanned<ByteSize>,
    /// Encrypt entries written to the shared tier.
    #[serde(default)]
    pub encrypted: bool,
    /// `aws` mode: what stage caching does with query parameters that are not in
    /// `key_parameters`. `strip` (default) forwards only the declared ones (the first value of
    /// each), so a cached response is exactly what its key describes. `forward` passes the whole
    /// query on, as AWS API Gateway does: a target that varies its response on an undeclared
    /// parameter (`?callback=`, `?lang=`) then lets the first client's value decide what every
    /// client gets until the entry expires (cache poisoning); `validate` warns about it.
    #[serde(default = "defaults::unkeyed_query")]
    #[schemars(with = "UnkeyedQuerySchema")]
    pub unkeyed_query: Spanned<String>,
    /// Request parameters that are part of the stage cache key:
    /// `method.request.querystring.<name>`, `method.request.header.<name>`,
    /// `method.request.path.<name>`. Undeclared parameters do not split the cache.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub key_parameters: Vec<Spanned<String>>,
    /// Seconds a stale entry may be served while one background request refreshes it.
    #[serde(default = "defaults::zero")]
    #[schemars(with = "u64", range(min = 0, max = 86400))]
    pub stale_while_revalidate: Spanned<u64>,
    /// Seconds a stale entry may be served when the target fails.
    #[serde(default = "defaults::zero")]
    #[schemars(with = "u64", range(min = 0, max = 86400))]
    pub stale_if_error: Spanned<u64>,
    /// `mode = "http"`: seconds an entry with a validator (`ETag` or `Last-Modified`) is kept
    /// after it stops being fresh (and after its stale windows), so that it can be revalidated
    /// with a conditional request instead of fetched again (default 3600; at most 604800; 0 drops
    /// entries when they go stale). The local tier's capacity bounds it too: old entries are
    /// evicted first.
    #[serde(default = "defaults::revalidate_keep")]
    #[schemars(with = "u64", range(min = 0, max = 604800))]
    pub revalidate_keep: Spanned<u64>,
    /// Milliseconds a request waits for another request that is already fetching the same
    /// entry (request collapsing) before going to the target itself.
    #[serde(default = "defaults::lock_timeout_ms")]
    #[schemars(with = "u64", range(min = 1, max = 60000))]
    pub lock_timeout_ms: Spanned<u64>,
    /// Store responses that carry `Set-Cookie` (off by default: a cookie is personal).
    #[serde(default)]
    pub allow_set_cookie: bool,
    /// Store responses marked `Cache-Control: private` or `no-store` (off by default).
    #[serde(default)]
    pub allow_private: bool,
    /// Cache requests that carry `Cookie` (off by default: a cookie usually personalises the
    /// response). When on, cookies are forwarded but not part of the key: the target must not
    /// vary on them.
    #[serde(default)]
    pub allow_cookie: bool,
    /// Cache requests that carry `Authorization` (off by default). When on, the
    /// `Authorization` value becomes part of every key, so callers never share entries.
    #[serde(default)]
    pub allow_authorization: bool,
    /// http mode: targeted cache-control fields (RFC 9213), in order of precedence (default
    /// `["Cachegate-Cache-Control", "CDN-Cache-Control"]`; `[]` turns them off). The first one a
    /// response carries with a valid value replaces `Cache-Control` and `Expires` for this
    /// cache. The first entry, unless it is `CDN-Cache-Control`, is cachegate's own and is
    /// removed from responses; the others are forwarded. Each name ends in `-Cache-Control`.
    #[schemars(with = "Option<Vec<String>>")]
    pub targeted_cache_control: Option<Vec<Spanned<String>>>,
    /// `mode = "http"` only: ignore the request's `Cache-Control` and `Pragma` directives
    /// (`no-cache`, `max-age`, `min-fresh`, `max-stale`, `no-store`, `only-if-cached`), as
    /// NGINX and Varnish do and ATS's `ignore_client_no_cache` can. Off by default: they are
    /// honoured as RFC 9111 §5.2.1 says (a client's `no-cache` makes a conditional request).
    #[serde(default)]
    pub ignore_request_directives: bool,
    /// Per-resource, per-method overrides; the most specific match wins.
    #[serde(default)]
    pub method: Vec<FileMethodOverride>,
    /// Who may invalidate entries with `Cache-Control: max-age=0`.
    #[serde(default)]
    pub invalidation: FileInvalidation,
}

impl Default for FileCache {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: defaults::mode(),
            ttl: defaults::ttl(),
            capacity: defaults::capacity(),
            max_object_size: defaults::max_object_size(),
            encrypted: false,
            unkeyed_query: defaults::unkeyed_query(),
            key_parameters: Vec::new(),
            stale_while_revalidate: Spanned::new(0..0, 0),
            stale_if_error: Spanned::new(0..0, 0),
            revalidate_keep: defaults::revalidate_keep(),
            lock_timeout_ms: defaults::lock_timeout_ms(),
            allow_set_cookie: false,
            allow_private: false,
            allow_cookie: false,
            allow_authorization: false,
            targeted_cache_control: None,
            ignore_request_directives: false,
            method: Vec::new(),
            invalidation: FileInvalidation::default(),
        }
    }
}

/// `[[cache.method]]`: a per-resource, per-method override (AWS method settings).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileMethodOverride {
    /// Resource pattern relative to the base path: `/items/*`, `/items/{id}`, `/*` (all).
    #[schemars(with = "String")]
    pub resource: Spanned<String>,
    /// HTTP method, or `*` for all.
    #[serde(default = "defaults::any_method")]
    #[schemars(with = "String")]
    pub method: Spanned<String>,
    /// Whether matching requests are cached.
    pub caching: Option<bool>,
    /// TTL in seconds for matching requests (0..=3600).
    #[schemars(with = "Option<u64>", range(min = 0, max = 3600))]
    pub ttl: Option<Spanned<u64>>,
    /// Encrypt matching entries in the shared tier.
    pub encrypted: Option<bool>,
}

/// `[cache.invalidation]`: client invalidation with `Cache-Control: max-age=0`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInvalidation {
    /// Require an authorized token to invalidate (default true). When false, any client can
    /// refresh entries — AWS warns against it.
    #[serde(default = "defaults::require_authorization")]
    pub require_authorization: bool,
    /// What unauthorized invalidation requests get: `FAIL_WITH_403`,
    /// `SUCCEED_WITH_RESPONSE_HEADER` (default, AWS's default) or `SUCCEED_WITHOUT_RESPONSE_HEADER`.
    #[serde(default = "defaults::unauthorized")]
    #[schemars(with = "UnauthorizedSchema")]
    pub unauthorized: Spanned<String>,
    /// Tokens allowed to invalidate, and what.
    #[serde(default)]
    pub grants: Vec<FileGrant>,
}

impl Default for FileInvalidation {
    fn default() -> Self {
        Self {
            require_authorization: defaults::require_authorization(),
            unauthorized: defaults::unauthorized(),
            grants: Vec::new(),
        }
    }
}

/// `[[cache.invalidation.grants]]`: one token and the resources it may invalidate.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileGrant {
    /// Name of the grant, used in audit logs (never the token).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Environment variable holding the token.
    #[schemars(with = "Option<String>")]
    pub token_env: Option<Spanned<String>>,
    /// Hex SHA-256 digest of the token (so the token itself never sits in a file).
    #[schemars(with = "Option<String>")]
    pub token_sha256: Option<Spanned<String>>,
    /// Resources in AWS's `METHOD/resource-path` form with `*` wildcards, e.g. `GET/items/*`.
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Spanned<String>>,
}

/// `[preflow]` / `[postflow]`.
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FileSteps {
    /// Steps run on the request, in order.
    #[serde(default)]
    #[schemars(with = "Vec<StepSchema>")]
    pub request: Vec<Spanned<FileStep>>,
    /// Steps run on the response, in order.
    #[serde(default)]
    #[schemars(with = "Vec<StepSchema>")]
    pub response: Vec<Spanned<FileStep>>,
}

/// `[[flows]]`: an Apigee conditional flow.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileFlow {
    /// Flow name (labels metrics; unique within the stage).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Apigee condition, e.g. `proxy.pathsuffix MatchesPath "/items/**"`; absent = always.
    #[schemars(with = "Option<String>")]
    pub condition: Option<Spanned<String>>,
    /// Steps run on the request, in order.
    #[serde(default)]
    #[schemars(with = "Vec<StepSchema>")]
    pub request: Vec<Spanned<FileStep>>,
    /// Steps run on the response, in order.
    #[serde(default)]
    #[schemars(with = "Vec<StepSchema>")]
    pub response: Vec<Spanned<FileStep>>,
}

/// A step: a policy name, or `{ policy = "…", condition = "…" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStep {
    /// Name of the policy (its `name` attribute).
    pub policy: String,
    /// Optional Apigee condition; the step runs only when it is true.
    pub condition: Option<String>,
}

/// The schema of a step (schemars only; deserialisation is hand-written to keep TOML spans).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum StepSchema {
    /// The policy name.
    Name(String),
    /// A policy with a condition.
    Conditional {
        /// Name of the policy.
        policy: String,
        /// Apigee condition; the step runs only when it is true.
        condition: Option<String>,
    },
}

impl<'de> Deserialize<'de> for FileStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StepVisitor;
        impl<'de> Visitor<'de> for StepVisitor {
            type Value = FileStep;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a policy name or { policy = "…", condition = "…" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileStep, E> {
                Ok(FileStep {
                    policy: v.to_owned(),
                    condition: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileStep, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Table {
                    policy: String,
                    condition: Option<String>,
                }
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FileStep {
                    policy: t.policy,
                    condition: t.condition,
                })
            }
        }
        d.deserialize_any(StepVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_names_or_tables() {
        #[derive(Deserialize)]
        struct T {
            s: Vec<Spanned<FileStep>>,
        }
        let t: T = toml::from_str(r#"s = ["A", { policy = "B", condition = "x = 1" }]"#).unwrap();
        assert_eq!(t.s[0].get_ref().policy, "A");
        assert_eq!(t.s[1].get_ref().condition.as_deref(), Some("x = 1"));
        let err = toml::from_str::<T>(r#"s = [{ polcy = "B" }]"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown field `polcy`"), "{err}");
    }

    #[test]
    fn unknown_stage_keys_are_rejected() {
        let err = toml::from_str::<FileStage>("target = \"http://x:1\"\nbase_pth = \"/a\"")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("unknown field `base_pth`"),
            "{err}"
        );
    }
}
