//! `evault`: the Merkle Evidence Vault's command.
//!
//! Offline commands that need no server: `verify` checks a receipt,
//! `fsck` audits a whole published log, `proof` builds the receipt of one
//! entry of a published log, `keygen` creates a log signing key.
//! The binary only parses flags and reports; the checking is
//! `evault-core`'s and the key files are `evault-signer`'s.
//!
//! Exit status: 0 when what was checked is valid, 1 when it is invalid,
//! 2 when the command could not run as asked (bad flags, unreadable input).

mod fsck;
mod keygen;
mod keys;
mod outcome;
mod proof;
mod source;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::outcome::Failure;

/// The Merkle Evidence Vault: tamper-evident receipts for evidence.
#[derive(Parser)]
#[command(name = "evault", version, about, long_about = None)]
#[command(after_help = "Exit status: 0 valid, 1 invalid, 2 usage or unreadable input.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Verify(verify::VerifyArgs),
    Fsck(fsck::FsckArgs),
    Proof(proof::ProofArgs),
    Keygen(keygen::KeygenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => verify::run(args),
        Command::Fsck(args) => fsck::run(args),
        Command::Proof(args) => proof::run(args),
        Command::Keygen(args) => keygen::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(message)) => {
            eprintln!("evault: INVALID: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("evault: {message}");
            ExitCode::from(2)
        }
    }
}
