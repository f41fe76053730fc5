//! AES-256-GCM sealing of shared-tier values (`encrypted` caches).
//!
//! Anyone who can read Redis (a backup, `MONITOR`, a shared instance) would otherwise read cached
//! API responses. A sealed value is
//!
//! ```text
//! [version = 1][key id u8][12-byte random nonce][ciphertext + 16-byte tag]
//! ```
//!
//! with the Redis key as associated data, so a ciphertext moved to another key fails to open.
//! Keys come from an environment variable (`CACHEGATE_CACHE_KEYS` by default) holding
//! `id:base64key[,id:base64key…]`: the first key seals, every key opens, so a key is rotated by
//! putting a new one first and removing the old one once its values have expired. A value that
//! does not open (unknown key id, bad tag, truncated, other version) is a miss, never an error.
//!
//! Nonces are random (96 bits from the OS): keep well under 2^32 values per key (NIST SP
//! 800-38D) — rotate by key id.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use zeroize::Zeroizing;

/// Format version of a sealed value (its first byte).
pub const SEAL_VERSION: u8 = 1;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;

/// Why the key variable was refused. Messages name the variable and the key id, never key
/// material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The variable is set but holds only whitespace.
    #[error("{var} is set but empty: write `id:base64key[,id:base64key]`")]
    Empty { var: String },
    /// The variable is not valid Unicode.
    #[error("{var} is not valid Unicode")]
    NotUnicode { var: String },
    /// An item has no `id:` part.
    #[error("{var}: item {index} is not `id:base64key`")]
    Malformed { var: String, index: usize },
    /// The key id is not a number from 0 to 255.
    #[error("{var}: item {index} has a key id that is not a number from 0 to 255")]
    BadKeyId { var: String, index: usize },
    /// The key is not base64.
    #[error("{var}: key {id} is not valid base64")]
    BadBase64 { var: String, id: u8 },
    /// The key does not decode to 32 bytes.
    #[error("{var}: key {id} decodes to {len} bytes; AES-256 needs 32")]
    BadKeyLength { var: String, id: u8, len: usize },
    /// Two keys share an id.
    #[error("{var}: key id {id} appears twice")]
    DuplicateKeyId { var: String, id: u8 },
    /// Encryption itself failed (only for absurdly large plaintexts).
    #[error("sealing failed")]
    Seal,
}

/// The cache keys: the first seals, all open.
pub struct Sealer {
    keys: Vec<(u8, Aes256Gcm)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Sealer {
    /// Reads the keys from the environment variable `var`. `Ok(None)` when it is unset.
    pub fn from_env(var: &str) -> Result<Option<Self>, SealError> {
        match std::env::var(var) {
            Ok(value) => Self::parse(var, &value).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SealError::NotUnicode {
                var: var.to_owned(),
            }),
        }
    }

