//! `HTTPTargetConnection/SSLInfo`: TLS to the backend of a TargetEndpoint (apigee-bundles.md,
//! the TargetEndpoint table: `Enabled`, `Enforce`, `ClientAuthEnabled`, `KeyStore`, `KeyAlias`,
//! `TrustStore`, `CommonName`, `Protocols`, `Ciphers`, `IgnoreValidationErrors`).
//!
//! What cachegate does: TLS when the URL is `https://` (SNI and the verified name are the
//! URL's host), the certificate verified against the gateway's trust anchors unless
//! `IgnoreValidationErrors`. What needs key material cachegate does not manage (references to
//! Apigee keystores and truststores, mutual TLS, a different expected name) is refused by name;
//! `Protocols` and `Ciphers` are ignored with a warning. Whether the settings fit the URL (an
//! `http://` URL with `<Enabled>true`, a LoadBalancer) is checked by the loader, which knows it.

use super::mapper::EndpointMapper;
use crate::diag::Pos;
use crate::policy::xml::tree::Node;

/// `SSLInfo` as far as cachegate honours it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslInfoSpec {
    /// Position of `<SSLInfo>`.
    pub pos: Pos,
    /// `<Enabled>`, when written.
    pub enabled: Option<bool>,
    /// `<IgnoreValidationErrors>true`: where it is written.
    pub ignore_validation_errors: Option<Pos>,
}

/// Children refused, with what to do instead.
const REFUSED: &[(&str, &str)] = &[
    ("TrustStore", "cachegate does not read Apigee truststore references: trust the backend's CA with gateway.toml [server] upstream_ca_file = \"/path/ca.pem\" (it applies to every https target) and remove <TrustStore>"),
    ("KeyStore", "mutual TLS (a client certificate) is not supported by cachegate: remove <KeyStore>, or let a sidecar present the certificate"),
    ("KeyAlias", "mutual TLS (a client certificate) is not supported by cachegate: remove <KeyAlias>"),
    ("CommonName", "cachegate checks the certificate against the URL's host name: remove <CommonName> and write that name in the <URL>"),
];

impl EndpointMapper<'_, '_> {
    /// `HTTPTargetConnection/SSLInfo` of the TargetEndpoint `root`, if any (errors reported).
    pub(super) fn ssl_info(&mut self, root: &Node) -> Option<SslInfoSpec> {
        let conn = root.children_named("HTTPTargetConnection").next()?;
        let ssl = conn.children_named("SSLInfo").next()?;
        let known = [
            "Enabled",
            "Enforce",
            "IgnoreValidationErrors",
            "ClientAuthEnabled",
            "Protocols",
            "Ciphers",
            "TrustStore",
            "KeyStore",
            "KeyAlias",
            "CommonName",
        ];
        self.expect(ssl, &known);
        for (name, hint) in REFUSED {
            if let Some(n) = ssl.children_named(name).next() {
                self.sink.error(
                    n.pos,
                    format!("<SSLInfo><{name}> is not supported by cachegate"),
                    Some((*hint).to_owned()),
                );
            }
        }
        if self.flag(ssl, "ClientAuthEnabled") == Some(true) {
            let pos = ssl
                .children_named("ClientAuthEnabled")
                .next()
                .map_or(ssl.pos, |n| n.pos);
            self.sink.error(
                pos,
                "<SSLInfo><ClientAuthEnabled>true (mutual TLS) is not supported by cachegate",
                Some("write <ClientAuthEnabled>false</ClientAuthEnabled> or remove it: cachegate presents no client certificate".into()),
            );
        }
        for name in ["Protocols", "Ciphers"] {
            if let Some(n) = ssl.children_named(name).next() {
                self.sink.warning(
                    n.pos,
                    format!("<SSLInfo><{name}> is ignored: cachegate offers TLS 1.2 and 1.3 with rustls's default cipher suites"),
                    Some(format!("remove <{name}>")),
                );
            }
        }
        if self.flag(ssl, "Enforce") == Some(false) {
            let pos = ssl
                .children_named("Enforce")
                .next()
                .map_or(ssl.pos, |n| n.pos);
            self.sink.warning(
                pos,
                "<SSLInfo><Enforce>false is ignored: cachegate always enforces TLS for an https target (use <IgnoreValidationErrors> to skip certificate checks)",
                Some("remove <Enforce>".into()),
            );
        }
        let ignore = self
            .flag(ssl, "IgnoreValidationErrors")
            .filter(|b| *b)
            .map(|_| {
                ssl.children_named("IgnoreValidationErrors")
                    .next()
                    .map_or(ssl.pos, |n| n.pos)
            });
        Some(SslInfoSpec {
            pos: ssl.pos,
            enabled: self.flag(ssl, "Enabled"),
            ignore_validation_errors: ignore,
        })
    }
}
