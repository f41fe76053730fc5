//! A stored value: an entry's plaintext wire form, or that form sealed with the tier's keys and
//! bound to its Redis key, and the check that the caller's `encrypted` flag matches the form
//! read. Separate from `codec` because it needs the tier's keys (in [`Inner`]), which the pure
//! formats do not.

use bytes::Bytes;

use super::codec::{decode_entry, encode_entry, ENTRY_FORMAT, SEALED_MARKER};
use super::conn::Inner;
use super::error::count_error;
use crate::cache::entry::Entry;

impl Inner {
    /// Decodes a stored value for a caller that asked for `encrypted` or not.
    pub(super) fn decode_value(
        &self,
        rkey: &str,
        raw: Vec<u8>,
        encrypted: bool,
    ) -> Result<Entry, DecodeError> {
        match (raw.first().copied(), encrypted) {
            (Some(SEALED_MARKER), true) => {
                let sealer = self.sealer.as_ref().ok_or(DecodeError::NoKey)?;
                let plain = sealer
                    .open(rkey.as_bytes(), raw.get(1..).unwrap_or_default())
                    .ok_or(DecodeError::Open)?;
                decode_entry(Bytes::from(plain)).ok_or(DecodeError::Corrupt)
            }
            (Some(ENTRY_FORMAT), false) => {
                decode_entry(Bytes::from(raw)).ok_or(DecodeError::Corrupt)
            }
            (Some(SEALED_MARKER), false) | (Some(ENTRY_FORMAT), true) => Err(DecodeError::Mode),
            _ => Err(DecodeError::Corrupt),
        }
    }

    /// The stored value for a write; `None` (counted) when it cannot be written.
    pub(super) fn encode_value(
        &self,
        rkey: &str,
        entry: &Entry,
        encrypted: bool,
    ) -> Option<Vec<u8>> {
        let Some(plain) = encode_entry(entry) else {
            count_error("put", "too_large");
            return None;
        };
        if !encrypted {
            return Some(plain);
        }
        let Some(sealer) = &self.sealer else {
            count_error("put", "no_key");
            return None;
        };
        match sealer.seal(rkey.as_bytes(), &plain) {
            Ok(sealed) => {
                let mut out = Vec::with_capacity(1 + sealed.len());
                out.push(SEALED_MARKER);
                out.extend_from_slice(&sealed);
                Some(out)
            }
            Err(_) => {
                count_error("put", "seal");
                None
            }
        }
    }
}

pub(super) enum DecodeError {
    /// Not a value of a known format, or inconsistent.
    Corrupt,
    /// The seal did not open (wrong key, tampered, moved from another key).
    Open,
    /// Sealed where plaintext was expected, or the reverse.
    Mode,
    /// Sealed, but no keys are configured.
    NoKey,
}

impl DecodeError {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Corrupt => "decode",
            Self::Open => "open",
            Self::Mode => "mode",
            Self::NoKey => "no_key",
        }
    }
}
