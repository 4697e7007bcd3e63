//! A full audit of a log published in the C2SP tlog-tiles layout: the
//! checkpoint's signature, every entry bundle's framing, every hash tile
//! recomputed from the bundles and the level below, the root against the
//! checkpoint, and optionally that the log extends an earlier checkpoint.
//!
//! The audit streams: it holds one bundle and the right edge of the tree at
//! a time, so its memory does not grow with the log. Fetching is the
//! caller's (a directory, an HTTP mirror); this module does no I/O. A
//! caller that also reads the entries ([`audit_with_entries`]) is handed
//! each one as it passes, rather than fetching the log a second time.

use std::fmt::Display;

use crate::bundle::{BundleError, parse_bundle};
use crate::checkpoint::{Checkpoint, CheckpointError, open_checkpoint};
use crate::hash::{HASH_SIZE, Hash, empty_root, leaf_hash};
use crate::integrate::Integrator;
use crate::note::VerifierKey;
use crate::tile::{BundleId, TileId, bundles_for_size};

/// Where an audit reads the log from.
pub trait LogSource {
    /// What fetching fails with.
    type Error: Display;
    /// The log's current checkpoint note.
    fn checkpoint(&mut self) -> Result<Vec<u8>, Self::Error>;
    /// A hash tile, exactly as published.
    fn tile(&mut self, tile: TileId) -> Result<Vec<u8>, Self::Error>;
    /// An entry bundle, exactly as published.
    fn bundle(&mut self, bundle: BundleId) -> Result<Vec<u8>, Self::Error>;
}

/// Why a log failed its audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A resource could not be fetched.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The resource.
        path: String,
        /// The source's error.
        message: String,
    },
    /// The checkpoint is malformed, unsigned or wrongly signed.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// The earlier checkpoint given for comparison is itself invalid.
    #[error("previous checkpoint: {0}")]
    Previous(CheckpointError),
    /// The log is smaller than the earlier checkpoint: a rollback.
    #[error("log has {size} entries, fewer than the {previous} of the previous checkpoint")]
    Shrunk {
        /// Current size.
        size: u64,
        /// Earlier size.
        previous: u64,
    },
    /// The log's tree at the earlier size has another root: a fork.
    #[error("the log's root at size {size} is {found}, not the previous checkpoint's {expected}")]
    Forked {
        /// Size of the earlier checkpoint.
        size: u64,
        /// Root recomputed from the log.
        found: String,
        /// Root the earlier checkpoint signed.
        expected: String,
    },
    /// An entry bundle is malformed.
    #[error("{path}: {error}")]
    Bundle {
        /// The bundle.
        path: String,
        /// What is wrong.
        error: BundleError,
    },
    /// A hash tile differs from the one recomputed from the entries.
    #[error("{path}: {detail}")]
    Tile {
        /// The tile.
        path: String,
        /// What differs.
        detail: String,
    },
    /// The caller refused an entry it was handed
    /// ([`audit_with_entries`]).
    #[error("entry {index}: {reason}")]
    Entry {
        /// The entry's index in the log.
        index: u64,
        /// Why the caller refused it.
        reason: String,
    },
    /// The tree recomputed from the entries has another root than the
    /// checkpoint signs.
    #[error("root recomputed from the entries is {found}, checkpoint says {expected}")]
    Root {
        /// Root recomputed.
        found: String,
        /// Root in the checkpoint.
        expected: String,
    },
}

/// What an audit established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The earlier checkpoint the log was shown to extend.
    pub previous: Option<Checkpoint>,
    /// Hash tiles compared.
    pub tiles: u64,
    /// Entry bundles read.
    pub bundles: u64,
}

fn read<T, E: Display>(path: String, r: Result<T, E>) -> Result<T, AuditError> {
    r.map_err(|e| AuditError::Read {
        path,
        message: e.to_string(),
    })
}

fn compare_tile<S: LogSource>(
    source: &mut S,
    tile: TileId,
    computed: &[u8],
) -> Result<(), AuditError> {
    let path = tile.path();
    let published = read(path.clone(), source.tile(tile))?;
    if published.len() != computed.len() {
        return Err(AuditError::Tile {
            path,
            detail: format!("{} bytes, {} expected", published.len(), computed.len()),
        });
    }
    if let Some(i) = (0..computed.len() / HASH_SIZE).find(|i| {
        published[i * HASH_SIZE..(i + 1) * HASH_SIZE]
            != computed[i * HASH_SIZE..(i + 1) * HASH_SIZE]
    }) {
        return Err(AuditError::Tile {
            path,
            detail: format!("hash {i} differs from the one recomputed from the entries"),
        });
    }
    Ok(())
}

