//! `evault fsck`: audit a whole log published in the C2SP tlog-tiles
//! layout, from a directory or an HTTP base URL.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::Args;
use evault_core::tile::{BundleId, TileId};
use evault_core::{LogSource, audit};
use indicatif::{ProgressBar, ProgressStyle};

use crate::keys::TrustedKeys;
use crate::outcome::{Outcome, invalid, usage};

/// Logs at least this large get a progress bar on a terminal.
const PROGRESS_THRESHOLD: u64 = 1 << 16;
/// Upper bounds on what one resource may be: a checkpoint note, a tile,
/// a full bundle of maximal entries.
const MAX_CHECKPOINT: u64 = 1 << 20;
const MAX_TILE: u64 = 256 * 32;
const MAX_BUNDLE: u64 = 256 * (2 + 65_535);

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
    #[arg(long, value_name = "CHECKPOINT")]
    previous: Option<PathBuf>,
    /// The log: a directory holding `checkpoint` and `tile/`, or an
    /// `http://` / `https://` base URL.
    #[arg(value_name = "DIR_OR_URL")]
    log: String,
}

pub(crate) fn run(args: FsckArgs) -> Outcome {
    let keys = args.keys.load()?;
    let previous = args
        .previous
        .as_ref()
        .map(|p| std::fs::read(p).map_err(|e| usage(format!("--previous {}: {e}", p.display()))))
        .transpose()?;
    let mut source = if args.log.starts_with("http://") || args.log.starts_with("https://") {
        Source::Http(HttpLog::new(&args.log))
    } else {
        let dir = PathBuf::from(&args.log);
        if !dir.is_dir() {
            return Err(usage(format!("{}: not a directory", dir.display())));
        }
        Source::Dir(dir)
    };

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
    let result = audit(&mut source, &keys, args.origin.as_deref(), previous.as_deref(), &mut progress);
    bar.finish_and_clear();

    let report = match result {
        Ok(report) => report,
        Err(e) => {
            if let Source::Http(http) = &source {
                if let Some(transport) = &http.transport_error {
                    return Err(usage(format!("{}: {transport}", args.log)));
                }
            }
            return Err(invalid(format!("{}: {e}", args.log)));
        }
    };
    let cp = &report.checkpoint;
    println!("log verified: {}", args.log);
    println!("  origin     {}", cp.origin);
    println!("  tree size  {}", cp.size);
    println!("  root       {}", cp.root.to_base64());
    println!("  checked    {} entry bundles, {} hash tiles", report.bundles, report.tiles);
    if let Some(prev) = &report.previous {
        println!("  extends    checkpoint of size {} ({})", prev.size, prev.root.to_base64());
    }
    Ok(())
}

/// Where the log is read from.
enum Source {
    Dir(PathBuf),
    Http(HttpLog),
}

impl Source {
    fn fetch(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        match self {
            Source::Dir(dir) => {
                let file = dir.join(path);
                let len = std::fs::metadata(&file).map_err(|e| e.to_string())?.len();
                if len > limit {
                    return Err(format!("{len} bytes, more than the {limit} it can be"));
                }
                std::fs::read(&file).map_err(|e| e.to_string())
            }
            Source::Http(http) => http.fetch(path, limit),
        }
    }
}

impl LogSource for Source {
    type Error = String;

    fn checkpoint(&mut self) -> Result<Vec<u8>, String> {
        self.fetch("checkpoint", MAX_CHECKPOINT)
    }

    fn tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        self.fetch(&tile.path(), MAX_TILE)
    }

    fn bundle(&mut self, bundle: BundleId) -> Result<Vec<u8>, String> {
        self.fetch(&bundle.path(), MAX_BUNDLE)
    }
}

/// A log served over HTTP. A status other than 200 means the log lacks
/// the resource (the log is invalid); a transport failure means the audit
/// could not run, which is remembered to report it as such.
struct HttpLog {
    base: String,
    agent: ureq::Agent,
    transport_error: Option<String>,
}

impl HttpLog {
    fn new(base: &str) -> Self {
        HttpLog {
            base: format!("{}/", base.trim_end_matches('/')),
            agent: ureq::Agent::new_with_defaults(),
            transport_error: None,
        }
    }

    fn fetch(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        let url = format!("{}{path}", self.base);
        match self.agent.get(&url).call() {
            Ok(mut response) => response
                .body_mut()
                .with_config()
                .limit(limit)
                .read_to_vec()
                .map_err(|e| e.to_string()),
            Err(ureq::Error::StatusCode(code)) => Err(format!("HTTP status {code}")),
            Err(e) => {
                let message = e.to_string();
                self.transport_error = Some(message.clone());
                Err(message)
            }
        }
    }
}
