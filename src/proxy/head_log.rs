//! The request lines as the client sent them, for the one case Pingora hides them.
//!
//! Pingora 0.9.1 does not refuse a request target holding bytes httparse rejects (control bytes,
//! space, `"`, `<`, `>`, non-ASCII): it percent-encodes them and parses the rebuilt head
//! (`escape_illegal_request_line`), and from then on only the rebuilt bytes exist. RFC 9112 §3.2
//! says a recipient SHOULD NOT autocorrect a malformed request line (it may be crafted to get
//! past filters), and a target with a NUL or CR must get `400`, never be forwarded escaped. So
//! the connection's stream records what it reads ([`HeadLog::record`]) and, once a head is
//! parsed, its original request line is looked up here ([`HeadLog::take_target`]).
//!
//! The head may have been read in any earlier read (a pipelined request arrives with the
//! previous one's head or body), so every read is recorded, except the bytes of request bodies:
//! once a head is found, the caller says how its body is framed ([`HeadLog::expect_body`]) and
//! that many bytes (a `Content-Length`, or a chunked body parsed as it goes by) are skipped, so
//! the next head must start exactly where the log resumes. Nothing in a body can pass for a head.
//! Escaping changes only the target, so the head is recognised by everything else (method,
//! ` HTTP/1.1`, every header line, byte for byte) and its target must escape to the one Pingora
//! parsed. A head that is not where it should be, or was pushed out by the bound, is reported
//! as [`Original::Unknown`], and the caller refuses when escaping could have happened (fail
//! closed).

/// Bytes read on one connection and not yet accounted for, oldest first, at most `cap`.
#[derive(Debug)]
pub(crate) struct HeadLog {
    buf: Vec<u8>,
    cap: usize,
    /// Body bytes still to come, to be skipped rather than recorded.
    skip: Skip,
    /// The bound was hit: what the log holds no longer starts at a head.
    lost: bool,
    /// The last head was found: its body can be skipped.
    synced: bool,
    /// A head was not where it should have been, or a body's framing was not what Pingora
    /// reads: the log can no longer tell heads from body bytes on this connection, so every
    /// later head is [`Original::Unknown`] (and refused when escaping could have happened).
    desynced: bool,
}

/// What the log knows about a head's original target.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Original {
    /// The target as received.
    Target(Vec<u8>),
    /// The head is not where the log says the next head starts (or was pushed out).
    Unknown,
}

/// How the body after a head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Body bytes being skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    Bytes(u64),
    /// A chunk-size line: the size so far.
    Size(u64),
    /// The rest of a chunk-size line (extensions), then a chunk of this size.
    SizeLine(u64),
    /// Chunk data still to come.
    Data(u64),
    /// The line end after chunk data.
    DataEnd,
    /// The trailer section, read as Pingora reads it: it ends at the first CRLF CRLF, counting
    /// the last chunk's CRLF; the number of those four bytes matched so far.
    Trailer(u8),
    /// A line end Pingora would not accept: where the body ends is unknown.
    Broken,
}

impl Skip {
    /// Consumes the body bytes at the front of `bytes`, returning how many there were.
    fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            let Some(&b) = bytes.get(at) else { break };
            match *self {
                Skip::None => return at,
                Skip::Bytes(n) | Skip::Data(n) => {
                    let avail = (bytes.len() - at) as u64;
                    let take = n.min(avail);
                    at += take as usize;
                    let left = n - take;
                    *self = match (*self, left) {
                        (Skip::Bytes(_), 0) => Skip::None,
                        (Skip::Bytes(_), l) => Skip::Bytes(l),
                        (_, 0) => Skip::DataEnd,
                        (_, l) => Skip::Data(l),
                    };
                    continue;
                }
                Skip::Size(n) => match (b as char).to_digit(16) {
                    Some(d) => {
                        *self = Skip::Size(n.saturating_mul(16).saturating_add(u64::from(d)))
                    }
                    None if b == b'\n' => *self = Skip::after_size(n),
                    None => *self = Skip::SizeLine(n),
                },
                Skip::SizeLine(n) => {
                    if b == b'\n' {
                        *self = Skip::after_size(n);
                    }
                }
                Skip::DataEnd => {
                    if b == b'\n' {
                        *self = Skip::Size(0);
                    }
                }
                Skip::Trailer(matched) => {
                    const END: &[u8; 4] = b"\r\n\r\n";
                    *self = match END.get(usize::from(matched)) {
                        Some(&want) if b == want && matched == 3 => Skip::None,
                        Some(&want) if b == want => Skip::Trailer(matched + 1),
                        // A bare CR or LF, or a CR not followed by LF.
                        _ if b == b'\r' || b == b'\n' || matched % 2 == 1 => Skip::Broken,
                        _ => Skip::Trailer(0),
                    };
                }
                Skip::Broken => return bytes.len(),
            }
            at += 1;
        }
        at
    }

    fn after_size(n: u64) -> Skip {
        if n == 0 {
            // The size line's CRLF is the first half of the end.
            Skip::Trailer(2)
        } else {
            Skip::Data(n)
        }
    }
}

