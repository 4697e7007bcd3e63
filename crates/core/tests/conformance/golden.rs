//! Pins the stored tile format: the tiles a backend holds at tree sizes
//! 0, 1, 255, 256, 257 and 1024, byte for byte (by SHA-256), and the roots.
//! A refactor that changes what is on disk fails here. To re-bless after a
//! deliberate format change, run with `EVAULT_BLESS=1` and review the diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use evault_core::hash::{hex, sha256};
use evault_core::tile::tiles_for_size;
use evault_core::{Integrator, leaf_hash};

const SIZES: [u64; 6] = [0, 1, 255, 256, 257, 1024];

fn listing() -> String {
    let mut out = String::from("# entry i is the ASCII text `golden entry <i>`\n");
    for size in SIZES {
        let mut stored = BTreeMap::new();
        let mut tree = Integrator::new();
        for (tile, bytes) in
            tree.integrate((0..size).map(|i| leaf_hash(format!("golden entry {i}").as_bytes())))
        {
            stored.insert((tile.level, tile.index), (tile, bytes));
        }
        writeln!(out, "size {size}").expect("write");
        let expected: Vec<_> = tiles_for_size(size).collect();
        let written: Vec<_> = stored.values().map(|(t, _)| *t).collect();
        assert_eq!(written, expected, "tiles written at size {size}");
        for (tile, bytes) in stored.values() {
            writeln!(
                out,
                "{} {} {}",
                tile.path(),
                bytes.len(),
                hex(&sha256(bytes))
            )
            .expect("write");
        }
        writeln!(out, "root {}", tree.root().to_hex()).expect("write");
    }
    out
}

#[test]
fn stored_tiles_match_the_golden_listing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tiles.txt");
    let actual = listing();
    if std::env::var_os("EVAULT_BLESS").is_some() {
        std::fs::write(&path, &actual).expect("bless");
    }
    let golden = std::fs::read_to_string(&path).expect("golden listing (EVAULT_BLESS=1 writes it)");
    assert_eq!(actual, golden);
}
