//! Bearer-token authentication for the admin API.
//!
//! The configured token is kept only as its SHA-256 digest, and a presented token is hashed and
//! compared in constant time, so neither the comparison time nor a memory dump reveals it.

use http::{HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The admin token, if one is configured.
#[derive(Clone, Default)]
pub struct AdminAuth {
    digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("configured", &self.digest.is_some())
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token is configured: mutations are disabled.
    NotConfigured,
    /// No or malformed `Authorization` header.
    Missing,
    /// Wrong token.
    Wrong,
}

impl Refusal {
    /// HTTP status to answer with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NotConfigured => StatusCode::FORBIDDEN,
            Refusal::Missing => StatusCode::UNAUTHORIZED,
            Refusal::Wrong => StatusCode::FORBIDDEN,
        }
    }

    /// Message for the JSON body.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotConfigured => {
                "admin mutations are disabled: no admin token was configured when cachegate started ([admin] token_env is not set, or the variable it names was unset or empty then; set it and restart)"
            }
            Refusal::Missing => "missing bearer token",
            Refusal::Wrong => "invalid token",
        }
    }
}

impl AdminAuth {
    /// Reads the token from environment variable `env` (if given and set and non-empty).
    pub fn from_env(env: Option<&str>) -> Self {
        let token = env
            .and_then(|name| std::env::var(name).ok())
            .filter(|t| !t.is_empty());
        Self {
            digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        }
    }

    /// An explicit token (tests and embedding).
    pub fn with_token(token: &str) -> Self {
        Self {
            digest: Some(Sha256::digest(token.as_bytes()).into()),
        }
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, header: Option<&HeaderValue>) -> Result<(), Refusal> {
        let Some(expected) = &self.digest else {
            return Err(Refusal::NotConfigured);
        };
        let presented = header
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Missing)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bool::from(digest.ct_eq(expected)) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_tokens() {
        let auth = AdminAuth::with_token("s3cret");
        assert_eq!(
            auth.check(Some(&HeaderValue::from_static("Bearer s3cret"))),
            Ok(())
        );
        assert_eq!(
            auth.check(Some(&HeaderValue::from_static("Bearer nope"))),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            auth.check(Some(&HeaderValue::from_static("Basic x"))),
            Err(Refusal::Missing)
        );
        assert_eq!(auth.check(None), Err(Refusal::Missing));
        assert_eq!(
            AdminAuth::default().check(Some(&HeaderValue::from_static("Bearer s3cret"))),
            Err(Refusal::NotConfigured)
        );
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
