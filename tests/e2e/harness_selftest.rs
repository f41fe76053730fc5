//! The harness's own parts work: later issues' Redis tests rely on them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{eventually, origin, RedisServer};

#[test]
fn private_redis_server_answers_ping() {
    let redis = RedisServer::start();
    let mut s = TcpStream::connect(("127.0.0.1", redis.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"PING\r\n").expect("write");
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"+PONG\r\n");
}

#[tokio::test]
async fn origin_counts_requests_and_eventually_polls() {
    let o = origin();
    let url = format!("http://{}/items/9", o.addr());
    let c = crate::harness::client();
    for _ in 0..3 {
        assert_eq!(c.get(&url).send().await.expect("req").status(), 200);
    }
    eventually("three counted requests", Duration::from_secs(5), || async {
        o.count("/items/9") == 3
    })
    .await;
    assert_eq!(o.count("/items/10"), 0);
}
