//! `evault proof`: a receipt for one entry of a published log.

use std::path::PathBuf;

use clap::Args;
use evault_core::tile::{BundleId, TILE_WIDTH};
use evault_core::{
    Checkpoint, LogSource, Note, Receipt, TreeReader, leaf_hash, parse_bundle, verify_inclusion,
};

use evault_proto::v1::GetInclusionProofRequest;
use evault_proto::v1::get_inclusion_proof_request::Leaf;

use crate::client::{CaArgs, ServerArgs, fetch_entry, rpc_failure};
use crate::outcome::{Failure, Outcome, invalid, usage};
use crate::source::Source;

/// Build the receipt (`.tlog-proof`) of one entry of a log.
///
/// Asks the vault at --server for the entry and its inclusion proof in the
/// latest checkpoint; or, with --log, reads a published log in the C2SP
/// tlog-tiles layout (a directory or an HTTP base URL): its checkpoint, the
/// entry's bundle and the tiles the proof needs. Either way the receipt
/// carries the entry, and anyone can check it offline with `evault verify`.
#[derive(Args, Debug)]
pub(crate) struct ProofArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Read a published tile log instead of asking the vault: a directory
    /// holding `checkpoint` and `tile/`, or an `http://` / `https://` base URL.
    #[arg(long, env = "EVAULT_LOG", value_name = "DIR_OR_URL")]
    log: Option<String>,
    /// Index of the entry, from 0.
    #[arg(long, env = "EVAULT_INDEX")]
    index: u64,
    /// Write the receipt here instead of standard output.
    #[arg(long, short = 'o', env = "EVAULT_OUT", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print a JSON object (index, tree size, receipt text) instead of the
    /// receipt.
    #[arg(long, env = "EVAULT_JSON")]
    json: bool,
}

pub(crate) fn run(args: ProofArgs) -> Outcome {
    let receipt = match &args.log {
        Some(log) => from_tiles(log, &args.server.ca, args.index)?,
        None => from_server(&args.server, args.index)?,
    };
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

/// The receipt of entry `index` in the vault's latest checkpoint.
fn from_server(server: &ServerArgs, index: u64) -> Result<Vec<u8>, Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    runtime.block_on(async {
        let mut tree = server.tree().await?;
        let answer = tree
            .get_inclusion_proof(GetInclusionProofRequest {
                leaf: Some(Leaf::Index(index)),
                tree_size: 0,
            })
            .await
            .map_err(|s| rpc_failure(&format!("--index {index}"), &s))?
            .into_inner();
        let entry = fetch_entry(&mut tree, index).await?;
        let proof = answer
            .inclusion_proof
            .iter()
            .map(|h| evault_core::Hash::from_slice(h))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("the vault sent a proof hash that is not 32 bytes"))?;
        Ok(Receipt {
            extra: Some(entry),
            index,
            proof,
            checkpoint: answer.checkpoint.map(|c| c.note).unwrap_or_default(),
        }
        .to_bytes())
    })
}

/// The receipt of entry `index` of the tile log at `log`.
fn from_tiles(log: &str, ca: &CaArgs, index: u64) -> Result<Vec<u8>, Failure> {
    let mut source = Source::open(log, ca)?;
    let note = source
        .checkpoint()
        .map_err(|e| source.failure(log, format!("checkpoint: {e}")))?;
    let checkpoint = Note::parse(&note)
        .map_err(|e| invalid(format!("{}: checkpoint: {e}", log)))
        .and_then(|n| {
            Checkpoint::parse(n.text()).map_err(|e| invalid(format!("{}: checkpoint: {e}", log)))
        })?;
    if index >= checkpoint.size {
        return Err(usage(format!(
            "--index {}: the log has {} entries",
            index, checkpoint.size
        )));
    }

    let first = index - index % TILE_WIDTH;
    let bundle = BundleId {
        index: index / TILE_WIDTH,
        width: (checkpoint.size - first).min(TILE_WIDTH) as u16,
    };
    let bytes = source
        .bundle(bundle)
        .map_err(|e| source.failure(log, format!("{}: {e}", bundle.path())))?;
    let entry = parse_bundle(&bytes, Some(usize::from(bundle.width)))
        .map_err(|e| invalid(format!("{}: {}: {e}", log, bundle.path())))?
        [(index - first) as usize]
        .to_vec();

    let proof = TreeReader::new(checkpoint.size, &mut source)
        .inclusion_proof(index, checkpoint.size)
        .map_err(|e| invalid(format!("{}: {e}", log)))?;
    // A log whose tiles do not lead to its own checkpoint would hand out a
    // receipt that fails; say so here instead.
    verify_inclusion(
        index,
        checkpoint.size,
        leaf_hash(&entry).as_bytes(),
        &proof,
        checkpoint.root.as_bytes(),
    )
    .map_err(|e| {
        invalid(format!(
            "{}: the log's tiles disagree with its checkpoint: {e}",
            log
        ))
    })?;

    Ok(Receipt {
        extra: Some(entry),
        index,
        proof,
        checkpoint: note,
    }
    .to_bytes())
}
