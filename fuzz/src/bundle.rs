//! `parse_bundle`: the framing is canonical (re-encoding gives the input
//! back) and the expected-count check agrees with what was parsed.

use evault_core::{MAX_ENTRY_SIZE, encode_bundle, parse_bundle};

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Ok(entries) = parse_bundle(data, None) else {
        assert!(parse_bundle(data, Some(1)).is_err());
        return;
    };
    assert!(entries.iter().all(|e| e.len() <= MAX_ENTRY_SIZE));
    assert_eq!(
        encode_bundle(&entries).as_deref(),
        Ok(data),
        "bundle does not round-trip"
    );
    let n = entries.len();
    assert_eq!(parse_bundle(data, Some(n)).as_ref(), Ok(&entries));
    assert!(
        parse_bundle(data, Some(n + 1)).is_err(),
        "short bundle passed for {} entries",
        n + 1
    );
    if n > 0 {
        assert!(
            parse_bundle(data, Some(n - 1)).is_err(),
            "long bundle passed for {} entries",
            n - 1
        );
    }
}
