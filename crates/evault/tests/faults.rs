//! The fault suite: the four roles as separate processes on PostgreSQL,
//! two trees (one leading, one standing by), and a supervisor that
//! restarts whatever exits, as Kubernetes would. Appends stream through
//! the gateway the whole time, each retried until it is acknowledged.
//!
//! One fault at a time: SIGKILL of the active tree, of the standby, of the
//! signer, of ingest, of the gateway; a PostgreSQL restart; connections
//! cut and stalled by a TCP proxy (tree ↔ signer, ingest and gateway ↔
//! tree, every role ↔ PostgreSQL); the signer answering slowly (stopped
//! for seconds). After each: appends succeed again, and at the end every
//! acknowledged receipt verifies with its entry at its index, each tree
//! size has one root, `fsck` passes, and retried appends come back as the
//! original receipts.
//!
//! How long each recovery took is printed (`cargo test --test faults --
//! --nocapture`) and reported in `docs/faults.md`; the test itself bounds
//! recovery only generously (it checks that it happens, not how fast).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evault_core::hash::sha256;
use evault_core::{Checkpoint, Note, Receipt, VerifierKey, parse_verifier_keys};
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::{AppendRequest, EvidenceStatement, GetEntriesRequest};
use evault_test_support::proxy::{TcpProxy, database_addr, database_url_via};
use evault_test_support::{PgSchema, ServerProcess, succeeded};
use tonic::transport::Channel;

const ORIGIN: &str = "vault.example/faults";

/// Appends running at once, each retried until acknowledged.
const WRITERS: usize = 4;

/// How long a fault that lasts (a stall, a stopped signer) lasts.
const HELD: Duration = Duration::from_secs(2);

/// How long the suite waits for appends to succeed again before failing:
/// a bound on "it recovers", far above the recovery times measured.
const RECOVERY_BOUND: Duration = Duration::from_secs(90);

