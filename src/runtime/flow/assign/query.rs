//! The raw query string of a request, as `<QueryParams>` changes it: pairs are matched by their
//! decoded names but kept byte for byte as received, and new values are percent-encoded.

use std::borrow::Cow;

/// One `name=value` pair of a query string: its text exactly as written (still encoded) and its
/// decoded name, used to match the names a policy gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct QueryPair<'q> {
    pub(super) name: String,
    raw: Cow<'q, str>,
}

impl QueryPair<'_> {
    /// A new pair from plain `name` and `value`, percent-encoded.
    pub(super) fn new(name: &str, value: &str) -> QueryPair<'static> {
        QueryPair {
            name: name.to_owned(),
            raw: Cow::Owned(format!("{}={}", encode_query(name), encode_query(value))),
        }
    }
}

/// Splits a raw query (`a=1&b=2&a=3`) into its pairs, in order. Empty pieces (`a=1&&b=2`) are
/// dropped; a piece without `=` is a name with no value.
pub(super) fn parse_query(query: &str) -> Vec<QueryPair<'_>> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let name = piece.split_once('=').map_or(piece, |(n, _)| n);
            QueryPair {
                name: crate::util::percent_decode(name),
                raw: Cow::Borrowed(piece),
            }
        })
        .collect()
}

/// Joins pairs back into a raw query string (no leading '?').
pub(super) fn build_query(pairs: &[QueryPair<'_>]) -> String {
    let mut out = String::new();
    for (i, p) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&p.raw);
    }
    out
}

/// `<Set><QueryParams>`: the first occurrence of `name` is replaced in place, later ones removed;
/// appended when absent.
pub(super) fn set_query_param(pairs: &mut Vec<QueryPair<'_>>, name: &str, value: &str) {
    match pairs.iter().position(|p| p.name == name) {
        Some(first) => {
            let mut i = 0;
            pairs.retain(|p| {
                let keep = i <= first || p.name != name;
                i += 1;
                keep
            });
            if let Some(slot) = pairs.get_mut(first) {
                *slot = QueryPair::new(name, value);
            }
        }
        None => pairs.push(QueryPair::new(name, value)),
    }
}

/// Percent-encodes everything but the unreserved characters `A-Za-z0-9-._~` (RFC 3986), so a
/// value can never add a pair (`&`), a fragment (`#`) or a space to the query.
fn encode_query(s: &str) -> String {
    // Upper-case hex digit of a nibble (0..=15), without indexing.
    let hex = |n: u8| char::from(if n < 10 { b'0' + n } else { b'A' + (n - 10) });
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex(b >> 4));
            out.push(hex(b & 0x0f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_helpers_keep_raw_text() {
        let pairs = parse_query("a=1&b=x%20y&a=3&flag&&c=");
        let names: Vec<&str> = pairs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "a", "flag", "c"]);
        assert_eq!(pairs[1].raw, "b=x%20y");
        assert_eq!(build_query(&pairs), "a=1&b=x%20y&a=3&flag&c=");
        assert_eq!(build_query(&parse_query("")), "");
        assert_eq!(parse_query("my%20name=1")[0].name, "my name");
        assert_eq!(encode_query("a b&c=d/é~-._"), "a%20b%26c%3Dd%2F%C3%A9~-._");
    }

    #[test]
    fn query_set_replaces_first_in_place_and_drops_the_rest() {
        let mut pairs = parse_query("a=1&b=2&a=3&c=4&a=5");
        set_query_param(&mut pairs, "a", "new value");
        assert_eq!(build_query(&pairs), "a=new%20value&b=2&c=4");
        set_query_param(&mut pairs, "d", "&x=y");
        assert_eq!(build_query(&pairs), "a=new%20value&b=2&c=4&d=%26x%3Dy");
    }
}