/// Bytes Pingora percent-encodes in a request target: `CONTROLS` + SP `"` `<` `>`, and every
/// non-ASCII byte.
fn escaped_by_pingora(b: u8) -> bool {
    !(0x20..0x7f).contains(&b) || matches!(b, b' ' | b'"' | b'<' | b'>')
}

/// `target` as Pingora escapes it (upper-case hex, as `percent_encoding` writes).
#[cfg(test)]
fn pingora_escape(target: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(target.len());
    for &b in target {
        if escaped_by_pingora(b) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
    out
}

/// Whether `original` escaped as Pingora does is `escaped` (without building the escaped copy:
/// this runs for every request).
fn escapes_to(original: &[u8], escaped: &[u8]) -> bool {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = escaped;
    for &b in original {
        let matched = if escaped_by_pingora(b) {
            rest.strip_prefix(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]][..])
        } else {
            rest.strip_prefix(&[b][..])
        };
        match matched {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

impl HeadLog {
    /// An empty log keeping at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            skip: Skip::None,
            lost: false,
            synced: false,
            desynced: false,
        }
    }

    /// Records what one read returned, less the body bytes being skipped. Past the bound the
    /// log is emptied: it no longer knows where a head starts.
    pub(crate) fn record(&mut self, bytes: &[u8]) {
        let body = self.skip.feed(bytes);
        if self.skip == Skip::Broken {
            self.desynced = true;
            self.buf = Vec::new();
            return;
        }
        let rest = bytes.get(body..).unwrap_or_default();
        if self.buf.len() + rest.len() > self.cap {
            self.buf = Vec::new();
            self.lost = true;
            return;
        }
        self.buf.extend_from_slice(rest);
    }

    /// The original target of `head` (a parsed header section, request line first, as Pingora
    /// holds it, maybe with an escaped target), which must be next in the log; forgets it.
    /// When it is not, the log is emptied (what it holds is of no use).
    pub(crate) fn take_target(&mut self, head: &[u8]) -> Original {
        let found = if self.lost || self.desynced {
            None
        } else {
            at_front(&self.buf, head)
        };
        self.lost = false;
        self.synced = found.is_some();
        // Once a head is not found, what follows it may be body bytes of unknown framing: the
        // log never trusts itself again on this connection.
        self.desynced |= found.is_none();
        match found {
            Some((target, end)) => {
                self.buf.drain(..end);
                if self.buf.capacity() > 4096 && self.buf.capacity() > 4 * self.buf.len() {
                    self.buf.shrink_to_fit();
                }
                Original::Target(target)
            }
            None => {
                self.buf = Vec::new();
                self.skip = Skip::None;
                Original::Unknown
            }
        }
    }

    /// The head last taken is followed by `body`: its bytes are skipped (those already read
    /// now, the rest as they arrive). Ignored after a head that was not found.
    pub(crate) fn expect_body(&mut self, body: Body) {
        if !self.synced {
            return;
        }
        self.skip = match body {
            Body::Empty | Body::Length(0) => Skip::None,
            Body::Length(n) => Skip::Bytes(n),
            Body::Chunked => Skip::Size(0),
        };
        let n = self.skip.feed(&self.buf);
        self.buf.drain(..n);
    }
}

/// A head taken apart by [`split_head`].
struct Parts<'a> {
    method: &'a [u8],
    target: &'a [u8],
    /// With the space before it.
    version: &'a [u8],
    /// From the request line's end (its CRLF) on.
    rest: &'a [u8],
}

/// The request line of `head` split at its first and last space, and the rest of the head.
fn split_head(head: &[u8]) -> Option<Parts<'_>> {
    // httparse skips empty lines before a request line but keeps them in the raw head.
    let head = head.get(head.iter().position(|&b| b != b'\r' && b != b'\n')?..)?;
    let lf = head.iter().position(|&b| b == b'\n')?;
    let end = if lf > 0 && head.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    };
    let line = head.get(..end)?;
    let first = line.iter().position(|&b| b == b' ')?;
    let last = line.iter().rposition(|&b| b == b' ')?;
    if last <= first {
        return None;
    }
    Some(Parts {
        method: line.get(..first)?,
        target: line.get(first + 1..last)?,
        version: line.get(last..)?,
        rest: head.get(end..)?,
    })
}

