//! `evault fsck`: audit a whole log published in the C2SP tlog-tiles
//! layout, from a directory or an HTTP base URL.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::Args;
use evault_core::audit;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::CaArgs;
use crate::keys::TrustedKeys;
use crate::outcome::{Outcome, usage};
use crate::source::Source;

/// Logs at least this large get a progress bar on a terminal.
const PROGRESS_THRESHOLD: u64 = 1 << 16;

/// Audit a whole log: checkpoint signature, every entry bundle, every hash
/// tile recomputed from the entries, the root, and optionally that the log
/// extends an earlier checkpoint. Memory stays bounded whatever the size.
#[derive(Args, Debug)]
pub(crate) struct FsckArgs {
    #[command(flatten)]
    keys: TrustedKeys,
    /// Require the log to have this origin.
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: Option<String>,
    /// An earlier checkpoint (note file) the log must extend.
    #[arg(long, env = "EVAULT_PREVIOUS", value_name = "CHECKPOINT")]
    previous: Option<PathBuf>,
    /// The log: a directory holding `checkpoint` and `tile/`, or an
    /// `http://` / `https://` base URL.
    #[arg(value_name = "DIR_OR_URL")]
    log: String,
    #[command(flatten)]
    ca: CaArgs,
}

pub(crate) fn run(args: FsckArgs) -> Outcome {
    let keys = args.keys.load()?;
    let previous = args
        .previous
        .as_ref()
        .map(|p| std::fs::read(p).map_err(|e| usage(format!("--previous {}: {e}", p.display()))))
        .transpose()?;
    let mut source = Source::open(&args.log, &args.ca)?;

    let bar = ProgressBar::hidden();
    let mut progress = |done: u64, total: u64| {
        if done == 0 || bar.length().is_none() {
            if total >= PROGRESS_THRESHOLD && std::io::stderr().is_terminal() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_length(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} entries {per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        bar.set_position(done);
    };
    let result = audit(
        &mut source,
        &keys,
        args.origin.as_deref(),
        previous.as_deref(),
        &mut progress,
    );
    bar.finish_and_clear();

    let report = match result {
        Ok(report) => report,
        Err(e) => return Err(source.failure(&args.log, e)),
    };
    let cp = &report.checkpoint;
    println!("log verified: {}", args.log);
    println!("  origin     {}", evault_core::text::escape(&cp.origin));
    println!("  tree size  {}", cp.size);
    println!("  root       {}", cp.root.to_base64());
    println!(
        "  checked    {} entry bundles, {} hash tiles",
        report.bundles, report.tiles
    );
    if let Some(prev) = &report.previous {
        println!(
            "  extends    checkpoint of size {} ({})",
            prev.size,
            prev.root.to_base64()
        );
    }
    Ok(())
}