/// Audits the log in `source` against the trusted `keys`. `origin`
/// pins the log; `previous` is an earlier checkpoint note the log must
/// extend. `progress` is told the entries checked so far and the total.
pub fn audit<S: LogSource>(
    source: &mut S,
    keys: &[VerifierKey],
    origin: Option<&str>,
    previous: Option<&[u8]>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    audit_with_entries(source, keys, origin, previous, progress, &mut |_, _| Ok(()))
}

/// What [`audit_with_entries`] hands each entry to: the entry's index and
/// bytes in, `Err` with the reason to refuse it.
pub type EntryCheck<'a> = dyn FnMut(u64, &[u8]) -> Result<(), String> + 'a;

/// [`audit`], handing `on_entry` every entry with its index, in index
/// order, once the entry's bundle parsed and every tile it completes
/// matched. An entry `on_entry` refuses ends the audit with
/// [`AuditError::Entry`]. The audit's verdict on the whole log comes only
/// at the end: what `on_entry` saw is verified only if the audit
/// succeeds.
pub fn audit_with_entries<S: LogSource>(
    source: &mut S,
    keys: &[VerifierKey],
    origin: Option<&str>,
    previous: Option<&[u8]>,
    progress: &mut dyn FnMut(u64, u64),
    on_entry: &mut EntryCheck<'_>,
) -> Result<AuditReport, AuditError> {
    let note = read("checkpoint".into(), source.checkpoint())?;
    let checkpoint = open_checkpoint(&note, keys, origin)
        .map_err(AuditError::Checkpoint)?
        .checkpoint;
    let previous = previous
        .map(|bytes| open_checkpoint(bytes, keys, Some(&checkpoint.origin)))
        .transpose()
        .map_err(AuditError::Previous)?
        .map(|signed| signed.checkpoint);
    if let Some(prev) = &previous {
        if prev.size > checkpoint.size {
            return Err(AuditError::Shrunk {
                size: checkpoint.size,
                previous: prev.size,
            });
        }
    }
    // The root at the earlier size is recomputed on the way past it: a
    // direct check, stronger than any consistency proof the log could offer.
    let check_previous = |size: u64, root: Hash| -> Result<(), AuditError> {
        match &previous {
            Some(prev) if prev.size == size && prev.root != root => Err(AuditError::Forked {
                size,
                found: root.to_base64(),
                expected: prev.root.to_base64(),
            }),
            _ => Ok(()),
        }
    };
    let previous_size = previous.as_ref().map(|p| p.size);

    let mut tree = Integrator::new();
    let mut tiles = 0u64;
    let mut bundles = 0u64;
    check_previous(0, empty_root())?;
    for bundle in bundles_for_size(checkpoint.size) {
        let path = bundle.path();
        let bytes = read(path.clone(), source.bundle(bundle))?;
        let entries = parse_bundle(&bytes, Some(usize::from(bundle.width)))
            .map_err(|error| AuditError::Bundle { path, error })?;
        bundles += 1;
        let mut mismatch = Ok(());
        for entry in entries {
            let index = tree.size();
            tree.append_leaf(leaf_hash(entry), &mut |tile, hashes| {
                if mismatch.is_ok() {
                    tiles += 1;
                    mismatch = compare_tile(source, tile, hashes);
                }
            });
            mismatch.clone()?;
            on_entry(index, entry).map_err(|reason| AuditError::Entry { index, reason })?;
            if previous_size == Some(tree.size()) {
                check_previous(tree.size(), tree.root())?;
            }
        }
        progress(tree.size(), checkpoint.size);
    }
    for (tile, hashes) in tree.take_partial_tiles() {
        tiles += 1;
        compare_tile(source, tile, &hashes)?;
    }
    let root = tree.root();
    if root != checkpoint.root {
        return Err(AuditError::Root {
            found: root.to_base64(),
            expected: checkpoint.root.to_base64(),
        });
    }
    Ok(AuditReport {
        checkpoint,
        previous,
        tiles,
        bundles,
    })
}