    /// Parses `id:base64key[,id:base64key…]` (whitespace around items ignored); `var` names
    /// the source in errors.
    pub fn parse(var: &str, value: &str) -> Result<Self, SealError> {
        let var_name = || var.to_owned();
        if value.trim().is_empty() {
            return Err(SealError::Empty { var: var_name() });
        }
        let mut keys: Vec<(u8, Aes256Gcm)> = Vec::new();
        for (index, item) in value.split(',').enumerate() {
            let item = item.trim();
            let Some((id, b64)) = item.split_once(':') else {
                return Err(SealError::Malformed {
                    var: var_name(),
                    index,
                });
            };
            let id: u8 = id.trim().parse().map_err(|_| SealError::BadKeyId {
                var: var_name(),
                index,
            })?;
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| SealError::BadBase64 {
                        var: var_name(),
                        id,
                    })?,
            );
            if raw.len() != 32 {
                return Err(SealError::BadKeyLength {
                    var: var_name(),
                    id,
                    len: raw.len(),
                });
            }
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(SealError::DuplicateKeyId {
                    var: var_name(),
                    id,
                });
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&raw));
            keys.push((id, cipher));
        }
        Ok(Self { keys })
    }

    /// The key ids, the sealing one first.
    pub fn key_ids(&self) -> Vec<u8> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// Seals `plaintext` under the first key, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        // `parse` never builds an empty key list.
        let (id, cipher) = self.keys.first().ok_or(SealError::Seal)?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(SEAL_VERSION);
        out.push(*id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a sealed value bound to `aad`; `None` on any failure (a miss).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != SEAL_VERSION {
            return None;
        }
        let id = sealed[1];
        let (_, cipher) = self.keys.iter().find(|(k, _)| *k == id)?;
        let nonce = Nonce::from_slice(&sealed[2..HEADER_LEN]);
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad,
                },
            )
            .ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    fn sealer(spec: &[(u8, u8)]) -> Sealer {
        let value = spec
            .iter()
            .map(|(id, b)| format!("{id}:{}", key(*b)))
            .collect::<Vec<_>>()
            .join(",");
        Sealer::parse("TEST_KEYS", &value).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = sealer(&[(1, 7)]);
        let sealed = s.seal(b"k", b"hello world").unwrap();
        assert_eq!(sealed[0], SEAL_VERSION);
        assert_eq!(sealed[1], 1);
        assert_eq!(sealed.len(), HEADER_LEN + 11 + TAG_LEN);
        assert_eq!(s.open(b"k", &sealed).unwrap(), b"hello world");
        // Fresh nonce every time.
        assert_ne!(s.seal(b"k", b"hello world").unwrap(), sealed);
        // Empty plaintext works too.
        let empty = s.seal(b"k", b"").unwrap();
        assert_eq!(s.open(b"k", &empty).unwrap(), b"");
    }

    #[test]
    fn wrong_aad_fails() {
        let s = sealer(&[(1, 7)]);
        let sealed = s.seal(b"gw:v1:prod:aaaa", b"secret").unwrap();
        assert!(s.open(b"gw:v1:prod:bbbb", &sealed).is_none());
        assert!(s.open(b"", &sealed).is_none());
    }

    #[test]
    fn tampering_fails() {
        let s = sealer(&[(1, 7)]);
        let sealed = s.seal(b"k", b"some plaintext").unwrap();
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(s.open(b"k", &t).is_none(), "flipped byte {i} still opened");
        }
        for n in 0..sealed.len() {
            assert!(
                s.open(b"k", &sealed[..n]).is_none(),
                "truncated to {n} opened"
            );
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(s.open(b"k", &longer).is_none());
    }

    #[test]
    fn rotation() {
        let old = sealer(&[(1, 7)]);
        let rotated = sealer(&[(2, 9), (1, 7)]);
        let new_only = sealer(&[(2, 9)]);
        let v1 = old.seal(b"k", b"old value").unwrap();
        let v2 = rotated.seal(b"k", b"new value").unwrap();
        assert_eq!(v2[1], 2);
        assert_eq!(rotated.open(b"k", &v1).unwrap(), b"old value");
        assert_eq!(rotated.open(b"k", &v2).unwrap(), b"new value");
        assert_eq!(new_only.open(b"k", &v2).unwrap(), b"new value");
        // Key 1 dropped: its values are misses.
        assert!(new_only.open(b"k", &v1).is_none());
        // Key 2 unknown to the old sealer.
        assert!(old.open(b"k", &v2).is_none());
        // Same id, different key material: fails.
        let impostor = sealer(&[(1, 8)]);
        assert!(impostor.open(b"k", &v1).is_none());
        assert_eq!(rotated.key_ids(), vec![2, 1]);
    }

    #[test]
    fn no_plaintext_in_output() {
        let s = sealer(&[(1, 7)]);
        let canary = b"CANARY-0123456789-the-secret-body";
        let sealed = s.seal(b"k", canary).unwrap();
        assert!(!sealed.windows(8).any(|w| canary.windows(8).any(|c| c == w)));
    }

    #[test]
    fn parse_errors_name_the_variable_not_the_key() {
        let k = key(3);
        let cases: Vec<(String, SealError)> = vec![
            ("  ".into(), SealError::Empty { var: "V".into() }),
            (
                k.clone(),
                SealError::Malformed {
                    var: "V".into(),
                    index: 0,
                },
            ),
            (
                format!("300:{k}"),
                SealError::BadKeyId {
                    var: "V".into(),
                    index: 0,
                },
            ),
            (
                format!("1:{k},x:{k}"),
                SealError::BadKeyId {
                    var: "V".into(),
                    index: 1,
                },
            ),
            (
                "1:not base64!".into(),
                SealError::BadBase64 {
                    var: "V".into(),
                    id: 1,
                },
            ),
            (
                format!(
                    "1:{}",
                    base64::engine::general_purpose::STANDARD.encode([1u8; 16])
                ),
                SealError::BadKeyLength {
                    var: "V".into(),
                    id: 1,
                    len: 16,
                },
            ),
            (
                format!("1:{k},1:{k}"),
                SealError::DuplicateKeyId {
                    var: "V".into(),
                    id: 1,
                },
            ),
        ];
        for (value, want) in cases {
            let err = Sealer::parse("V", &value).unwrap_err();
            assert_eq!(err, want, "for {value:?}");
            let msg = err.to_string();
            assert!(msg.contains('V'), "{msg}");
            assert!(!msg.contains(&k), "{msg} leaks the key");
        }
        let ok = Sealer::parse("V", &format!(" 5 : {k} , 6:{}", key(4))).unwrap();
        assert_eq!(ok.key_ids(), vec![5, 6]);
        assert!(!format!("{ok:?}").contains(&k));
    }
}
