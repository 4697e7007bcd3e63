//! `evault up`: every role in one process.

use clap::Args;
use evault_signer::CheckpointSigner;

use crate::connections::ConnectionArgs;
use crate::identity::AuthArgs;
use crate::outcome::{Outcome, usage};
use crate::signer_store::{adopt_legacy, signer_file};
use crate::signing_keys::SigningKeyArgs;
use crate::vault::{DataDir, Front, StorageArgs, bind, run_all, shutdown_signal, with_store};
use crate::web::WebArgs;

/// Run the whole vault in one process: ingest, tree, signer and gateway.
///
/// State lives in the embedded store in --data-dir, or in PostgreSQL with
/// --database-url; the signer's record of what it signed is always a file
/// of its own, DATA_DIR/signer.redb, apart from the log. The first start creates the log's signing key in
/// DATA_DIR/signing.key, unless keys are given with --key-file or the
/// --pkcs11-* flags (every key given signs every checkpoint); each start
/// writes DATA_DIR/verifier-key, one line per key (give it to whoever
/// verifies receipts).
/// Without --jwks-file or --jwks-url, it runs a local token issuer: its key
/// in DATA_DIR/issuer-key, the public DATA_DIR/jwks.json, and, minted at
/// every start, DATA_DIR/dev-token (a JWT for `dev` with every scope, which
/// `evault append` uses). A restart continues the same log.
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
    #[command(flatten)]
    keys: SigningKeyArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    probes: crate::probes::ProbeArgs,
}

pub(crate) fn run(args: UpArgs) -> Outcome {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    // One process, one service name; each span says which role it is
    // (`evault.role`).
    let telemetry = crate::telemetry::start(&runtime, "evault");
    let cors = args.web.cors()?;
    let outcome = runtime.block_on(async move {
        std::fs::create_dir_all(&args.storage.data_dir).map_err(|e| {
            usage(format!(
                "--data-dir {}: {e}",
                args.storage.data_dir.display()
            ))
        })?;
        let data = DataDir {
            dir: args.storage.data_dir.clone(),
        };
        let origin = data.origin_for(args.origin.as_deref())?;
        let keys = data.signing_keys(&origin, &args.keys)?;
        let local = args.auth.layer_or_local(&data.dir).await?;
        let rate = args.auth.rate_limit()?;
        let storage = args.storage.open().await?;
        // On PostgreSQL another process could sequence the same log (a
        // second `evault up`, a `serve tree`): the log's lock decides, as
        // it does between trees. `up` does not stand by: it is one
        // process, so a second one is a mistake to say. It waits only as
        // long as a lock of a process that just died takes to go (its
        // session ending, or its lease running out: a restart).
        let mut leadership = match &args.storage.database_url {
            Some(url) => {
                let led = crate::lead::lead(url, &origin, tokio::time::sleep(LEAD_WAIT)).await;
                Some(led.map_err(|last| match last {
                    Some(error) => usage(format!("--database-url: {error}")),
                    None => usage(format!(
                        "another process (a tree, or another `evault up`) leads {origin} in this database"
                    )),
                })?)
            }
            None => None,
        };
        // The signer's record is a file of its own, apart from the log
        // wherever the log is, so that restoring the log's storage cannot
        // roll it back.
        let signer_store = signer_file(&data.dir)?;
        let listener = bind(&args.listen).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| usage(format!("--listen: {e}")))?;
        println!("evault up: serving {origin} on http://{addr}");
        println!("  verifier key  {}", data.verifier_key().display());
        match &local.dev_token {
            Some(token) => println!("  dev token     {}", token.display()),
            None => println!("  tokens        from the identity provider's JWKS"),
        }
        println!(
            "  storage       {}",
            if args.storage.database_url.is_some() {
                "PostgreSQL".to_string()
            } else {
                format!("embedded, in {}", data.dir.display())
            }
        );
        println!(
            "  signer record {}",
            data.dir.join(evault_storage::signer::SIGNER_FILE).display()
        );
        let probe = args.probes.start(&evault_proto::PUBLIC_SERVICES).await?;
        with_store!(storage, store => {
            adopt_legacy(&store, &signer_store).await?;
            let signer = CheckpointSigner::new(&origin, keys, signer_store).map_err(usage)?;
            let front = Front { incoming: args.connections.incoming(listener), cors, probe };
            let served = run_all(store, signer, local.layer, rate, front, shutdown_signal());
            crate::lead::while_leading(leadership.as_mut(), served).await
        })
    });
    telemetry.stop();
    outcome
}

/// How long `up` waits for the log's lock before saying another process
/// holds it: over the lease of a leader that died without closing (a
/// restart).
const LEAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
