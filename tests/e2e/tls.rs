//! `https://` targets (upstream TLS): a TLS front with a private CA made at test time (rcgen)
//! in front of the example origin, a gateway trusting that CA through gateway.toml
//! `[server] upstream_ca_file`, and what must fail: an untrusted CA and a certificate for another
//! name answer 502 and nothing is cached. Bundles: `<SSLInfo>` with an https `<URL>`, and
//! `<IgnoreValidationErrors>` (which works, and is warned about at every load).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cachegate::reload::ConfigHandle;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;

use crate::harness::{get, metric, origin, PolicyDir, TestGateway};
use crate::validation::diagnostics;

/// A private CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = rcgen::KeyPair::generate().expect("CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("CA certificate");
    Ca {
        pem: cert.pem(),
        cert,
        key,
    }
}

/// A TLS listener on 127.0.0.1 presenting a certificate for `localhost` only (signed by `ca`),
/// relaying each connection's plaintext to the example origin at `origin`. Counts handshakes.
struct TlsFront {
    port: u16,
    handshakes: Arc<AtomicUsize>,
    _thread: std::thread::JoinHandle<()>,
}

impl TlsFront {
    fn start(ca: &Ca, origin: SocketAddr) -> Self {
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params
            .signed_by(&key, &ca.cert, &ca.key)
            .expect("server certificate");
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&handshakes);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let counted = Arc::clone(&counted);
                    tokio::spawn(async move {
                        // A failed handshake (the gateway refusing the certificate) just ends.
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        counted.fetch_add(1, Ordering::SeqCst);
                        let Ok(mut up) = tokio::net::TcpStream::connect(origin).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    });
                }
            });
        });
        TlsFront {
            port,
            handshakes,
            _thread: thread,
        }
    }
}

/// A policies directory whose gateway trusts `trusted` (written as `ca.pem` next to
/// gateway.toml, named relatively).
fn dir_trusting(o: &cachegate_origin::Origin, trusted: &Ca) -> PolicyDir {
    let d = PolicyDir::new(o);
    d.write("ca.pem", &trusted.pem);
    d.server_settings("upstream_ca_file = \"ca.pem\"\n");
    d
}

fn cached_stage(d: &PolicyDir, name: &str, target: &str) {
    d.stage(
        name,
        &format!("target = \"{target}\"\n[cache]\nenabled = true\n"),
    );
}

#[tokio::test]
async fn https_target_is_proxied_and_cached() {
    let o = origin();
    let ca = ca("cachegate test CA");
    let front = TlsFront::start(&ca, o.addr());
    let d = dir_trusting(&o, &ca);
    cached_stage(&d, "prod", &format!("https://localhost:{}", front.port));
    let gw = TestGateway::start(d);

    let first = get(&gw.url("/prod/items/1")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.x_cache(), "MISS");
    let second = get(&gw.url("/prod/items/1")).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(o.count("/items/1"), 1);
    assert!(front.handshakes.load(Ordering::SeqCst) >= 1);

    // SNI and Host are the URL's host (with its port: not 443).
    let echo = get(&gw.url("/prod/echo/x")).await;
    assert_eq!(echo.status, 200);
    assert_eq!(
        echo.json()["headers"]["host"],
        format!("localhost:{}", front.port)
    );
}

#[tokio::test]
async fn untrusted_ca_or_wrong_name_is_502_and_not_cached() {
    let o = origin();
    let ca_real = ca("cachegate test CA");
    let ca_other = ca("some other CA");
    let front = TlsFront::start(&ca_real, o.addr());
    let cases = [
        // The gateway trusts another CA.
        ("badca", &ca_other, "localhost"),
        // The right CA, but the certificate is for `localhost`, not `127.0.0.1`.
        ("badname", &ca_real, "127.0.0.1"),
    ];
    for (stage, trusted, host) in cases {
        let d = dir_trusting(&o, trusted);
        cached_stage(&d, stage, &format!("https://{host}:{}", front.port));
        let gw = TestGateway::start(d);
        for _ in 0..2 {
            let r = get(&gw.url(&format!("/{stage}/items/1"))).await;
            assert_eq!(r.status, 502, "{stage}: {}", r.body);
            assert_ne!(r.x_cache(), "HIT");
        }
        assert_eq!(
            o.count("/items/1"),
            0,
            "{stage}: nothing reached the origin"
        );
        // The operator's signal: both failures counted as TLS handshake failures.
        let series = format!(
            "cachegate_upstream_errors_total{{kind=\"TLSHandshakeFailure\",stage=\"{stage}\"}}"
        );
        let text = gw.metrics().await;
        assert_eq!(metric(&text, &series), 2.0, "{text}");
    }
    assert_eq!(front.handshakes.load(Ordering::SeqCst), 0);
}

