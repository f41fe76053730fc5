//! The length framing of key bytes: every string is preceded by its length, so that no two
//! different sequences of fragments can produce the same bytes (`("a__b","c")` never equals
//! `("a","b__c")`, and an absent fragment never equals an empty one).

/// Appends a fragment: the absent marker, or the present marker and the framed value.
pub(crate) fn push_fragment(out: &mut Vec<u8>, value: Option<&str>, absent: u8, present: u8) {
    match value {
        None => out.push(absent),
        Some(v) => {
            out.push(present);
            push_str(out, v);
        }
    }
}

/// Appends a length-framed string.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    push_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Appends a length: `u32` big-endian, or `u32::MAX` followed by a `u64` for huge values, so the
/// framing stays injective without ever truncating.
pub(crate) fn push_len(out: &mut Vec<u8>, len: usize) {
    match u32::try_from(len) {
        Ok(n) if n != u32::MAX => out.extend_from_slice(&n.to_be_bytes()),
        _ => {
            out.extend_from_slice(&u32::MAX.to_be_bytes());
            out.extend_from_slice(&u64::try_from(len).unwrap_or(u64::MAX).to_be_bytes());
        }
    }
}

/// Bytes `push_str` appends for a string of `len` bytes.
pub(crate) fn framed_len(len: usize) -> usize {
    if u32::try_from(len).is_ok_and(|n| n != u32::MAX) {
        4 + len
    } else {
        12 + len
    }
}
