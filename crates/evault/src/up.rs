//! `evault up`: every role in one process.

use clap::Args;

use crate::outcome::{Outcome, usage};
use crate::vault::{DataDir, StorageArgs, bind, run_all, shutdown_signal, with_store};

/// Run the whole vault in one process: ingest, tree, signer and gateway.
///
/// State lives in the embedded store in --data-dir, or in PostgreSQL with
/// --database-url. The first start creates the log's signing key and
/// writes DATA_DIR/verifier-key (give it to whoever verifies receipts) and
/// DATA_DIR/dev-token (the bearer token `evault append` uses). A restart
/// continues the same log.
#[derive(Args, Debug)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Address to serve gRPC and the tile API on.
    #[arg(long, env = "EVAULT_LISTEN", default_value = crate::client::DEFAULT_LISTEN)]
    listen: String,
    /// The log's origin, e.g. `vault.example.com/evidence` (first start
    /// only; a restart keeps the log's origin).
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: Option<String>,
}

pub(crate) fn run(args: UpArgs) -> Outcome {
    crate::logging();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        std::fs::create_dir_all(&args.storage.data_dir)
            .map_err(|e| usage(format!("--data-dir {}: {e}", args.storage.data_dir.display())))?;
        let data = DataDir {
            dir: args.storage.data_dir.clone(),
        };
        let origin = data.origin_for(args.origin.as_deref())?;
        let key = data.signing_key(&origin)?;
        let token = data.dev_token()?;
        let storage = args.storage.open().await?;
        let listener = bind(&args.listen).await?;
        let addr = listener.local_addr().map_err(|e| usage(format!("--listen: {e}")))?;
        println!("evault up: serving {origin} on http://{addr}");
        println!("  verifier key  {}", data.verifier_key().display());
        println!("  dev token     {}", data.dev_token_file().display());
        println!(
            "  storage       {}",
            if args.storage.database_url.is_some() {
                "PostgreSQL".to_string()
            } else {
                format!("embedded, in {}", data.dir.display())
            }
        );
        with_store!(storage, store => run_all(store, &origin, key, &token, listener, shutdown_signal()).await)
    })
}
