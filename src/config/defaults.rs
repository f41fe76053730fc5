//! Named defaults, shared by the file model (serde), the runtime and the documentation.

use toml::Spanned;

use super::units::ByteSize;

pub use crate::runtime::ttl::{DEFAULT_TTL_SECS, MAX_TTL_SECS};
/// AWS API Gateway's largest cacheable response.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 1_048_576;
/// Default local-tier capacity of one stage.
pub const DEFAULT_CAPACITY: u64 = 64 << 20;

fn unspanned<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

pub(crate) fn organization() -> Spanned<String> {
    unspanned("cachegate".to_owned())
}
pub(crate) fn server_listen() -> Spanned<String> {
    unspanned("127.0.0.1:8080".to_owned())
}
pub(crate) fn admin_listen() -> Spanned<String> {
    unspanned("127.0.0.1:9901".to_owned())
}
/// Enough for scripted purges, too few for token guessing or a flush storm.
pub(crate) fn admin_mutations_per_second() -> Spanned<u32> {
    unspanned(10)
}
pub(crate) fn threads() -> Spanned<u32> {
    unspanned(2)
}
pub(crate) fn enabled() -> Spanned<bool> {
    unspanned(true)
}
pub(crate) fn grace_period_secs() -> u64 {
    5
}
/// NGINX's default for one header line (`large_client_header_buffers 4 8k`).
pub(crate) fn max_uri_bytes() -> Spanned<u32> {
    unspanned(8192)
}
/// NGINX's default total (`large_client_header_buffers 4 8k`).
pub(crate) fn max_request_header_bytes() -> Spanned<u32> {
    unspanned(32768)
}
/// Apache's `LimitRequestFields` default.
pub(crate) fn max_request_headers() -> Spanned<u32> {
    unspanned(100)
}
/// Total, unlike NGINX's 60 s between reads: a trickling client gets no extension.
pub(crate) fn client_header_timeout_ms() -> Spanned<u32> {
    unspanned(10_000)
}
/// NGINX's `client_body_timeout` default (between two reads).
pub(crate) fn client_body_timeout_ms() -> Spanned<u32> {
    unspanned(60_000)
}
/// NGINX's `send_timeout` default (between two writes).
pub(crate) fn client_send_timeout_ms() -> Spanned<u32> {
    unspanned(60_000)
}
/// NGINX's `keepalive_timeout` default, in seconds.
pub(crate) fn keepalive_timeout() -> Spanned<u32> {
    unspanned(60)
}
/// NGINX's `keepalive_requests` default.
pub(crate) fn keepalive_requests() -> Spanned<u32> {
    unspanned(1_000)
}
/// NGINX's default (`underscores_in_headers off`, `ignore_invalid_headers on`).
pub(crate) fn underscores_in_headers() -> Spanned<String> {
    unspanned("drop".to_owned())
}
pub(crate) fn upgrade_socket() -> Spanned<String> {
    unspanned("/tmp/cachegate-upgrade.sock".to_owned())
}
pub(crate) fn redis_key_prefix() -> Spanned<String> {
    unspanned("cachegate".to_owned())
}
pub(crate) fn redis_lookup_timeout_ms() -> Spanned<u64> {
    unspanned(50)
}
pub(crate) fn redis_connect_timeout_ms() -> Spanned<u64> {
    unspanned(500)
}
/// A stage.toml stage's revision when none is written.
pub(crate) const REVISION: u32 = 1;
pub(crate) fn connect_timeout_ms() -> Spanned<u64> {
    unspanned(2_000)
}
pub(crate) fn read_timeout_ms() -> Spanned<u64> {
    unspanned(30_000)
}
pub(crate) fn write_timeout_ms() -> Spanned<u64> {
    unspanned(30_000)
}
pub(crate) fn ttl() -> Spanned<u64> {
    unspanned(DEFAULT_TTL_SECS)
}
pub(crate) fn capacity() -> Spanned<ByteSize> {
    unspanned(ByteSize(DEFAULT_CAPACITY))
}
pub(crate) fn max_object_size() -> Spanned<ByteSize> {
    unspanned(ByteSize(DEFAULT_MAX_OBJECT_SIZE))
}
pub(crate) fn any_method() -> Spanned<String> {
    unspanned("*".to_owned())
}
pub(crate) fn require_authorization() -> bool {
    true
}
pub(crate) fn unauthorized() -> Spanned<String> {
    unspanned("SUCCEED_WITH_RESPONSE_HEADER".to_owned())
}
pub(crate) fn zero() -> Spanned<u64> {
    unspanned(0)
}
pub(crate) fn revalidate_keep() -> Spanned<u64> {
    unspanned(3_600)
}
pub(crate) fn lock_timeout_ms() -> Spanned<u64> {
    unspanned(5_000)
}
pub(crate) fn unkeyed_query() -> Spanned<String> {
    unspanned("strip".to_owned())
}
pub(crate) fn mode() -> Spanned<String> {
    unspanned("aws".to_owned())
}
pub(crate) fn redis_max_local_ttl_ms() -> Spanned<u64> {
    unspanned(5_000)
}