/// `head`'s original target and the offset just past it, when `log` starts with it (after
/// empty lines, which RFC 9112 §2.2 lets a server ignore before a request line).
fn at_front(log: &[u8], head: &[u8]) -> Option<(Vec<u8>, usize)> {
    let Parts {
        method,
        target,
        version,
        rest,
    } = split_head(head)?;
    let start = log.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let from = log.get(start..)?;
    let lf = from.iter().position(|&b| b == b'\n')?;
    let end = if lf > 0 && from.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    };
    let line = from.get(..end)?;
    let original = line
        .strip_prefix(method)?
        .strip_prefix(b" ")?
        .strip_suffix(version)?;
    if !escapes_to(original, target) || !from.get(end..)?.starts_with(rest) {
        return None;
    }
    Some((original.to_vec(), start + end + rest.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn escaping_matches_pingora() {
        assert_eq!(
            pingora_escape(b"/a b\x00\r\"<>\x7f\xc3"),
            b"/a%20b%00%0D%22%3C%3E%7F%C3"
        );
        assert_eq!(pingora_escape(b"/plain%20?q=1"), b"/plain%20?q=1");
        for t in [&b"/a b\x00"[..], b"/plain", b"", b"/\xff?x=<1>"] {
            assert!(escapes_to(t, &pingora_escape(t)));
        }
        assert!(!escapes_to(b"/a b", b"/a b"));
        assert!(!escapes_to(b"/a", b"/a%20"));
        assert!(!escapes_to(b"/a ", b"/a"));
    }

    #[test]
    fn the_original_target_of_an_escaped_head_is_found() {
        let mut log = HeadLog::new(1024);
        log.record(b"\r\nGET \x00/admin HTTP/1.1\r\nHost: x\r\n\r\n");
        let escaped = b"GET %00/admin HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            log.take_target(escaped),
            Original::Target(b"\x00/admin".to_vec())
        );
        // Consumed: the same head is not found twice.
        assert_eq!(log.take_target(escaped), Original::Unknown);
    }

    #[test]
    fn pipelined_heads_are_found_in_order_and_bodies_never_pass_for_one() {
        let mut log = HeadLog::new(1024);
        let post = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 31\r\n\r\n";
        log.record(post);
        // The body is a look-alike of the next head's escaped form.
        log.record(b"GET /b%01 HTTP/1.1\r\nHost: x\r\n\r\n");
        log.record(b"GET /b\x01 HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n");
        log.record(HEAD);
        assert_eq!(log.take_target(post), Original::Target(b"/a".to_vec()));
        log.expect_body(Body::Length(31));
        assert_eq!(
            log.take_target(b"GET /b%01 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Original::Target(b"/b\x01".to_vec())
        );
        log.expect_body(Body::Empty);
        assert_eq!(
            log.take_target(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Original::Target(b"/c".to_vec())
        );
        log.expect_body(Body::Chunked);
        assert_eq!(log.take_target(HEAD), Original::Target(b"/a".to_vec()));
    }

    #[test]
    fn a_body_arriving_in_later_reads_is_skipped() {
        let mut log = HeadLog::new(1024);
        log.record(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe");
        assert_eq!(
            log.take_target(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Original::Target(b"/a".to_vec())
        );
        log.expect_body(Body::Chunked);
        log.record(b"llo\r\n0\r");
        log.record(b"\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(log.take_target(HEAD), Original::Target(b"/a".to_vec()));
    }

    #[test]
    fn a_head_that_is_not_next_or_was_pushed_out_is_unknown() {
        let mut log = HeadLog::new(40);
        log.record(b"junk\r\n");
        log.record(HEAD);
        assert_eq!(log.take_target(HEAD), Original::Unknown);
        log.record(HEAD);
        log.record(&[b'x'; 30]);
        assert_eq!(log.take_target(HEAD), Original::Unknown);
        // What follows a lost head may be body bytes: the log never trusts itself again.
        log.record(HEAD);
        assert_eq!(log.take_target(HEAD), Original::Unknown);
    }

    #[test]
    fn a_trailer_section_ends_where_pingora_ends_it() {
        // A bare LF after the last chunk is no end for Pingora: nothing after it may pass for
        // the next head.
        let mut log = HeadLog::new(1024);
        let post = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        log.record(post);
        assert_eq!(log.take_target(post), Original::Target(b"/a".to_vec()));
        log.expect_body(Body::Chunked);
        log.record(b"3\r\nabc\r\n0\r\n\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(log.take_target(HEAD), Original::Unknown);
        // Trailers proper end at CRLF CRLF.
        let mut log = HeadLog::new(1024);
        log.record(post);
        assert_eq!(log.take_target(post), Original::Target(b"/a".to_vec()));
        log.expect_body(Body::Chunked);
        log.record(b"0\r\nX-T: 1\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(log.take_target(HEAD), Original::Target(b"/a".to_vec()));
    }

    #[test]
    fn empty_lines_before_a_request_line_are_skipped() {
        let mut log = HeadLog::new(1024);
        log.record(b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            log.take_target(b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
            Original::Target(b"/a".to_vec())
        );
    }

    #[test]
    fn a_space_inside_the_target_is_kept() {
        let mut log = HeadLog::new(1024);
        log.record(b"GET /a HTTP/1.1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            log.take_target(b"GET /a%20HTTP/1.1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Original::Target(b"/a HTTP/1.1".to_vec())
        );
    }
}
