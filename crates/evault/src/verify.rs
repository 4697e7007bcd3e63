//! `evault verify`: check a receipt offline.

use std::path::PathBuf;

use clap::Args;
use evault_core::hash::hex;
use evault_core::text::escape;
use evault_core::{EvidenceEntry, Receipt};

use crate::keys::TrustedKeys;
use crate::outcome::{Outcome, invalid, usage};

/// Verify a receipt (`.tlog-proof`) offline.
///
/// Checks that the checkpoint inside is signed by a trusted key named after
/// the log's origin, that the inclusion proof places the entry in that
/// checkpoint's tree and, with --evidence, that the entry records that
/// file's SHA-256 digest and size.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    keys: TrustedKeys,
    /// Require the receipt to be from this log.
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: Option<String>,
    /// The evidence file the receipt should be for.
    #[arg(long, env = "EVAULT_EVIDENCE", value_name = "FILE")]
    evidence: Option<PathBuf>,
    /// The receipt file.
    #[arg(value_name = "RECEIPT")]
    receipt: PathBuf,
}

pub(crate) fn run(args: VerifyArgs) -> Outcome {
    let keys = args.keys.load()?;
    let name = args.receipt.display().to_string();
    let bytes = std::fs::read(&args.receipt).map_err(|e| usage(format!("{name}: {e}")))?;
    let receipt = Receipt::parse(&bytes).map_err(|e| invalid(format!("{name}: {e}")))?;
    let verified = receipt
        .verify(&keys, args.origin.as_deref())
        .map_err(|e| invalid(format!("{name}: {e}")))?;
    let entry = EvidenceEntry::decode(&verified.entry);

    if let Some(path) = &args.evidence {
        let entry = entry.as_ref().map_err(|e| {
            invalid(format!(
                "{name}: the logged entry is not an evidence entry ({e})"
            ))
        })?;
        let (digest, size, _) = crate::digest::digest_file(path, false)
            .map_err(|e| usage(format!("--evidence {}: {e}", path.display())))?;
        if digest != entry.digest {
            return Err(invalid(format!(
                "{}: SHA-256 {} does not match the logged {}",
                path.display(),
                hex(&digest),
                hex(&entry.digest)
            )));
        }
        if size != entry.size {
            return Err(invalid(format!(
                "{}: {size} bytes, the entry logged {}",
                path.display(),
                entry.size
            )));
        }
    }

    // Whatever the log holds is shown escaped (`evault_core::text`): a
    // name cannot pass for another by overriding its direction or hiding
    // characters, nor rewrite the terminal.
    let cp = &verified.checkpoint;
    println!("receipt verified: {name}");
    println!("  origin     {}", escape(&cp.origin));
    println!("  tree size  {}", cp.size);
    println!("  root       {}", cp.root.to_base64());
    println!("  index      {}", verified.index);
    println!("  leaf hash  {}", verified.leaf_hash);
    match &entry {
        Ok(e) => {
            println!(
                "  evidence   sha256:{} ({} bytes, {})",
                hex(&e.digest),
                e.size,
                escape(&e.media_type)
            );
            if let Some(n) = &e.name {
                println!("  name       {}", escape(n));
            }
            for (k, v) in &e.labels {
                println!("  label      {}={}", escape(k), escape(v));
            }
            println!("  principal  {}", escape(&e.principal));
            println!(
                "  received   {}",
                evault_core::trail::format_utc_ms(e.received_ms)
            );
        }
        Err(_) => {
            let text = String::from_utf8_lossy(&verified.entry);
            let shown: String = text.chars().take(80).collect();
            println!(
                "  entry      {} bytes, not an evidence entry: {:?}",
                verified.entry.len(),
                shown
            );
        }
    }
    if let Some(path) = &args.evidence {
        println!("  matches    {}", path.display());
    }
    Ok(())
}
