//! Where the memory of a cached entry goes: 100,000 entries of a 1 KiB body with the metadata
//! pingora-cache stores for the example origin's headers, held (a) as bodies alone, (b) as the
//! gateway's `Entry` values in a `Vec`, (c) in a `HashMap`, (d) in moka without and (e) with
//! per-entry expiry, and (f) in the local tier itself. Each is measured in a process of its own
//! (RSS growth ÷ entries) with the gateway's allocator. `make bench-micro` runs it; the
//! differences between rows are the cost of each layer, which is what the memory target of
//! `make bench` (≤ 1.5 × the body bytes) is about.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachegate::cache::entry::{Entry, StoreKey};
use cachegate::cache::local::LocalTier;
use cachegate::cache::pingora_bridge::CacheMeta;
use pingora::http::ResponseHeader;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENTRIES: u64 = 100_000;
const BODY: usize = 1024;

/// This process's resident set, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn key(i: u64) -> StoreKey {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.to_le_bytes());
    k[8..].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    StoreKey(k)
}

/// The length of the metadata the bridge stores for one of the example origin's responses
/// (4-byte length + pingora's internal meta + its serialized header).
fn meta_len() -> usize {
    let mut h = ResponseHeader::build(200, None).expect("header");
    for (name, value) in [
        ("content-type", "application/json"),
        ("etag", "\"40d96fed1ebf8fe5\""),
        ("x-origin-seq", "1"),
        ("content-length", "1024"),
        ("date", "Tue, 24 Nov 2026 15:47:51 GMT"),
    ] {
        h.append_header(name, value).expect("header value");
    }
    let now = SystemTime::now();
    let meta = CacheMeta::new(now + Duration::from_secs(300), now, 0, 0, h);
    let (internal, header) = meta.serialize().expect("serialize");
    4 + internal.len() + header.len()
}

fn entry(i: u64, meta: usize) -> Arc<Entry> {
    let now = SystemTime::now();
    Arc::new(Entry {
        meta: Bytes::from(vec![1u8; meta]),
        body: Bytes::from(vec![i as u8; BODY]),
        created: now,
        expires_at: now + Duration::from_secs(3600),
        // Stage caching: the stage prefix and the key itself.
        prefixes: Arc::from(vec![[3u8; 16]; 2]),
        decoded: Default::default(),
    })
}

/// Fills one layout and returns the RSS growth per entry.
fn measure(layout: &str) -> u64 {
    let meta = meta_len();
    let before = rss();
    let keep: Box<dyn std::any::Any> = match layout {
        "body" => Box::new(
            (0..ENTRIES)
                .map(|i| Bytes::from(vec![i as u8; BODY]))
                .collect::<Vec<_>>(),
        ),
        "vec" => Box::new(
            (0..ENTRIES)
                .map(|i| (key(i), entry(i, meta)))
                .collect::<Vec<_>>(),
        ),
        "hashmap" => Box::new(
            (0..ENTRIES)
                .map(|i| (key(i), entry(i, meta)))
                .collect::<std::collections::HashMap<_, _>>(),
        ),
        "moka" | "moka-expiry" => {
            let mut b = moka::sync::Cache::builder()
                .max_capacity(1 << 40)
                .weigher(|_: &StoreKey, e: &Arc<Entry>| e.weight());
            if layout == "moka-expiry" {
                b = b.time_to_live(Duration::from_secs(3600));
            }
            let c = b.build();
            for i in 0..ENTRIES {
                c.insert(key(i), entry(i, meta));
            }
            c.run_pending_tasks();
            assert_eq!(c.entry_count(), ENTRIES);
            Box::new(c)
        }
        "tier" => {
            let t = LocalTier::new("bench-memory", 1 << 40, None);
            for i in 0..ENTRIES {
                t.insert(key(i), entry(i, meta));
            }
            t.sync();
            assert_eq!(t.entry_count(), ENTRIES);
            Box::new(t)
        }
        other => panic!("unknown layout {other}"),
    };
    let grown = rss().saturating_sub(before);
    drop(keep);
    grown / ENTRIES
}

const LAYOUTS: [(&str, &str); 6] = [
    ("body", "1 KiB bodies alone (Bytes)"),
    ("vec", "+ Entry (meta, prefixes, times) in a Vec"),
    ("hashmap", "in a HashMap instead"),
    ("moka", "in moka (byte weigher)"),
    ("moka-expiry", "in moka with expiry"),
    ("tier", "in the local tier (moka, per-entry expiry)"),
];

fn main() {
    // `cargo bench` passes `--bench`; a child gets the layout to measure.
    if let Some(layout) = std::env::args().nth(1).filter(|a| !a.starts_with('-')) {
        println!("{}", measure(&layout));
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    println!(
        "memory per entry, {ENTRIES} entries of {BODY} B (stored meta {} B):",
        meta_len()
    );
    for (layout, what) in LAYOUTS {
        let out = Command::new(&exe).arg(layout).output().expect("child");
        assert!(out.status.success(), "{layout}: {out:?}");
        let bytes: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("bytes");
        println!(
            "{what:<46} {bytes:>6} B/entry = {:.2}x the body",
            bytes as f64 / BODY as f64
        );
    }
}
