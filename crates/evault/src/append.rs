//! `evault append`: log files as evidence and keep their receipts.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use clap::Args;
use evault_core::{Hash, Receipt};
use evault_proto::v1::append_stream_response::Outcome as StreamOutcome;
use evault_proto::v1::{AppendStreamRequest, EvidenceStatement, Label, Receipt as WireReceipt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::{ServerArgs, TokenArgs, rpc_failure};
use crate::outcome::{Outcome, invalid, usage};

/// Log files as evidence, one entry each, and write their receipts.
///
/// Each file is hashed here (SHA-256 and size); only the statement is
/// sent unless --upload is given. Files stream to the vault over one
/// connection. Each receipt is written as FILE.tlog-proof beside the file,
/// or into --receipts DIR. Appending the same file again returns the
/// original receipt.
#[derive(Args, Debug)]
pub(crate) struct AppendArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// Write receipts into this directory instead of beside each file.
    #[arg(long, env = "EVAULT_RECEIPTS", value_name = "DIR")]
    receipts: Option<PathBuf>,
    /// Media type recorded for every file.
    #[arg(
        long,
        env = "EVAULT_MEDIA_TYPE",
        default_value = "application/octet-stream"
    )]
    media_type: String,
    /// A label `KEY=VALUE` recorded with every file (repeatable).
    #[arg(
        long = "label",
        env = "EVAULT_LABELS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    labels: Vec<String>,
    /// Also send the files' bytes for the vault to keep.
    #[arg(long, env = "EVAULT_UPLOAD")]
    upload: bool,
    /// Print one JSON object per file instead of text.
    #[arg(long, env = "EVAULT_JSON")]
    json: bool,
    /// The evidence files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

fn receipt_path(args: &AppendArgs, file: &Path) -> PathBuf {
    let name = format!(
        "{}.tlog-proof",
        file.file_name()
            .map_or_else(|| "evidence".into(), |n| n.to_string_lossy().into_owned())
    );
    match &args.receipts {
        Some(dir) => dir.join(name),
        None => file.with_file_name(name),
    }
}

/// Writes a receipt so that a crash never leaves half of one.
fn write_receipt(path: &Path, wire: &WireReceipt) -> Result<u64, String> {
    let proof = wire
        .inclusion_proof
        .iter()
        .map(|h| Hash::from_slice(h))
        .collect::<Option<Vec<_>>>()
        .ok_or("the vault sent a proof hash that is not 32 bytes")?;
    let receipt = Receipt {
        extra: Some(wire.entry.clone()),
        index: wire.index,
        proof,
        checkpoint: wire.checkpoint.clone(),
    };
    let tmp = path.with_extension("tlog-proof.tmp");
    std::fs::write(&tmp, receipt.to_bytes())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(wire.index)
}

fn labels(args: &AppendArgs) -> Result<Vec<Label>, crate::outcome::Failure> {
    args.labels
        .iter()
        .map(|l| {
            let (key, value) = l
                .split_once('=')
                .ok_or_else(|| usage(format!("--label {l:?}: expected KEY=VALUE")))?;
            Ok(Label {
                key: key.to_string(),
                value: value.to_string(),
            })
        })
        .collect()
}

pub(crate) fn run(args: AppendArgs) -> Outcome {
    if let Some(dir) = &args.receipts {
        std::fs::create_dir_all(dir)
            .map_err(|e| usage(format!("--receipts {}: {e}", dir.display())))?;
    }
    let labels = labels(&args)?;
    let header = args.token.header()?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        let mut client = args.server.ingest().await?;
        // Files are hashed by a producer while earlier ones are in flight.
        let (requests, outbound) = mpsc::channel::<AppendStreamRequest>(256);
        let files = args.files.clone();
        let (media_type, upload) = (args.media_type.clone(), args.upload);
        let (unreadable_tx, mut unreadable) = mpsc::unbounded_channel::<(usize, String)>();
        tokio::task::spawn_blocking(move || {
            for (i, file) in files.iter().enumerate() {
                match crate::digest::digest_file(file, upload) {
                    Ok((digest, size, content)) => {
                        let statement = EvidenceStatement {
                            sha256: digest.to_vec(),
                            size,
                            media_type: media_type.clone(),
                            name: file
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            labels: labels.clone(),
                            content,
                        };
                        let request = AppendStreamRequest {
                            request_id: i as u64,
                            statement: Some(statement),
                        };
                        if requests.blocking_send(request).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = unreadable_tx.send((i, format!("{}: {e}", file.display())));
                    }
                }
            }
        });
        let mut request = tonic::Request::new(ReceiverStream::new(outbound));
        request.metadata_mut().insert("authorization", header);
        let mut responses = client
            .append_stream(request)
            .await
            .map_err(|s| rpc_failure("append", &s))?
            .into_inner();

        let bar = if std::io::stderr().is_terminal() && !args.json {
            ProgressBar::with_draw_target(
                Some(args.files.len() as u64),
                ProgressDrawTarget::stderr(),
            )
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} files {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut failed = 0usize;
        let mut answered = 0usize;
        while let Some(response) = responses
            .message()
            .await
            .map_err(|s| rpc_failure("append", &s))?
        {
            answered += 1;
            bar.inc(1);
            let Some(file) = args.files.get(response.request_id as usize) else {
                return Err(usage(format!(
                    "the vault answered an unknown request {}",
                    response.request_id
                )));
            };
            let line = match response.outcome {
                Some(StreamOutcome::Receipt(receipt)) => {
                    let path = receipt_path(&args, file);
                    match write_receipt(&path, &receipt) {
                        Ok(index) if args.json => format!(
                            "{{\"file\":{},\"index\":{index},\"duplicate\":{},\"receipt\":{}}}",
                            crate::json::string(&file.display().to_string()),
                            response.duplicate,
                            crate::json::string(&path.display().to_string())
                        ),
                        Ok(index) => format!(
                            "{}: index {index}{} -> {}",
                            file.display(),
                            if response.duplicate {
                                " (logged before)"
                            } else {
                                ""
                            },
                            path.display()
                        ),
                        Err(e) => {
                            failed += 1;
                            format!(
                                "{}: logged, but the receipt could not be written: {e}",
                                file.display()
                            )
                        }
                    }
                }
                Some(StreamOutcome::Error(error)) => {
                    failed += 1;
                    if args.json {
                        format!(
                            "{{\"file\":{},\"error\":{{\"code\":{},\"message\":{}}}}}",
                            crate::json::string(&file.display().to_string()),
                            error.code,
                            crate::json::string(&error.message)
                        )
                    } else {
                        format!("{}: rejected: {}", file.display(), error.message)
                    }
                }
                None => {
                    failed += 1;
                    format!("{}: the vault sent an empty answer", file.display())
                }
            };
            bar.suspend(|| println!("{line}"));
        }
        bar.finish_and_clear();
        while let Ok((_, message)) = unreadable.try_recv() {
            failed += 1;
            eprintln!("evault: {message}");
        }
        let expected = args.files.len();
        if answered + failed < expected {
            return Err(invalid(format!(
                "the vault answered {answered} of {expected} files"
            )));
        }
        if failed > 0 {
            return Err(invalid(format!(
                "{failed} of {expected} files were not logged"
            )));
        }
        if !args.json {
            eprintln!(
                "logged {expected} file{}",
                if expected == 1 { "" } else { "s" }
            );
        }
        Ok(())
    })
}
