//! `evault serve <role>` and `evault migrate`: one role per process, for
//! Kubernetes and other multi-process deployments.

use std::sync::Arc;

use clap::{Args, Subcommand};
use evault_auth::Denials;
use evault_gateway::{EvidenceProxy, IngestProxy, TileApi, TreeProxy};
use evault_ingest::{BatchConfig, Batcher, EvidenceGrpc, IngestGrpc, RemoteTree};
use evault_proto::v1::evidence_service_server::EvidenceServiceServer;
use evault_proto::v1::ingest_service_server::IngestServiceServer;
use evault_proto::v1::tree_service_server::TreeServiceServer;
use evault_signer::CheckpointSigner;
use evault_tree::{LogReader, RemoteAudit, RemoteSigner, Sequencer, TreeGrpc};

use crate::connections::ConnectionArgs;
use crate::denials::DenialReports;
use crate::identity::AuthArgs;
use crate::outcome::{Failure, Outcome, usage};
use crate::probes::ProbeArgs;
use crate::signer_store::{SignerStorageArgs, with_signer_store};
use crate::signing_keys::SigningKeyArgs;
use crate::tls::{InternalTlsArgs, TlsArgs};
use crate::vault::{StorageArgs, bind, shutdown_signal, with_store};
use crate::web::WebArgs;

/// Run one role of the vault.
///
/// Separate processes share state through PostgreSQL (--database-url):
/// the embedded store belongs to a single process.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// The key: signs checkpoints that extend the last one it signed, as
    /// recorded in its own store (a database or file of its own, never
    /// the log's).
    Signer(SignerArgs),
    /// The log: sequences, integrates, publishes, serves proofs.
    Tree(TreeArgs),
    /// The write front: authenticates, validates, batches.
    Ingest(IngestArgs),
    /// The public edge: gRPC forwarded to ingest and tree, and the tile API.
    Gateway(GatewayArgs),
}

#[derive(Args, Debug)]
struct SignerArgs {
    #[command(flatten)]
    storage: SignerStorageArgs,
    /// Address to serve SignerService on.
    #[arg(long, env = "EVAULT_LISTEN", default_value = "127.0.0.1:7403")]
    listen: String,
    /// The log's origin; the key signs under this name.
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: String,
    #[command(flatten)]
    keys: SigningKeyArgs,
    #[command(flatten)]
    tls: InternalTlsArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    probes: ProbeArgs,
}

#[derive(Args, Debug)]
struct TreeArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Address to serve SequencerService and TreeService on.
    #[arg(long, env = "EVAULT_LISTEN", default_value = "127.0.0.1:7402")]
    listen: String,
    /// The log's origin.
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: String,
    /// The signer, e.g. `http://127.0.0.1:7403` (`https://` under TLS).
    #[arg(long, env = "EVAULT_SIGNER")]
    signer: String,
    #[command(flatten)]
    tls: InternalTlsArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    probes: ProbeArgs,
}

#[derive(Args, Debug)]
struct IngestArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Address to serve IngestService on.
    #[arg(long, env = "EVAULT_LISTEN", default_value = "127.0.0.1:7401")]
    listen: String,
    /// The log's origin.
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: String,
    /// A tree, e.g. `http://127.0.0.1:7402` (`https://` under TLS); repeat
    /// for a standby (the one sequencing answers, the others refuse).
    #[arg(long, env = "EVAULT_TREE", value_delimiter = ',', required = true)]
    tree: Vec<String>,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    tls: InternalTlsArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    probes: ProbeArgs,
}

#[derive(Args, Debug)]
struct GatewayArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Address to serve the public gRPC services and the tile API on.
    #[arg(long, env = "EVAULT_LISTEN", default_value = crate::client::DEFAULT_LISTEN)]
    listen: String,
    /// The log's origin.
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: String,
    /// The ingest, e.g. `http://127.0.0.1:7401` (`https://` with --tls-ca).
    #[arg(long, env = "EVAULT_INGEST")]
    ingest: String,
    /// A tree, e.g. `http://127.0.0.1:7402` (`https://` with --tls-ca);
    /// repeat for a standby.
    #[arg(long, env = "EVAULT_TREE", value_delimiter = ',', required = true)]
    tree: Vec<String>,
    #[command(flatten)]
    auth: AuthArgs,
    /// TLS on the public listener asks for no client certificate; the CA,
    /// when given, is for the calls to ingest and tree.
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    probes: ProbeArgs,
}

