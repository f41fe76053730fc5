//! TLS to targets: gateway.toml `[server] upstream_ca_file` (the trust anchors of every
//! `https://` target) and a TargetServer's `ssl` (Apigee's `sSLInfo`).
//!
//! Pingora (rustls) reads the CA file once, when the proxy service is built, and panics on a
//! file it cannot read (`TlsConnector::build_connector(..).unwrap()`), so it is checked here,
//! at load, with the same loader (pingora-tls-fastlane-redis.md §2.4).

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::ctx::FileCtx;
use crate::config::file::FileTargetServerSsl;
use crate::diag::{Diagnostic, Diagnostics};
use crate::policy::bundle::SslInfoSpec;
use crate::runtime::stage::Target;
use crate::runtime::target::{Destination, Host};

/// `[server] upstream_ca_file`: the path Pingora will load (relative to gateway.toml's
/// directory), after checking that it holds at least one usable certificate.
pub(crate) fn upstream_ca_file(cx: &mut FileCtx, v: &Spanned<String>) -> Option<PathBuf> {
    let written = v.get_ref().trim();
    let path = match cx.path.parent() {
        Some(dir) if !written.starts_with('/') => dir.join(written),
        _ => PathBuf::from(written),
    };
    let hint = || {
        Some("write the path of a PEM file of CA certificates (-----BEGIN CERTIFICATE-----), e.g. upstream_ca_file = \"/etc/cachegate/upstream-ca.pem\"".to_owned())
    };
    if written.is_empty() {
        cx.error(v, "upstream_ca_file is empty", hint());
        return None;
    }
    if let Err(e) = std::fs::metadata(&path) {
        cx.error(
            v,
            format!("upstream_ca_file `{}` cannot be read: {e}", path.display()),
            hint(),
        );
        return None;
    }
    let mut store = pingora::tls::RootCertStore::empty();
    if let Err(e) = pingora::tls::load_ca_file_into_store(&path, &mut store) {
        cx.error(
            v,
            format!(
                "upstream_ca_file `{}` is not a PEM file of certificates: {e}",
                path.display()
            ),
            hint(),
        );
        return None;
    }
    if store.is_empty() {
        cx.error(
            v,
            format!(
                "upstream_ca_file `{}` holds no certificate: no https target could be trusted",
                path.display()
            ),
            hint(),
        );
        return None;
    }
    Some(path)
}

/// What a TargetServer's `ssl` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerTls {
    /// TLS is on.
    pub enabled: bool,
    /// The certificate is verified.
    pub verify: bool,
}

/// A TargetServer's `ssl`: `enabled` and `ignore_validation_errors` are honoured; what needs
/// key material cachegate does not manage (trust and key stores, mutual TLS) is refused by
/// name; `protocols` and `ciphers` are ignored with a warning. `None` after an error.
pub(crate) fn server_ssl(
    cx: &mut FileCtx,
    name: &str,
    ssl: &FileTargetServerSsl,
) -> Option<ServerTls> {
    let mut ok = true;
    let refused = [
        ("trust_store", &ssl.trust_store, "trust anchors are the gateway's: set [server] upstream_ca_file = \"/path/ca.pem\" (or rely on the platform's roots) and remove trust_store"),
        ("key_store", &ssl.key_store, "mutual TLS (a client certificate) is not supported by cachegate; remove key_store, or terminate mTLS in a sidecar"),
        ("key_alias", &ssl.key_alias, "mutual TLS (a client certificate) is not supported by cachegate; remove key_alias"),
    ];
    for (key, v, hint) in refused {
        if let Some(v) = v {
            cx.error(
                v,
                format!("target server `{name}`: ssl.{key} is not supported"),
                Some(hint.to_owned()),
            );
            ok = false;
        }
    }
    if let Some(v) = &ssl.client_auth_enabled {
        if v.get_ref().as_bool() != Some(false) {
            cx.error(
                v,
                format!("target server `{name}`: ssl.client_auth_enabled (mutual TLS) is not supported"),
                Some("remove client_auth_enabled (or write false): cachegate presents no client certificate".into()),
            );
            ok = false;
        }
    }
    for (key, v) in [("protocols", &ssl.protocols), ("ciphers", &ssl.ciphers)] {
        if let Some(v) = v {
            cx.warning(
                v,
                format!("target server `{name}`: ssl.{key} is ignored: cachegate offers TLS 1.2 and 1.3 with rustls's default cipher suites"),
                Some(format!("remove {key}")),
            );
        }
    }
    let enabled = *ssl.enabled.get_ref();
    let ignore = ssl.ignore_validation_errors.as_ref();
    let verify = !ignore.is_some_and(|v| *v.get_ref());
    if let Some(v) = ignore.filter(|v| *v.get_ref() && enabled) {
        cx.warning(
            v,
            format!("target server `{name}`: ignore_validation_errors = true: its TLS certificate is NOT verified, so anyone on the path can impersonate it"),
            Some("trust its CA with [server] upstream_ca_file instead, and remove ignore_validation_errors".into()),
        );
    }
    ok.then_some(ServerTls { enabled, verify })
}