fn evault() -> Command {
    evault_test_support::command(env!("CARGO_BIN_EXE_evault"))
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// A port free now, for a role that must come back on the same one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One role's process, restarted by the supervisor whenever it exits.
struct Supervised {
    name: &'static str,
    command: Box<dyn Fn() -> Command + Send + Sync>,
    process: Mutex<Option<ServerProcess>>,
    restarts: Mutex<u32>,
}

impl Supervised {
    fn start(name: &'static str, command: impl Fn() -> Command + Send + Sync + 'static) -> Self {
        let process = ServerProcess::start(command());
        Supervised {
            name,
            command: Box::new(command),
            process: Mutex::new(Some(process)),
            restarts: Mutex::new(0),
        }
    }

    /// Its process ID, once it runs.
    fn pid(&self) -> u32 {
        let deadline = Instant::now() + RECOVERY_BOUND;
        loop {
            if let Some(process) = self.process.lock().expect("lock").as_ref() {
                return process.pid();
            }
            assert!(Instant::now() < deadline, "{} does not start", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {signal} {}", self.name);
    }

    /// Restarts the process if it has exited, as Kubernetes restarts a
    /// container; returns whether it did.
    fn keep_alive(&self) -> bool {
        let mut process = self.process.lock().expect("lock");
        let exited = process.as_mut().is_none_or(ServerProcess::exited);
        if exited {
            drop(process.take());
            // A role whose dependencies are down exits at start; it is
            // tried again on the next round, as a crash-looping container.
            *process = ServerProcess::try_start((self.command)());
            *self.restarts.lock().expect("lock") += 1;
        }
        exited
    }
}

/// An acknowledged append: the statement's number and its receipt.
#[derive(Clone)]
struct Acknowledged {
    n: u64,
    receipt: evault_proto::v1::Receipt,
    /// Whether an earlier attempt at it failed (so this one was a retry).
    retried: bool,
}

/// What the writers have seen.
#[derive(Default)]
struct Record {
    acknowledged: Vec<Acknowledged>,
    /// (when an attempt started, when it was acknowledged).
    successes: Vec<(Instant, Instant)>,
    failures: u64,
}

fn statement(n: u64) -> EvidenceStatement {
    let content = format!("evidence under faults, number {n}\n").into_bytes();
    EvidenceStatement {
        sha256: sha256(&content).to_vec(),
        size: content.len() as u64,
        media_type: "text/plain".into(),
        name: format!("fault-{n}.txt"),
        labels: vec![],
        content: None,
    }
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(15));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

fn channel(url: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// Appends statement after statement, each until acknowledged.
async fn write(
    gateway: String,
    token: String,
    first: u64,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
) {
    let mut client = IngestServiceClient::new(channel(&gateway));
    let mut n = first;
    while !stop.load(Ordering::SeqCst) {
        let mut retried = false;
        loop {
            let started = Instant::now();
            let answer = client
                .append(authed(
                    AppendRequest {
                        statement: Some(statement(n)),
                    },
                    &token,
                ))
                .await;
            match answer {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    let mut record = record.lock().expect("lock");
                    record.successes.push((started, Instant::now()));
                    record.acknowledged.push(Acknowledged {
                        n,
                        receipt: answer.receipt.expect("a receipt"),
                        retried,
                    });
                    break;
                }
                Err(_) if stop.load(Ordering::SeqCst) => return,
                Err(_) => {
                    record.lock().expect("lock").failures += 1;
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        n += WRITERS as u64;
    }
}

/// Whether the tree whose health port is `health` is the active sequencer.
async fn sequencing(health: &str) -> bool {
    use tonic_health::pb::health_client::HealthClient;
    let Ok(channel) = tonic::transport::Endpoint::from_shared(health.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
    else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    let check = client.check(tonic_health::pb::HealthCheckRequest {
        service: "evault.v1.SequencerService".into(),
    });
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(answer)) => answer.into_inner().status == 1,
        _ => false,
    }
}

/// A fault to inject and, when it lasts, to end. Returns when it began
/// and when it ended (the instant recovery is counted from).
type Fault<'a> = Box<dyn Fn() -> (Instant, Instant) + 'a>;

fn kill(role: &Supervised) -> Fault<'_> {
    Box::new(move || {
        role.signal("-KILL");
        let now = Instant::now();
        (now, now)
    })
}

fn held<'a>(start: Box<dyn Fn() + 'a>, end: Box<dyn Fn() + 'a>) -> Fault<'a> {
    Box::new(move || {
        let began = Instant::now();
        start();
        std::thread::sleep(HELD);
        end();
        (began, Instant::now())
    })
}

fn cut(proxies: Vec<&TcpProxy>) -> Fault<'_> {
    Box::new(move || {
        for proxy in &proxies {
            proxy.cut();
        }
        let now = Instant::now();
        (now, now)
    })
}

fn stall(proxies: Vec<&TcpProxy>) -> Fault<'_> {
    let resumed = proxies.clone();
    held(
        Box::new(move || proxies.iter().for_each(|p| p.stall())),
        Box::new(move || resumed.iter().for_each(|p| p.resume())),
    )
}

struct Vault {
    runtime: tokio::runtime::Runtime,
    signer: Arc<Supervised>,
    trees: [Arc<Supervised>; 2],
    tree_health: [String; 2],
    ingest: Arc<Supervised>,
    gateway: Arc<Supervised>,
    gateway_url: String,
    to_signer: TcpProxy,
    to_trees: [TcpProxy; 2],
    to_database: TcpProxy,
}

impl Vault {
    /// The index (0 or 1) of the tree leading now, waiting for one to.
    fn leader(&self) -> usize {
        let deadline = Instant::now() + RECOVERY_BOUND;
        loop {
            for (i, health) in self.tree_health.iter().enumerate() {
                if self.runtime.block_on(sequencing(health)) {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no tree leads");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn roles(&self) -> Vec<Arc<Supervised>> {
        vec![
            Arc::clone(&self.signer),
            Arc::clone(&self.trees[0]),
            Arc::clone(&self.trees[1]),
            Arc::clone(&self.ingest),
            Arc::clone(&self.gateway),
        ]
    }
}

/// The PostgreSQL cluster of this machine, restarted as an operator
/// would (`pg_ctlcluster`), and waited for.
fn restart_postgres() {
    let versions =
        std::fs::read_dir("/etc/postgresql").expect("/etc/postgresql: the local cluster");
    let version = versions
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a PostgreSQL version");
    let restarted = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(restarted.success(), "pg_ctlcluster restart");
    for _ in 0..600 {
        let ready = Command::new("pg_isready")
            .args(["-h", "127.0.0.1", "-p", "5432", "-q"])
            .status()
            .expect("pg_isready");
        if ready.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("PostgreSQL did not come back");
}

#[test]
fn the_vault_recovers_from_each_fault_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log_schema = PgSchema::create_blocking("evault_faults");
    let signer_schema = PgSchema::create_blocking("evault_faults_signer");
    let key = tmp.path().join("signing.key");
    let vkey = tmp.path().join("verifier-key");
    succeeded(
        &evault()
            .args(["keygen", "--origin", ORIGIN, "--key-file", &path(&key)])
            .args(["--vkey-out", &path(&vkey)])
            .output()
            .expect("keygen"),
    );
    let issuer = tmp.path().join("issuer");
    let token = succeeded(
        &evault()
            .args(["token", "--data-dir", &path(&issuer), "--sub", "faults"])
            .args(["--scope", "evault.append evault.read"])
            .output()
            .expect("token"),
    )
    .trim()
    .to_string();
    let keys: Vec<VerifierKey> =
        parse_verifier_keys(&std::fs::read_to_string(&vkey).expect("vkey")).expect("keys");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let port = |_: &str| free_port();
    let (signer_port, tree_ports, ingest_port, gateway_port) = (
        port("signer"),
        [port("tree"), port("tree")],
        port("ingest"),
        port("gateway"),
    );
    let tree_health_ports = [port("health"), port("health")];
    let local = |port: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port)) };
    let to_signer = runtime.block_on(TcpProxy::start(local(signer_port)));
    let to_trees = [
        runtime.block_on(TcpProxy::start(local(tree_ports[0]))),
        runtime.block_on(TcpProxy::start(local(tree_ports[1]))),
    ];
    let to_database = runtime.block_on(TcpProxy::start(database_addr(&log_schema.url)));
    let log_db = database_url_via(&log_schema.url, to_database.addr());
    let signer_db = database_url_via(&signer_schema.url, to_database.addr());
    let trees = format!(
        "http://{},http://{}",
        to_trees[0].addr(),
        to_trees[1].addr()
    );
    let jwks = path(&issuer.join("jwks.json"));
    let identity = [
        "--jwks-file".to_string(),
        jwks,
        "--jwt-issuer".into(),
        "evault-local".into(),
        "--jwt-audience".into(),
        "evault".into(),
    ];
    let serve = move |role: &str, database: &str, port: u16| {
        let mut command = evault();
        command
            .args([
                "serve",
                role,
                "--database-url",
                database,
                "--origin",
                ORIGIN,
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        command
    };

    let signer = Arc::new(Supervised::start("signer", {
        let (serve, db, key) = (serve, signer_db.clone(), path(&key));
        move || {
            let mut c = serve("signer", &db, signer_port);
            c.args(["--key-file", &key]);
            c
        }
    }));
    let signer_url = format!("http://{}", to_signer.addr());
    let tree = |i: usize| {
        let (serve, db, signer_url) = (serve, log_db.clone(), signer_url.clone());
        Arc::new(Supervised::start(
            if i == 0 { "tree 1" } else { "tree 2" },
            move || {
                let mut c = serve("tree", &db, tree_ports[i]);
                c.args(["--signer", &signer_url]).args([
                    "--health-listen",
                    &format!("127.0.0.1:{}", tree_health_ports[i]),
                ]);
                c
            },
        ))
    };
    let trees_running = [tree(0), tree(1)];
    let ingest = Arc::new(Supervised::start("ingest", {
        let (serve, db, trees, identity) = (serve, log_db.clone(), trees.clone(), identity.clone());
        move || {
            let mut c = serve("ingest", &db, ingest_port);
            c.args(["--tree", &trees]).args(&identity);
            c
        }
    }));
    let gateway = Arc::new(Supervised::start("gateway", {
        let (serve, db, trees, identity) = (serve, log_db.clone(), trees.clone(), identity.clone());
        move || {
            let mut c = serve("gateway", &db, gateway_port);
            c.args(["--ingest", &format!("http://127.0.0.1:{ingest_port}")])
                .args(["--tree", &trees])
                .args(&identity);
            c
        }
    }));
    let vault = Vault {
        runtime,
        signer,
        trees: trees_running,
        tree_health: tree_health_ports.map(|p| format!("http://127.0.0.1:{p}")),
        ingest,
        gateway,
        gateway_url: format!("http://127.0.0.1:{gateway_port}"),
        to_signer,
        to_trees,
        to_database,
    };

    // The supervisor: whatever exits is started again, at once.
    let stop = Arc::new(AtomicBool::new(false));
    let supervisor = std::thread::spawn({
        let (roles, stop) = (vault.roles(), Arc::clone(&stop));
        move || {
            while !stop.load(Ordering::SeqCst) {
                for role in &roles {
                    role.keep_alive();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });

    // The writers, streaming appends throughout.
    let record = Arc::new(Mutex::new(Record::default()));
    let writers: Vec<_> = (0..WRITERS as u64)
        .map(|first| {
            vault.runtime.spawn(write(
                vault.gateway_url.clone(),
                token.clone(),
                first,
                Arc::clone(&record),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let acknowledged = || record.lock().expect("lock").acknowledged.len();
    let settle = |at_least: usize| {
        let deadline = Instant::now() + RECOVERY_BOUND;
        while acknowledged() < at_least {
            assert!(Instant::now() < deadline, "appends did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    settle(200);

    let faults: Vec<(&str, Fault<'_>)> = vec![
        (
            "SIGKILL of the active tree",
            Box::new(|| {
                let leader = vault.leader();
                kill(&vault.trees[leader])()
            }),
        ),
        (
            "SIGKILL of the standby tree",
            Box::new(|| {
                let leader = vault.leader();
                kill(&vault.trees[1 - leader])()
            }),
        ),
        ("SIGKILL of the signer", kill(&vault.signer)),
        ("SIGKILL of ingest", kill(&vault.ingest)),
        ("SIGKILL of the gateway", kill(&vault.gateway)),
        (
            "PostgreSQL restart",
            Box::new(|| {
                let began = Instant::now();
                restart_postgres();
                (began, Instant::now())
            }),
        ),
        ("tree ↔ signer connections cut", cut(vec![&vault.to_signer])),
        (
            "tree ↔ signer connections stalled for 2 s",
            stall(vec![&vault.to_signer]),
        ),
        (
            "ingest and gateway ↔ tree connections cut",
            cut(vault.to_trees.iter().collect()),
        ),
        (
            "ingest and gateway ↔ tree connections stalled for 2 s",
            stall(vault.to_trees.iter().collect()),
        ),
        (
            "roles ↔ PostgreSQL connections cut",
            cut(vec![&vault.to_database]),
        ),
        (
            "roles ↔ PostgreSQL connections stalled for 2 s",
            stall(vec![&vault.to_database]),
        ),
        (
            "the signer answering slowly (stopped for 2 s)",
            held(
                Box::new(|| vault.signer.signal("-STOP")),
                Box::new(|| vault.signer.signal("-CONT")),
            ),
        ),
    ];

    let mut recoveries = Vec::new();
    for (name, fault) in &faults {
        let (began, ended) = fault();
        // Recovered: an append begun after the fault ended is acknowledged.
        let deadline = ended + RECOVERY_BOUND;
        let recovered = loop {
            let first = record
                .lock()
                .expect("lock")
                .successes
                .iter()
                .filter(|(started, _)| *started >= ended)
                .map(|(_, done)| *done)
                .min();
            if let Some(done) = first {
                break done;
            }
            assert!(Instant::now() < deadline, "{name}: appends did not recover");
            std::thread::sleep(Duration::from_millis(10));
        };
        let (took, outage) = (recovered - ended, recovered - began);
        println!(
            "fault: {name}: appends acknowledged again {} ms after it ended ({} ms after it began)",
            took.as_millis(),
            outage.as_millis()
        );
        recoveries.push((*name, took, outage));
        // Steady again before the next fault.
        let now = acknowledged();
        settle(now + 100);
    }

    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        let _ = vault.runtime.block_on(writer);
    }
    supervisor.join().expect("supervisor");
    let record = record.lock().expect("lock");
    let restarts: Vec<String> = vault
        .roles()
        .iter()
        .map(|r| format!("{} {}", r.name, r.restarts.lock().expect("lock")))
        .collect();
    println!(
        "faults: {} appends acknowledged, {} failed attempts retried; restarts: {}",
        record.acknowledged.len(),
        record.failures,
        restarts.join(", ")
    );

    // Every acknowledged receipt verifies, and each tree size it names has
    // one root.
    let mut roots: HashMap<u64, evault_core::Hash> = HashMap::new();
    for ack in &record.acknowledged {
        let receipt = Receipt {
            extra: Some(ack.receipt.entry.clone()),
            index: ack.receipt.index,
            proof: ack
                .receipt
                .inclusion_proof
                .iter()
                .map(|h| evault_core::Hash::from_slice(h).expect("32 bytes"))
                .collect(),
            checkpoint: ack.receipt.checkpoint.clone(),
        };
        receipt
            .verify(&keys, Some(ORIGIN))
            .unwrap_or_else(|e| panic!("receipt of statement {}: {e}", ack.n));
        let note = Note::parse(&ack.receipt.checkpoint).expect("note");
        let checkpoint = Checkpoint::parse(note.text()).expect("checkpoint");
        let root = *roots.entry(checkpoint.size).or_insert(checkpoint.root);
        assert_eq!(
            root, checkpoint.root,
            "two roots for size {}",
            checkpoint.size
        );
    }

    // Each acknowledged entry is in the log at its index, and no statement
    // is logged twice, however often it was retried.
    let logged = vault.runtime.block_on(async {
        let mut tree = TreeServiceClient::new(channel(&vault.gateway_url));
        let mut logged: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        loop {
            let start = logged.len() as u64;
            let page = tree
                .get_entries(authed(GetEntriesRequest { start, count: 1000 }, &token))
                .await;
            match page {
                Ok(page) => {
                    let entries = page.into_inner().entries;
                    if entries.is_empty() {
                        break;
                    }
                    logged.extend(entries.into_iter().map(|e| (e.index, e.entry)));
                }
                Err(status) if status.code() == tonic::Code::OutOfRange => break,
                Err(status) => panic!("reading the log back: {status:?}"),
            }
        }
        logged
    });
    for ack in &record.acknowledged {
        assert_eq!(
            logged.get(&ack.receipt.index),
            Some(&ack.receipt.entry),
            "statement {} at index {}",
            ack.n,
            ack.receipt.index
        );
    }
    let mut digests: Vec<[u8; 32]> = logged
        .values()
        .map(|entry| {
            evault_core::EvidenceEntry::decode(entry)
                .expect("entry")
                .digest
        })
        .collect();
    digests.sort_unstable();
    digests.dedup();
    assert_eq!(digests.len(), logged.len(), "a statement was logged twice");

    // Retried appends come back as the original receipts.
    let retried: Vec<&Acknowledged> = record.acknowledged.iter().filter(|a| a.retried).collect();
    assert!(
        !retried.is_empty(),
        "no append was ever retried: no fault was felt"
    );
    vault.runtime.block_on(async {
        let mut ingest = IngestServiceClient::new(channel(&vault.gateway_url));
        let sample = retried
            .iter()
            .copied()
            .take(50)
            .chain(record.acknowledged.iter().take(5));
        for ack in sample {
            let again = ingest
                .append(authed(
                    AppendRequest {
                        statement: Some(statement(ack.n)),
                    },
                    &token,
                ))
                .await
                .expect("append again")
                .into_inner();
            assert!(again.duplicate, "statement {} logged again", ack.n);
            assert_eq!(again.receipt.expect("receipt").index, ack.receipt.index);
        }
    });

    // The whole log audits clean.
    succeeded(
        &evault()
            .args(["fsck", "--vkey-file", &path(&vkey), &vault.gateway_url])
            .output()
            .expect("fsck"),
    );

    println!("| fault | acknowledged again after it ended | after it began |");
    println!("| --- | --- | --- |");
    for (name, took, outage) in &recoveries {
        println!(
            "| {name} | {:.2} s | {:.2} s |",
            took.as_secs_f64(),
            outage.as_secs_f64()
        );
    }
    drop(faults);
    drop(vault);
    log_schema.drop_blocking();
    signer_schema.drop_blocking();
}