/// Says where a role listens: on standard output, for whoever started it.
fn announce(role: &str, listener: &tokio::net::TcpListener, scheme: &str) -> Result<(), Failure> {
    let addr = listener
        .local_addr()
        .map_err(|e| usage(format!("--listen: {e}")))?;
    println!("evault serve {role}: listening on {scheme}://{addr}");
    Ok(())
}

fn served_error(role: &str) -> impl FnOnce(tonic::transport::Error) -> Failure + '_ {
    move |e| usage(format!("serving {role}: {e}"))
}

impl Role {
    /// The role's name in traces (`OTEL_SERVICE_NAME` overrides it).
    fn service(&self) -> &'static str {
        match self {
            Role::Signer(_) => "evault-signer",
            Role::Tree(_) => "evault-tree",
            Role::Ingest(_) => "evault-ingest",
            Role::Gateway(_) => "evault-gateway",
        }
    }
}

pub(crate) fn run(args: ServeArgs) -> Outcome {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    let telemetry = crate::telemetry::start(&runtime, args.role.service());
    let outcome = runtime.block_on(async move {
        match args.role {
            Role::Signer(a) => {
                let keys = a.keys.load(&a.origin)?.ok_or_else(|| {
                    usage("no signing key: give --key-file FILE, or the --pkcs11-* flags")
                })?;
                let tls = a.tls.internal("signer", evault_signer::CALLERS)?;
                let storage = a.storage.open().await?;
                let listener = bind(&a.listen).await?;
                announce("signer", &listener, tls.scheme())?;
                a.probes.start(&["evault.v1.SignerService"]).await?;
                with_signer_store!(storage, store => {
                    let signer = CheckpointSigner::new(&a.origin, keys, store).map_err(usage)?;
                    evault_signer::serve(a.connections.incoming(listener), signer, tls.server, shutdown_signal()).await.map_err(served_error("signer"))
                })
            }
            Role::Tree(a) => serve_tree(a).await,
            Role::Ingest(a) => {
                let denials = Denials::new();
                let auth = a.auth.layer().await?.with_denials(denials.clone());
                let rate = a.auth.rate_limit()?;
                let tls = a.tls.internal("ingest", evault_ingest::CALLERS)?;
                let tree = Arc::new(
                    RemoteTree::new(&a.tree, &a.origin, tls.client.as_ref()).map_err(usage)?,
                );
                let audit = Arc::new(
                    RemoteAudit::new(&a.tree, &a.origin, tls.client.as_ref()).map_err(usage)?,
                );
                let storage = a.storage.open().await?;
                let listener = bind(&a.listen).await?;
                announce("ingest", &listener, tls.scheme())?;
                a.probes
                    .start(&["evault.v1.IngestService", "evault.v1.EvidenceService"])
                    .await?;
                let reports = DenialReports::start(denials, Arc::clone(&audit), "ingest");
                let served = with_store!(storage, store => {
                    let ingest = IngestGrpc::new(auth.clone(), rate, store.clone(), Batcher::start(tree, BatchConfig::default()));
                    let evidence = EvidenceGrpc::new(auth, store, audit);
                    evault_ingest::serve(a.connections.incoming(listener), ingest, evidence, tls.server, shutdown_signal()).await.map_err(served_error("ingest"))
                });
                reports.flush().await;
                served
            }
            Role::Gateway(a) => {
                let tls = a.tls.public()?;
                let cors = a.web.cors()?;
                let ingest = IngestProxy::new(&a.ingest, tls.client.as_ref()).map_err(usage)?;
                let evidence = EvidenceProxy::new(&a.ingest, tls.client.as_ref()).map_err(usage)?;
                let tree = TreeProxy::new(&a.tree, tls.client.as_ref()).map_err(usage)?;
                let audit = Arc::new(
                    RemoteAudit::new(&a.tree, &a.origin, tls.client.as_ref()).map_err(usage)?,
                );
                let storage = a.storage.open().await?;
                let listener = bind(&a.listen).await?;
                announce("gateway", &listener, tls.scheme())?;
                a.probes.start(&evault_proto::PUBLIC_SERVICES).await?;
                // The gateway refuses callers from their headers, before
                // forwarding a byte; ingest checks the same token again.
                let denials = Denials::new();
                let auth = a.auth.layer().await?.with_denials(denials.clone());
                let reports = DenialReports::start(denials, audit, "gateway");
                let grpc = crate::identity::guarded(
                    tonic::service::Routes::new(
                        IngestServiceServer::new(ingest)
                            .max_decoding_message_size(evault_proto::transport::MAX_MESSAGE),
                    )
                        .add_service(EvidenceServiceServer::new(evidence))
                        .add_service(TreeServiceServer::new(tree.clone())),
                    &auth,
                );
                let served = with_store!(storage, store => {
                    let tiles = TileApi::new(&a.origin, store.clone())
                        .routes()
                        .merge(evault_gateway::verifier_keys_routes(tree.clone()))
                        .merge(evault_gateway::audit_routes(&a.origin, store, tree))
                        .layer(auth);
                    evault_gateway::serve(a.connections.incoming(listener), grpc, tiles, tls.server, cors, shutdown_signal())
                        .await
                        .map_err(|e| usage(format!("serving gateway: {e}")))
                });
                reports.flush().await;
                served
            }
        }
    });
    telemetry.stop();
    outcome
}

