//! Bare Pingora, with nothing of cachegate: the ceiling `make bench` measures cachegate against.
//!
//! `bare_pingora hello LISTEN` answers every request from `request_filter` with the same 1 KiB
//! body and the headers a cache hit carries (what a Pingora-based hit can cost at least);
//! `bare_pingora proxy LISTEN UPSTREAM` forwards every request to UPSTREAM (what a Pingora-based
//! miss path can cost at least). Same Pingora version, allocator, thread count and runtime
//! flavour as the gateway, so the difference between a bare row and a cachegate row is
//! cachegate's own work.

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::{HttpPeer, ProxyHttp, Result, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

/// Same allocator as the `cachegate` binary: the comparison is about the request path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The two modes: answer from memory (`upstream` is `None`) or forward to `upstream`.
struct Bare {
    upstream: Option<SocketAddr>,
    body: Bytes,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if self.upstream.is_some() {
            return Ok(false);
        }
        let mut header = ResponseHeader::build(200, Some(6))?;
        header.insert_header("content-type", "application/json")?;
        header.insert_header("etag", "\"bench\"")?;
        header.insert_header("content-length", self.body.len())?;
        header.insert_header("age", "0")?;
        header.insert_header("x-cache", "HIT")?;
        header.insert_header("cache-status", "bare; hit")?;
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session
            .write_response_body(Some(self.body.clone()), true)
            .await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let addr = self.upstream.ok_or_else(|| {
            pingora::Error::explain(
                pingora::ErrorType::InternalError,
                "hello mode forwards nothing",
            )
        })?;
        Ok(Box::new(HttpPeer::new(addr, false, String::new())))
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, listen) = match args.as_slice() {
        [mode, listen, ..] => (mode.as_str(), listen.clone()),
        _ => anyhow::bail!("usage: bare_pingora hello LISTEN | bare_pingora proxy LISTEN UPSTREAM"),
    };
    let upstream = match (mode, args.get(2)) {
        ("hello", None) => None,
        ("proxy", Some(addr)) => Some(addr.parse()?),
        _ => anyhow::bail!("usage: bare_pingora hello LISTEN | bare_pingora proxy LISTEN UPSTREAM"),
    };
    let conf = ServerConf {
        threads: 2,
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let body = Bytes::from(format!("{{\"data\":\"{}\"}}", "x".repeat(1024 - 11)));
    let mut service =
        pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream, body });
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever()
}