/// A bundle stage `b` at `/b` whose TargetEndpoint goes to `url` with `ssl` (an `<SSLInfo>`)
/// and whose response carries `target.url`.
fn ssl_bundle(d: &PolicyDir, url: &str, ssl: &str) {
    d.write("b/apiproxy/b.xml", r#"<APIProxy name="b"/>"#);
    d.write(
        "b/apiproxy/proxies/default.xml",
        r#"<ProxyEndpoint name="default">
  <HTTPProxyConnection><BasePath>/b</BasePath></HTTPProxyConnection>
  <RouteRule name="default"><TargetEndpoint>default</TargetEndpoint></RouteRule>
</ProxyEndpoint>"#,
    );
    d.write(
        "b/apiproxy/targets/default.xml",
        &format!(
            r#"<TargetEndpoint name="default">
  <PostFlow><Response><Step><Name>AM-url</Name></Step></Response></PostFlow>
  <HTTPTargetConnection>
    {ssl}
    <URL>{url}</URL>
  </HTTPTargetConnection>
</TargetEndpoint>"#
        ),
    );
    d.write(
        "b/apiproxy/policies/AM-url.xml",
        r#"<AssignMessage name="AM-url"><Set><Headers>
  <Header name="x-target-url">{target.url}</Header>
</Headers></Set></AssignMessage>"#,
    );
}

#[tokio::test]
async fn bundle_with_ssl_info_runs_over_https() {
    let o = origin();
    let ca = ca("cachegate test CA");
    let front = TlsFront::start(&ca, o.addr());
    let d = dir_trusting(&o, &ca);
    let url = format!("https://localhost:{}/items", front.port);
    ssl_bundle(
        &d,
        &url,
        "<SSLInfo><Enabled>true</Enabled><Enforce>true</Enforce></SSLInfo>",
    );
    let gw = TestGateway::start(d);
    let r = get(&gw.url("/b/3")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], "3");
    assert_eq!(r.header("x-target-url"), url);
    assert_eq!(o.count("/items/3"), 1);
}

#[tokio::test]
async fn ignore_validation_errors_connects_and_is_warned_about() {
    let o = origin();
    let ca = ca("cachegate test CA");
    let front = TlsFront::start(&ca, o.addr());
    // No upstream_ca_file and a name the certificate does not carry: only
    // IgnoreValidationErrors lets this through.
    let d = PolicyDir::new(&o);
    ssl_bundle(
        &d,
        &format!("https://127.0.0.1:{}/items", front.port),
        "<SSLInfo><Enabled>true</Enabled><IgnoreValidationErrors>true</IgnoreValidationErrors></SSLInfo>",
    );
    let (_, warnings) = ConfigHandle::load(d.path()).expect("loads");
    let text = warnings.to_string();
    assert!(
        text.contains("IgnoreValidationErrors") && text.contains("NOT verified"),
        "{text}"
    );
    let gw = TestGateway::start(d);
    let r = get(&gw.url("/b/4")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(o.count("/items/4"), 1);
}

#[test]
fn ssl_info_that_cachegate_cannot_honour_is_refused_by_name() {
    let o = origin();
    let d = PolicyDir::new(&o);
    ssl_bundle(
        &d,
        "https://localhost:1/x",
        "<SSLInfo>
      <Enabled>true</Enabled>
      <ClientAuthEnabled>true</ClientAuthEnabled>
      <KeyStore>ref://ks</KeyStore>
      <TrustStore>ref://ts</TrustStore>
      <Ciphers><Cipher>TLS_AES_128_GCM_SHA256</Cipher></Ciphers>
    </SSLInfo>",
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok, "{text}");
    for want in [
        "b/apiproxy/targets/default.xml:6:7: error: <SSLInfo><ClientAuthEnabled>true (mutual TLS) is not supported by cachegate",
        "b/apiproxy/targets/default.xml:7:7: error: <SSLInfo><KeyStore> is not supported by cachegate",
        "b/apiproxy/targets/default.xml:8:7: error: <SSLInfo><TrustStore> is not supported by cachegate",
        "hint: cachegate does not read Apigee truststore references: trust the backend's CA with gateway.toml [server] upstream_ca_file",
        "b/apiproxy/targets/default.xml:9:7: warning: <SSLInfo><Ciphers> is ignored",
    ] {
        assert!(text.contains(want), "expected `{want}` in:\n{text}");
    }
}

#[test]
fn ssl_info_enabled_with_an_http_url_is_refused() {
    let o = origin();
    let d = PolicyDir::new(&o);
    ssl_bundle(
        &d,
        "http://{{ORIGIN}}/x",
        "<SSLInfo><Enabled>true</Enabled></SSLInfo>",
    );
    let (ok, text) = diagnostics(&d);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "b/apiproxy/targets/default.xml:4:5: error: <SSLInfo><Enabled>true but the target"
        ) && text.contains("hint: write the URL with https://"),
        "{text}"
    );
}

#[test]
fn a_bad_upstream_ca_file_is_named_with_its_line() {
    let o = origin();
    let d = PolicyDir::new(&o);
    d.stage("prod", "target = \"http://{{ORIGIN}}\"\n");
    d.write("ca.pem", "not a certificate\n");
    d.server_settings("upstream_ca_file = \"ca.pem\"\n");
    let (ok, text) = diagnostics(&d);
    assert!(!ok, "{text}");
    assert!(
        text.contains("gateway.toml:2:20: error: upstream_ca_file")
            && text.contains("holds no certificate"),
        "{text}"
    );
}
