//! The wire formats of the shared tier, as pure functions that need no connection: the entry
//! value (its plaintext form, and the first bytes that tell plaintext and sealed values apart),
//! the `MGET` reply of purge records, the JSON invalidation messages, and the unix-ms times they
//! all carry (the module docs of `shared` describe the formats). Separate so the formats can be
//! read and tested on their own; sealing, which needs the tier's keys, is in `value`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::count_error;
use crate::cache::entry::{Entry, StoreKey};

/// First byte of a plaintext entry value: the entry format version.
pub const ENTRY_FORMAT: u8 = 1;
/// First byte of a sealed entry value.
pub const SEALED_MARKER: u8 = 0xC1;

/// Version of the invalidation message format.
const MESSAGE_VERSION: u8 = 1;

/// An invalidation fanned out to every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Remove these entries from the local tier.
    Remove { stage: String, keys: Vec<StoreKey> },
    /// Everything under `prefix` created at or before `at_ms` (unix ms) is purged.
    PurgePrefix {
        stage: String,
        prefix: [u8; 16],
        at_ms: u64,
    },
    /// Everything in the stage created at or before `at_ms` (unix ms) is purged.
    Flush { stage: String, at_ms: u64 },
}

pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(super) fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The plaintext wire form of an entry; `None` when a length does not fit its field.
pub(super) fn encode_entry(entry: &Entry) -> Option<Vec<u8>> {
    let prefix_count = u16::try_from(entry.prefixes.len()).ok()?;
    let meta_len = u32::try_from(entry.meta.len()).ok()?;
    let mut out = Vec::with_capacity(
        1 + 8 + 8 + 2 + entry.prefixes.len() * 16 + 4 + entry.meta.len() + entry.body.len(),
    );
    out.push(ENTRY_FORMAT);
    out.extend_from_slice(&unix_ms(entry.created).to_be_bytes());
    out.extend_from_slice(&unix_ms(entry.expires_at).to_be_bytes());
    out.extend_from_slice(&prefix_count.to_be_bytes());
    for p in entry.prefixes.iter() {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&meta_len.to_be_bytes());
    out.extend_from_slice(&entry.meta);
    out.extend_from_slice(&entry.body);
    Some(out)
}

/// Parses the plaintext wire form; `None` on any inconsistency.
pub(super) fn decode_entry(buf: Bytes) -> Option<Entry> {
    fn take<const N: usize>(buf: &[u8], pos: &mut usize) -> Option<[u8; N]> {
        let end = pos.checked_add(N)?;
        let bytes: [u8; N] = buf.get(*pos..end)?.try_into().ok()?;
        *pos = end;
        Some(bytes)
    }
    let mut pos = 0usize;
    let [version] = take::<1>(&buf, &mut pos)?;
    if version != ENTRY_FORMAT {
        return None;
    }
    let created = u64::from_be_bytes(take::<8>(&buf, &mut pos)?);
    let expires = u64::from_be_bytes(take::<8>(&buf, &mut pos)?);
    let count = usize::from(u16::from_be_bytes(take::<2>(&buf, &mut pos)?));
    let mut prefixes = Vec::with_capacity(count);
    for _ in 0..count {
        prefixes.push(take::<16>(&buf, &mut pos)?);
    }
    let meta_len = usize::try_from(u32::from_be_bytes(take::<4>(&buf, &mut pos)?)).ok()?;
    let meta_end = pos.checked_add(meta_len)?;
    if meta_end > buf.len() {
        return None;
    }
    Some(Entry {
        meta: buf.slice(pos..meta_end),
        body: buf.slice(meta_end..),
        created: from_unix_ms(created),
        expires_at: from_unix_ms(expires),
        prefixes: prefixes.into(),
        decoded: Default::default(),
    })
}

