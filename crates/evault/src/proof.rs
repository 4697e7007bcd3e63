//! `evault proof`: a receipt for one entry of a published log.

use std::path::PathBuf;

use clap::Args;
use evault_core::tile::{BundleId, TILE_WIDTH};
use evault_core::{
    Checkpoint, LogSource, Note, Receipt, TreeReader, leaf_hash, parse_bundle, verify_inclusion,
};

use crate::outcome::{Outcome, invalid, usage};
use crate::source::Source;

/// Build the receipt (`.tlog-proof`) of one entry of a published log.
///
/// Reads the log's checkpoint, the entry's bundle and the tiles its
/// inclusion proof needs, from a directory or an HTTP base URL in the C2SP
/// tlog-tiles layout, and writes a receipt carrying the entry. Anyone can
/// then check it offline with `evault verify`.
#[derive(Args, Debug)]
pub(crate) struct ProofArgs {
    /// The log: a directory holding `checkpoint` and `tile/`, or an
    /// `http://` / `https://` base URL.
    #[arg(long, value_name = "DIR_OR_URL")]
    log: String,
    /// Index of the entry, from 0.
    #[arg(long)]
    index: u64,
    /// Write the receipt here instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: ProofArgs) -> Outcome {
    let mut source = Source::open(&args.log)?;
    let note = source
        .checkpoint()
        .map_err(|e| source.failure(&args.log, format!("checkpoint: {e}")))?;
    let checkpoint = Note::parse(&note)
        .map_err(|e| invalid(format!("{}: checkpoint: {e}", args.log)))
        .and_then(|n| {
            Checkpoint::parse(n.text())
                .map_err(|e| invalid(format!("{}: checkpoint: {e}", args.log)))
        })?;
    if args.index >= checkpoint.size {
        return Err(usage(format!(
            "--index {}: the log has {} entries",
            args.index, checkpoint.size
        )));
    }

    let first = args.index - args.index % TILE_WIDTH;
    let bundle = BundleId {
        index: args.index / TILE_WIDTH,
        width: (checkpoint.size - first).min(TILE_WIDTH) as u16,
    };
    let bytes = source
        .bundle(bundle)
        .map_err(|e| source.failure(&args.log, format!("{}: {e}", bundle.path())))?;
    let entry = parse_bundle(&bytes, Some(usize::from(bundle.width)))
        .map_err(|e| invalid(format!("{}: {}: {e}", args.log, bundle.path())))?
        [(args.index - first) as usize]
        .to_vec();

    let proof = TreeReader::new(checkpoint.size, &mut source)
        .inclusion_proof(args.index, checkpoint.size)
        .map_err(|e| invalid(format!("{}: {e}", args.log)))?;
    // A log whose tiles do not lead to its own checkpoint would hand out a
    // receipt that fails; say so here instead.
    verify_inclusion(
        args.index,
        checkpoint.size,
        leaf_hash(&entry).as_bytes(),
        &proof,
        checkpoint.root.as_bytes(),
    )
    .map_err(|e| {
        invalid(format!(
            "{}: the log's tiles disagree with its checkpoint: {e}",
            args.log
        ))
    })?;

    let receipt = Receipt {
        extra: Some(entry),
        index: args.index,
        proof,
        checkpoint: note,
    }
    .to_bytes();
    match &args.out {
        Some(path) => {
            std::fs::write(path, receipt).map_err(|e| usage(format!("{}: {e}", path.display())))?;
            eprintln!(
                "wrote receipt for entry {} to {}",
                args.index,
                path.display()
            );
        }
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&receipt)
                .map_err(|e| usage(format!("standard output: {e}")))?;
        }
    }
    Ok(())
}
