//! `TilePath::parse`: paths are canonical, so every accepted path prints
//! back exactly as given, and its numbers stay inside the tlog-tiles ranges.

use evault_core::TilePath;
use evault_core::tile::{MAX_TILE_LEVEL, TILE_WIDTH};

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = TilePath::parse(text) else {
        return;
    };
    assert_eq!(path.to_string(), text, "accepted a non-canonical path");
    assert_eq!(TilePath::parse(&path.to_string()), Ok(path));
    let (index, width) = match path {
        TilePath::Hashes(tile) => {
            assert!(tile.level <= MAX_TILE_LEVEL);
            (tile.index, tile.width)
        }
        TilePath::Entries(bundle) => (bundle.index, bundle.width),
    };
    assert!(
        (1..=TILE_WIDTH).contains(&u64::from(width)),
        "width {width}"
    );
    assert!(
        index.checked_mul(TILE_WIDTH).is_some(),
        "index {index} starts beyond 2^64"
    );
}