/// A TargetEndpoint's `<SSLInfo>` (parsed by `policy/bundle/ssl.rs`) applied to its target,
/// now that the URL's scheme is known: TLS follows the URL (`https://`), `<Enabled>true` with an
/// `http://` URL is refused (it would send in clear what the author meant to encrypt), and
/// `<IgnoreValidationErrors>true` turns certificate checks off, warned about at every load.
pub(crate) fn apply_ssl_info(
    target: &mut Target,
    ssl: &SslInfoSpec,
    file: &Path,
    diags: &mut Diagnostics,
) {
    match &target.to {
        Destination::Balanced(b) => {
            let plain = b.servers.iter().find(|s| s.host.tls.is_none());
            if let (Some(true), Some(s)) = (ssl.enabled, plain) {
                diags.push(
                    Diagnostic::error(file, Some(ssl.pos), format!("<SSLInfo><Enabled>true next to a <LoadBalancer> whose target server `{}` has no TLS", s.name))
                        .with_hint("TLS to TargetServers is set per server: add ssl = { enabled = true } to its [[target_servers]] in gateway.toml"),
                );
            }
            if let Some(pos) = ssl.ignore_validation_errors {
                diags.push(
                    Diagnostic::error(file, Some(pos), "<IgnoreValidationErrors> next to a <LoadBalancer> is not supported")
                        .with_hint("set ssl = { enabled = true, ignore_validation_errors = true } on the [[target_servers]] in gateway.toml instead"),
                );
            }
            return;
        }
        Destination::Host(h) if h.tls.is_none() => {
            if ssl.enabled == Some(true) {
                diags.push(
                    Diagnostic::error(file, Some(ssl.pos), format!("<SSLInfo><Enabled>true but the target `{}` is http://: its requests would go in clear", target.url))
                        .with_hint("write the URL with https:// (or remove <SSLInfo>)"),
                );
            }
            if let Some(pos) = ssl.ignore_validation_errors {
                diags.push(
                    Diagnostic::warning(
                        file,
                        Some(pos),
                        "<IgnoreValidationErrors> has no effect: the target is http://",
                    )
                    .with_hint("remove it, or write the URL with https://"),
                );
            }
            return;
        }
        _ => {}
    }
    if ssl.enabled == Some(false) {
        diags.push(
            Diagnostic::warning(file, Some(ssl.pos), format!("<SSLInfo><Enabled>false is ignored: the target `{}` is https://, so its connections use TLS", target.url))
                .with_hint("write <Enabled>true</Enabled>, or an http:// URL for a plain-HTTP backend"),
        );
    }
    if let Some(pos) = ssl.ignore_validation_errors {
        if ignore_validation_errors(target) {
            diags.push(
                Diagnostic::warning(file, Some(pos), format!("<IgnoreValidationErrors>true: the TLS certificate of `{}` is NOT verified, so anyone on the path can impersonate it", target.url))
                    .with_hint("trust its CA with gateway.toml [server] upstream_ca_file instead, and remove <IgnoreValidationErrors>"),
            );
        }
    }
}

