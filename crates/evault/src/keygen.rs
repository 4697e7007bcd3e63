//! `evault keygen`: a new log signing key.

use std::path::PathBuf;

use clap::Args;
use evault_signer::{KeyFile, KeyFileError};

use crate::outcome::{Outcome, usage};

/// Create an Ed25519 signing key for a log and print its verifier key.
///
/// The key is written as a PKCS#8 PEM file readable only by its owner; an
/// existing file is never overwritten. The verifier key line printed on
/// standard output is what receipt holders and auditors need.
#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// The log's origin, which names the key (e.g. `vault.example.com/evidence`).
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: String,
    /// Where to write the signing key.
    #[arg(long, env = "EVAULT_KEY_FILE", default_value = "evault-signing.key")]
    key_file: PathBuf,
    /// Also write the verifier key line to this file.
    #[arg(long, env = "EVAULT_VKEY_OUT", value_name = "FILE")]
    vkey_out: Option<PathBuf>,
}

pub(crate) fn run(args: KeygenArgs) -> Outcome {
    let key = KeyFile::create(&args.key_file, &args.origin).map_err(|e| match e {
        KeyFileError::Key { source, .. } => usage(format!("--origin {:?}: {source}", args.origin)),
        other => usage(other),
    })?;
    let vkey = key.verifier_key().to_string();
    if let Some(path) = &args.vkey_out {
        std::fs::write(path, format!("{vkey}\n"))
            .map_err(|e| usage(format!("{}: {e}", path.display())))?;
    }
    eprintln!(
        "wrote signing key to {} (keep it secret)",
        args.key_file.display()
    );
    println!("{vkey}");
    Ok(())
}
