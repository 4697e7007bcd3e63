//! `evault`: the Merkle Evidence Vault's command.
//!
//! - Servers: `up` runs every role in one process; `serve <role>` one role
//!   per process; `migrate` applies the PostgreSQL schema.
//! - Clients of a running vault: `append`, `checkpoint`, `proof`,
//!   `consistency`, `audit` (verify the audit trail and print its
//!   events), `evidence` (read or erase uploaded bytes), and `bench` to
//!   measure appends (streamed, unary, open loop) and proofs served,
//!   beside a raw PostgreSQL `COPY` baseline.
//! - Offline, no server needed: `verify` checks a receipt, `fsck` audits a
//!   whole published log, `proof --log` builds a receipt from one, `keygen`
//!   creates a log signing key, `dev-certs` a CA and certificates for
//!   mutual TLS between roles on one machine.
//!
//! The binary parses flags, wires the library crates together and reports;
//! the logic lives in those crates.
//!
//! Exit status: 0 when what was checked is valid (or the command did what
//! it was asked), 1 when it is invalid (or some appends were refused), 2
//! when the command could not run as asked (bad flags, unreadable input,
//! an unreachable server).

// The vault's work is many small, short-lived buffers (requests, proofs,
// receipts) allocated on one worker thread and often freed on another;
// glibc's allocator serialises those on its arena locks and spent about a
// fifth of the CPU of serving proofs (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod append;
mod audit_trail;
mod bench;
mod checkpoint;
mod client;
mod connections;
mod denials;
mod dev_certs;
mod digest;
mod evidence;
mod fsck;
mod identity;
mod json;
mod keygen;
mod keys;
mod lead;
mod outcome;
mod probes;
mod proof;
mod serve;
mod signer_store;
mod signing_keys;
mod source;
mod telemetry;
mod tls;
mod up;
mod vault;
mod verify;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::outcome::Failure;

/// The Merkle Evidence Vault: tamper-evident receipts for evidence.
#[derive(Parser)]
#[command(name = "evault", version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 valid, 1 invalid, 2 usage error, unreadable input or unreachable server."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Up(up::UpArgs),
    Serve(serve::ServeArgs),
    Migrate(serve::MigrateArgs),
    Append(append::AppendArgs),
    Bench(bench::BenchArgs),
    Checkpoint(checkpoint::CheckpointArgs),
    Consistency(checkpoint::ConsistencyArgs),
    Proof(proof::ProofArgs),
    Verify(verify::VerifyArgs),
    Fsck(fsck::FsckArgs),
    Audit(audit_trail::AuditArgs),
    Evidence(evidence::EvidenceArgs),
    Keygen(keygen::KeygenArgs),
    DevCerts(dev_certs::DevCertsArgs),
    Token(identity::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Migrate(args) => serve::migrate(args),
        Command::Append(args) => append::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Checkpoint(args) => checkpoint::checkpoint(args),
        Command::Consistency(args) => checkpoint::consistency(args),
        Command::Proof(args) => proof::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Fsck(args) => fsck::run(args),
        Command::Audit(args) => audit_trail::run(args),
        Command::Evidence(args) => evidence::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::DevCerts(args) => dev_certs::run(args),
        Command::Token(args) => identity::token(args),
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