/// Apigee's `IgnoreValidationErrors`: the target's TLS certificate is not verified. Returns
/// whether the target uses TLS at all (a plain-HTTP target has nothing to ignore).
fn ignore_validation_errors(target: &mut Target) -> bool {
    match &mut target.to {
        Destination::Host(Host { tls: Some(t), .. }) => {
            t.verify = false;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Doc {
        f: Option<Spanned<String>>,
        ssl: Option<FileTargetServerSsl>,
    }

    /// Runs `check` on `text` (a gateway.toml fragment) in a file `dir/gateway.toml`; returns
    /// the diagnostics as text.
    fn with_doc<T>(
        dir: &Path,
        text: &str,
        check: impl FnOnce(&mut FileCtx, &Doc) -> T,
    ) -> (T, String) {
        let doc: Doc = toml::from_str(text).unwrap();
        let path = dir.join("gateway.toml");
        let mut diags = Diagnostics::new();
        let mut cx = FileCtx {
            path: &path,
            text,
            diags: &mut diags,
        };
        let out = check(&mut cx, &doc);
        (out, diags.to_string())
    }

    fn ca_file(dir: &Path, text: &str) -> (Option<PathBuf>, String) {
        with_doc(dir, text, |cx, d| {
            upstream_ca_file(cx, d.f.as_ref().unwrap())
        })
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUJ3m0V3y9tq2f1F1wBmFzZx6y8YIwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_ca_file_must_exist_be_pem_and_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (p, d) = ca_file(dir.path(), "f = \"missing.pem\"");
        assert!(p.is_none());
        assert!(
            d.contains("gateway.toml:1:5: error: upstream_ca_file"),
            "{d}"
        );
        assert!(
            d.contains("cannot be read") && d.contains("hint: write the path of a PEM file"),
            "{d}"
        );

        std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
        let (p, d) = ca_file(dir.path(), "f = \"empty.pem\"");
        assert!(p.is_none());
        assert!(d.contains("holds no certificate"), "{d}");

        // A PEM block whose content is not a certificate.
        std::fs::write(dir.path().join("bad.pem"), PEM).unwrap();
        let (p, d) = ca_file(dir.path(), "f = \"bad.pem\"");
        assert!(p.is_none(), "{d}");
        assert!(d.contains("error: upstream_ca_file"), "{d}");

        let (p, d) = ca_file(dir.path(), "f = \"\"");
        assert!(p.is_none());
        assert!(d.contains("upstream_ca_file is empty"), "{d}");
    }

    #[test]
    fn a_relative_ca_file_is_next_to_gateway_toml() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        let (p, d) = ca_file(dir.path(), "f = \"ca.pem\"");
        assert_eq!(p, Some(dir.path().join("ca.pem")), "{d}");
        assert!(d.is_empty(), "{d}");
    }

    fn ssl(text: &str) -> (Option<ServerTls>, String) {
        let dir = Path::new("/policies");
        with_doc(dir, text, |cx, d| {
            server_ssl(cx, "b", d.ssl.as_ref().unwrap())
        })
    }

    #[test]
    fn a_target_server_ssl_is_honoured_refused_or_warned_about_by_name() {
        let (t, d) = ssl("ssl = { enabled = true }");
        assert_eq!(
            t,
            Some(ServerTls {
                enabled: true,
                verify: true
            })
        );
        assert!(d.is_empty(), "{d}");

        let (t, d) = ssl("ssl = { enabled = true, ignore_validation_errors = true }");
        assert_eq!(
            t,
            Some(ServerTls {
                enabled: true,
                verify: false
            })
        );
        assert!(d.contains("warning: target server `b`: ignore_validation_errors = true: its TLS certificate is NOT verified"), "{d}");

        let (t, d) =
            ssl("ssl = { enabled = true, client_auth_enabled = false, protocols = [\"TLSv1.2\"] }");
        assert!(t.is_some());
        assert!(
            d.contains("warning: target server `b`: ssl.protocols is ignored"),
            "{d}"
        );
        assert!(!d.contains("error"), "{d}");

        for (key, text) in [
            (
                "trust_store",
                "ssl = { enabled = true, trust_store = \"ref://ts\" }",
            ),
            ("key_store", "ssl = { enabled = true, key_store = \"ks\" }"),
            ("key_alias", "ssl = { enabled = true, key_alias = \"k\" }"),
            (
                "client_auth_enabled",
                "ssl = { enabled = true, client_auth_enabled = true }",
            ),
        ] {
            let (t, d) = ssl(text);
            assert!(t.is_none(), "{key}");
            assert!(
                d.contains(&format!("error: target server `b`: ssl.{key}")),
                "{d}"
            );
            assert!(d.contains("hint:"), "{d}");
        }
    }
}
