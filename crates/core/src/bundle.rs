//! C2SP tlog-tiles entry bundles: the entries of up to 256 consecutive
//! indices, each prefixed by its length as a big-endian uint16.

/// The largest entry a bundle can frame.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// Why a bundle could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry is longer than the uint16 framing allows.
    #[error("entry {index} is {len} bytes; at most {MAX_ENTRY_SIZE} fit in a bundle")]
    EntryTooLarge {
        /// Position of the entry in the bundle.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// The bytes end inside a length prefix or an entry.
    #[error("bundle is truncated inside entry {0}")]
    Truncated(usize),
    /// The bundle holds a different number of entries than expected.
    #[error("bundle holds {found} entries, {expected} expected")]
    Count {
        /// Entries found.
        found: usize,
        /// Entries expected.
        expected: usize,
    },
}

/// Frames `entries` as a bundle.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.as_ref().len() + 2).sum());
    for (index, entry) in entries.iter().enumerate() {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| BundleError::EntryTooLarge {
            index,
            len: entry.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Splits a bundle into its entries. With `expected`, the bundle must hold
/// exactly that many; trailing bytes are always an error.
pub fn parse_bundle(bytes: &[u8], expected: Option<usize>) -> Result<Vec<&[u8]>, BundleError> {
    let mut entries = Vec::with_capacity(expected.unwrap_or(0));
    let mut rest = bytes;
    while !rest.is_empty() {
        let index = entries.len();
        if expected.is_some_and(|n| index >= n) {
            return Err(BundleError::Count {
                found: index + 1,
                expected: expected.unwrap_or_default(),
            });
        }
        let (len, tail) = rest
            .split_at_checked(2)
            .ok_or(BundleError::Truncated(index))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (entry, tail) = tail
            .split_at_checked(len)
            .ok_or(BundleError::Truncated(index))?;
        entries.push(entry);
        rest = tail;
    }
    if let Some(n) = expected {
        if entries.len() != n {
            return Err(BundleError::Count {
                found: entries.len(),
                expected: n,
            });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_entries_including_empty_ones() {
        let entries: [&[u8]; 3] = [b"one", b"", b"three"];
        let bytes = encode_bundle(&entries).expect("encode");
        assert_eq!(parse_bundle(&bytes, Some(3)).expect("parse"), entries);
    }

    #[test]
    fn rejects_truncation_trailing_bytes_and_wrong_counts() {
        let bytes = encode_bundle(&[b"abc"]).expect("encode");
        assert_eq!(
            parse_bundle(&bytes[..4], None),
            Err(BundleError::Truncated(0))
        );
        assert_eq!(
            parse_bundle(&bytes[..1], None),
            Err(BundleError::Truncated(0))
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(parse_bundle(&long, None), Err(BundleError::Truncated(1)));
        assert!(matches!(
            parse_bundle(&bytes, Some(2)),
            Err(BundleError::Count { .. })
        ));
        assert!(matches!(
            parse_bundle(&long, Some(1)),
            Err(BundleError::Count { .. })
        ));
    }

    #[test]
    fn refuses_entries_too_large_to_frame() {
        let big = vec![0u8; MAX_ENTRY_SIZE + 1];
        assert!(matches!(
            encode_bundle(&[big]),
            Err(BundleError::EntryTooLarge { .. })
        ));
    }
}