/// Tree serves reads at once, and sequences only while it leads the log:
/// with PostgreSQL, by holding the log's advisory lock (a second tree
/// stands by until the first is gone); with the embedded store, the data
/// directory's lock already makes it the only one.
async fn serve_tree(a: TreeArgs) -> Outcome {
    let tls = a.tls.internal("tree", evault_tree::CALLERS)?;
    let publisher = RemoteSigner::new(&a.signer, tls.client.as_ref()).map_err(usage)?;
    let storage = a.storage.open().await?;
    let listener = bind(&a.listen).await?;
    with_store!(storage, store => {
        let tree = TreeGrpc::standby(&a.origin, LogReader::new(&a.origin, store.clone()), Arc::new(publisher.clone()));
        announce("tree", &listener, tls.scheme())?;
        if let Some(reporter) = a.probes.start(&[]).await? {
            let tree = tree.clone();
            tokio::spawn(async move { tree.report_health(reporter).await });
        }
        let mut server = tokio::spawn(evault_tree::serve(a.connections.incoming(listener), tree.clone(), tls.server, shutdown_signal()));
        let mut leadership = match &a.storage.database_url {
            Some(url) => {
                let stopped = async {
                    let _ = (&mut server).await;
                };
                let led = crate::lead::lead(url, &a.origin, stopped).await;
                Some(led.map_err(|_| usage("the tree server stopped while standing by"))?)
            }
            None => None,
        };
        let sequencer = Sequencer::open(&a.origin, store.clone(), publisher.clone())
            .await
            .map_err(|e| usage(format!("opening the log: {e}")))?;
        let trail = crate::vault::start_audit_trail(&sequencer, store, publisher).await?;
        tree.promote(Arc::new(sequencer));
        tracing::info!(origin = %a.origin, "tree is the active sequencer");
        let served = async {
            let served = (&mut server).await;
            // A graceful stop: still the leader, so the trail is written
            // out first.
            crate::vault::flush_audit_trail(&trail).await;
            match served {
                Ok(result) => result.map_err(served_error("tree")),
                Err(e) => Err(usage(format!("tree server task: {e}"))),
            }
        };
        crate::lead::while_leading(leadership.as_mut(), served).await
    })
}

/// Apply the database migrations: the log's, the signer's, or both.
///
/// Safe to run from several replicas at once: an advisory lock lets one
/// apply each migration. The log's and the signer's databases must be
/// different ones; each refuses a database holding the other.
#[derive(Args, Debug)]
pub(crate) struct MigrateArgs {
    /// PostgreSQL URL of the log's database.
    #[arg(
        long,
        env = "EVAULT_DATABASE_URL",
        required_unless_present = "signer_database_url"
    )]
    database_url: Option<String>,
    /// PostgreSQL URL of the signer's own database.
    #[arg(long, env = "EVAULT_SIGNER_DATABASE_URL")]
    signer_database_url: Option<String>,
}

pub(crate) fn migrate(args: MigrateArgs) -> Outcome {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    if let Some(url) = &args.database_url {
        let applied = runtime
            .block_on(evault_storage::postgres::migrate(url))
            .map_err(|e| usage(format!("--database-url: {e}")))?;
        report_migrations("", &applied);
    }
    if let Some(url) = &args.signer_database_url {
        let applied = runtime
            .block_on(evault_storage::signer::migrate_signer(url))
            .map_err(|e| usage(format!("--signer-database-url: {e}")))?;
        report_migrations("signer ", &applied);
    }
    Ok(())
}

/// Says what was migrated; `whose` is empty for the log's database,
/// `"signer "` for the signer's.
fn report_migrations(whose: &str, applied: &[u32]) {
    if applied.is_empty() {
        println!("{whose}database is up to date");
    } else {
        let versions: Vec<String> = applied.iter().map(u32::to_string).collect();
        println!("applied {whose}migrations {}", versions.join(", "));
    }
}
