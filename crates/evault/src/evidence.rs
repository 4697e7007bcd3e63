//! `evault evidence get|erase`: custody of uploaded evidence bytes.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use evault_proto::v1::{EraseEvidenceRequest, GetEvidenceRequest};
use tonic::Request;

use crate::client::{ServerArgs, TokenArgs, rpc_failure};
use crate::outcome::{Outcome, invalid, usage};

/// Read or erase evidence bytes uploaded with `evault append --upload`.
///
/// Every read and every erasure is recorded in the vault's audit trail
/// (see `evault audit`) before it happens. Reading needs a token with
/// evault.read, erasing one with evault.admin.
#[derive(Args, Debug)]
pub(crate) struct EvidenceArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Fetch the bytes of one piece of evidence, checked against its digest.
    Get(GetArgs),
    /// Erase the bytes of one piece of evidence for ever. The entries
    /// naming it stay, and every receipt stays valid; a later read says
    /// when, by whom and why it was erased.
    Erase(EraseArgs),
}

#[derive(Args, Debug)]
struct GetArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// Where to write the bytes; standard output without it.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// The evidence's SHA-256, 64 hex digits (as `sha256sum` prints it).
    #[arg(value_name = "SHA256")]
    sha256: String,
}

#[derive(Args, Debug)]
struct EraseArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// Why the bytes are erased (e.g. a court order's reference); kept
    /// with the erasure and recorded in the audit trail.
    #[arg(long)]
    reason: String,
    /// The evidence's SHA-256, 64 hex digits.
    #[arg(value_name = "SHA256")]
    sha256: String,
}

/// A SHA-256 digest given as 64 hex digits.
fn parse_digest(text: &str) -> Result<[u8; 32], crate::outcome::Failure> {
    let text = text.trim();
    let bad = || usage(format!("{text:?} is not a SHA-256 digest (64 hex digits)"));
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(digest)
}

pub(crate) fn run(args: EvidenceArgs) -> Outcome {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        match args.action {
            Action::Get(a) => get(a).await,
            Action::Erase(a) => erase(a).await,
        }
    })
}

async fn get(args: GetArgs) -> Outcome {
    let sha256 = parse_digest(&args.sha256)?;
    let mut request = Request::new(GetEvidenceRequest {
        sha256: sha256.to_vec(),
    });
    request
        .metadata_mut()
        .insert("authorization", args.token.header()?);
    let content = args
        .server
        .evidence()
        .await?
        .max_decoding_message_size(evault_proto::transport::MAX_ANSWER)
        .get_evidence(request)
        .await
        .map_err(|s| rpc_failure("evidence", &s))?
        .into_inner()
        .content;
    // The vault is not trusted to return the right bytes: they must be
    // the digest asked for.
    if evault_core::hash::sha256(&content) != sha256 {
        return Err(invalid(
            "the vault returned bytes whose SHA-256 is not the one asked for",
        ));
    }
    match &args.out {
        Some(path) => std::fs::write(path, &content)
            .map_err(|e| usage(format!("--out {}: {e}", path.display())))?,
        None => std::io::stdout()
            .write_all(&content)
            .map_err(|e| usage(format!("standard output: {e}")))?,
    }
    Ok(())
}

async fn erase(args: EraseArgs) -> Outcome {
    let sha256 = parse_digest(&args.sha256)?;
    let mut request = Request::new(EraseEvidenceRequest {
        sha256: sha256.to_vec(),
        reason: args.reason.clone(),
    });
    request
        .metadata_mut()
        .insert("authorization", args.token.header()?);
    let answer = args
        .server
        .evidence()
        .await?
        .erase_evidence(request)
        .await
        .map_err(|s| rpc_failure("erase", &s))?
        .into_inner();
    let erasure = answer
        .erasure
        .ok_or_else(|| invalid("the vault answered without the erasure"))?;
    let when = if answer.already_erased {
        "was already erased"
    } else {
        "erased"
    };
    println!(
        "{} {when} at {} by {}: {}",
        args.sha256.trim().to_ascii_lowercase(),
        erasure.erased_at,
        erasure.erased_by,
        erasure.reason
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_64_hex_digits() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            parse_digest(hex).expect("digest"),
            evault_core::hash::sha256(b"")
        );
        assert_eq!(
            parse_digest(&hex.to_ascii_uppercase()).expect("digest"),
            evault_core::hash::sha256(b"")
        );
        for bad in [
            "",
            "e3b0",
            &hex[1..],
            &format!("{hex}00"),
            &hex.replace('e', "g"),
            &"é".repeat(32),
        ] {
            assert!(parse_digest(bad).is_err(), "{bad:?}");
        }
    }
}