#[derive(Serialize, Deserialize)]
struct WireMessage {
    v: u8,
    from: u64,
    msg: WireBody,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum WireBody {
    Remove {
        stage: String,
        keys: Vec<String>,
    },
    PurgePrefix {
        stage: String,
        prefix: String,
        at_ms: u64,
    },
    Flush {
        stage: String,
        at_ms: u64,
    },
}

/// Purge records as read: one time (unix ms) per prefix asked for, then the stage's flush floor.
pub type PurgeTimes = (Vec<Option<u64>>, Option<u64>);

/// The `MGET` reply for `prefixes` purge records and the flush floor; `None` (counted) when it
/// has the wrong shape.
pub(super) fn parse_purge_times(
    mut values: Vec<Option<String>>,
    prefixes: usize,
) -> Option<PurgeTimes> {
    if values.len() != prefixes + 1 {
        count_error("purge_times", "decode");
        return None;
    }
    let parse = |v: Option<String>| {
        let v = v?;
        let parsed = v.parse::<u64>().ok();
        if parsed.is_none() {
            count_error("purge_times", "decode");
        }
        parsed
    };
    let floor = values.pop().and_then(parse);
    Some((values.into_iter().map(parse).collect(), floor))
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    hex::decode(s).ok()?.try_into().ok()
}

pub(super) fn encode_message(from: u64, msg: &Invalidation) -> Option<Vec<u8>> {
    let body = match msg {
        Invalidation::Remove { stage, keys } => WireBody::Remove {
            stage: stage.clone(),
            keys: keys.iter().map(StoreKey::to_hex).collect(),
        },
        Invalidation::PurgePrefix {
            stage,
            prefix,
            at_ms,
        } => WireBody::PurgePrefix {
            stage: stage.clone(),
            prefix: hex::encode(prefix),
            at_ms: *at_ms,
        },
        Invalidation::Flush { stage, at_ms } => WireBody::Flush {
            stage: stage.clone(),
            at_ms: *at_ms,
        },
    };
    serde_json::to_vec(&WireMessage {
        v: MESSAGE_VERSION,
        from,
        msg: body,
    })
    .ok()
}

/// `(sender, message)`; `None` for anything malformed or of another version.
pub(super) fn decode_message(payload: &[u8]) -> Option<(u64, Invalidation)> {
    let wire: WireMessage = serde_json::from_slice(payload).ok()?;
    if wire.v != MESSAGE_VERSION {
        return None;
    }
    let msg = match wire.msg {
        WireBody::Remove { stage, keys } => Invalidation::Remove {
            stage,
            keys: keys
                .iter()
                .map(|k| hex16(k).map(StoreKey))
                .collect::<Option<Vec<_>>>()?,
        },
        WireBody::PurgePrefix {
            stage,
            prefix,
            at_ms,
        } => Invalidation::PurgePrefix {
            stage,
            prefix: hex16(&prefix)?,
            at_ms,
        },
        WireBody::Flush { stage, at_ms } => Invalidation::Flush { stage, at_ms },
    };
    Some((wire.from, msg))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::shared::test_support::{entry, sk};

    #[test]
    fn entry_wire_round_trip_and_rejects_garbage() {
        let e = entry("body bytes", Duration::from_secs(60));
        let bytes = encode_entry(&e).unwrap();
        assert_eq!(bytes[0], ENTRY_FORMAT);
        assert_eq!(decode_entry(Bytes::from(bytes.clone())).unwrap(), e);
        for n in 0..(1 + 8 + 8 + 2 + 32 + 4 + 9) {
            assert!(
                decode_entry(Bytes::copy_from_slice(&bytes[..n])).is_none(),
                "prefix {n}"
            );
        }
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(decode_entry(Bytes::from(other)).is_none());
        let empty = Entry {
            meta: Bytes::new(),
            body: Bytes::new(),
            prefixes: Vec::new().into(),
            decoded: Default::default(),
            ..e
        };
        assert_eq!(
            decode_entry(Bytes::from(encode_entry(&empty).unwrap())).unwrap(),
            empty
        );
    }

    #[test]
    fn message_wire_round_trip() {
        let msgs = [
            Invalidation::Remove {
                stage: "prod".into(),
                keys: vec![sk(1), sk(0xab)],
            },
            Invalidation::PurgePrefix {
                stage: "prod".into(),
                prefix: [9; 16],
                at_ms: 1_700_000_000_123,
            },
            Invalidation::Flush {
                stage: "dev".into(),
                at_ms: u64::MAX,
            },
        ];
        for m in msgs {
            let bytes = encode_message(7, &m).unwrap();
            assert_eq!(decode_message(&bytes).unwrap(), (7, m));
        }
        let flush = String::from_utf8(
            encode_message(
                7,
                &Invalidation::Flush {
                    stage: "s".into(),
                    at_ms: 5,
                },
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            flush,
            r#"{"v":1,"from":7,"msg":{"op":"flush","stage":"s","at_ms":5}}"#
        );
        assert!(decode_message(b"{}").is_none());
        assert!(
            decode_message(br#"{"v":2,"from":7,"msg":{"op":"flush","stage":"s","at_ms":5}}"#)
                .is_none()
        );
        assert!(decode_message(
            br#"{"v":1,"from":7,"msg":{"op":"remove","stage":"s","keys":["zz"]}}"#
        )
        .is_none());
    }
}
