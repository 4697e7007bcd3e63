//! `evault checkpoint` and `evault consistency`: the log's latest signed
//! checkpoint, and proof that it extends one kept earlier.

use std::path::PathBuf;

use clap::Args;
use evault_core::{open_checkpoint, verify_consistency};
use evault_proto::v1::{GetCheckpointRequest, GetConsistencyProofRequest};

use crate::client::{ServerArgs, rpc_failure};
use crate::keys::TrustedKeys;
use crate::outcome::{Outcome, invalid, usage};

/// Fetch the log's latest checkpoint (a signed note).
///
/// Prints the note, or writes it to --out; keep it to check later, with
/// `evault consistency --from`, that the log never rewrote its history.
#[derive(Args, Debug)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Write the checkpoint note to this file.
    #[arg(long, short = 'o', env = "EVAULT_OUT", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print a JSON object (origin, size, root, note) instead of the note.
    #[arg(long, env = "EVAULT_JSON")]
    json: bool,
}

pub(crate) fn checkpoint(args: CheckpointArgs) -> Outcome {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    let cp = runtime.block_on(async {
        let mut tree = args.server.tree().await?;
        tree.get_checkpoint(GetCheckpointRequest {})
            .await
            .map_err(|s| rpc_failure("checkpoint", &s))?
            .into_inner()
            .checkpoint
            .ok_or_else(|| usage("the vault sent no checkpoint"))
    })?;
    if let Some(path) = &args.out {
        std::fs::write(path, &cp.note).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    }
    if args.json {
        let root = evault_core::Hash::from_slice(&cp.root_hash)
            .map(|h| h.to_base64())
            .unwrap_or_default();
        println!(
            "{{\"origin\":{},\"size\":{},\"root\":{},\"note\":{}}}",
            crate::json::string(&cp.origin),
            cp.size,
            crate::json::string(&root),
            crate::json::string(&String::from_utf8_lossy(&cp.note))
        );
    } else if args.out.is_none() {
        print!("{}", String::from_utf8_lossy(&cp.note));
    } else {
        println!("checkpoint of size {} written", cp.size);
    }
    Ok(())
}

/// Check that the log's latest checkpoint extends one kept earlier.
///
/// Verifies both checkpoints' signatures and the consistency proof the
/// vault gives between them. Exit status 1 means the log's history changed:
/// a fork or a rollback.
#[derive(Args, Debug)]
pub(crate) struct ConsistencyArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    keys: TrustedKeys,
    /// The earlier checkpoint note (e.g. from `evault checkpoint -o`).
    #[arg(long, env = "EVAULT_FROM", value_name = "CHECKPOINT_FILE")]
    from: PathBuf,
    /// Write the newer checkpoint note here, to check against next time.
    #[arg(long, short = 'o', env = "EVAULT_OUT", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print a JSON object instead of text.
    #[arg(long, env = "EVAULT_JSON")]
    json: bool,
}

pub(crate) fn consistency(args: ConsistencyArgs) -> Outcome {
    let keys = args.keys.load()?;
    let old_note = std::fs::read(&args.from)
        .map_err(|e| usage(format!("--from {}: {e}", args.from.display())))?;
    let old = open_checkpoint(&old_note, &keys, None)
        .map_err(|e| invalid(format!("--from {}: {e}", args.from.display())))?
        .checkpoint;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    let response = runtime.block_on(async {
        let mut tree = args.server.tree().await?;
        tree.get_consistency_proof(GetConsistencyProofRequest {
            first_size: old.size,
            second_size: 0,
        })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => invalid(format!(
                "the log cannot prove it extends size {}: {}",
                old.size,
                s.message()
            )),
            _ => rpc_failure("consistency", &s),
        })
        .map(tonic::Response::into_inner)
    })?;
    let note = response.checkpoint.map(|c| c.note).unwrap_or_default();
    let new = open_checkpoint(&note, &keys, Some(&old.origin))
        .map_err(|e| invalid(format!("the vault's checkpoint: {e}")))?
        .checkpoint;
    if new.size < old.size {
        return Err(invalid(format!(
            "the log shrank from {} to {} entries",
            old.size, new.size
        )));
    }
    if old.size > 0 {
        verify_consistency(
            old.size,
            new.size,
            &response.consistency_proof,
            old.root.as_bytes(),
            new.root.as_bytes(),
        )
        .map_err(|e| {
            invalid(format!(
                "the log does not extend the checkpoint of size {}: {e}",
                old.size
            ))
        })?;
    }
    if let Some(path) = &args.out {
        std::fs::write(path, &note).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    }
    if args.json {
        println!(
            "{{\"origin\":{},\"from_size\":{},\"to_size\":{},\"consistent\":true}}",
            crate::json::string(&new.origin),
            old.size,
            new.size
        );
    } else {
        println!(
            "consistent: {} at size {} extends size {}",
            evault_core::text::escape(&new.origin),
            new.size,
            old.size
        );
    }
    Ok(())
}
