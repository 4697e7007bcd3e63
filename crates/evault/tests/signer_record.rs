//! The signer's record in its own failure domain, as users run the vault:
//! `evault up` keeps it in `DATA_DIR/signer.redb` whatever holds the log,
//! and refuses to sequence once the log's storage is put back behind it
//! (an old copy of the embedded file, a PostgreSQL database rolled back),
//! signing nothing at a size already signed; the record kept beside the
//! log by earlier versions moves into the signer's file once; `evault
//! serve signer` refuses the log's database; and with the roles as
//! separate processes, tree refuses a rolled-back database on start.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use evault_core::{Checkpoint, EvidenceEntry, Note, VerifierKey, parse_verifier_keys};
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::sequencer_service_client::SequencerServiceClient;
use evault_proto::v1::signer_service_client::SignerServiceClient;
use evault_proto::v1::{
    AppendRequest, EvidenceStatement, GetSignedHeadRequest, SequenceEntry, SequenceRequest,
};
use evault_storage::SignerStore;
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_test_support::health::{ServingStatus, reaches as health_reaches};
use evault_test_support::{PgSchema, ServerProcess};

fn evault() -> Command {
    evault_test_support::command(env!("CARGO_BIN_EXE_evault"))
}

fn run(args: &[&str]) -> Output {
    evault().args(args).output().expect("run evault")
}

fn ok(out: &Output) -> String {
    evault_test_support::succeeded(out)
}

fn start(args: &[String]) -> ServerProcess {
    let mut command = evault();
    command.args(args);
    ServerProcess::start(command)
}

fn up_args(data: &Path, database_url: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "up".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    if let Some(url) = database_url {
        args.extend(["--database-url".into(), url.into()]);
    }
    args
}

fn write_files(dir: &Path, from: u32, to: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (from..to)
        .map(|i| {
            let path = dir.join(format!("evidence-{i:05}.txt"));
            std::fs::write(&path, format!("evidence file number {i}\n")).expect("write");
            path
        })
        .collect()
}

/// `evault append` of `files` through `server`, with `evault up`'s token.
fn append(server: &str, data: &Path, files: &[PathBuf]) -> Output {
    evault()
        .args(["append", "--server", server, "--token-file"])
        .arg(data.join("dev-token"))
        .args(files)
        .output()
        .expect("append")
}

/// The checkpoint `server` serves, verbatim.
fn served_checkpoint(server: &str) -> Vec<u8> {
    ok(&run(&["checkpoint", "--server", server])).into_bytes()
}

fn size_of(note: &[u8]) -> u64 {
    let note = Note::parse(note).expect("note");
    Checkpoint::parse(note.text()).expect("checkpoint").size
}

/// Checks with `evault consistency` that what `server` serves now extends
/// `earlier`, a checkpoint it served before.
fn extends(server: &str, data: &Path, earlier: &[u8], scratch: &Path) {
    let from = scratch.join(format!("checkpoint.{}", size_of(earlier)));
    std::fs::write(&from, earlier).expect("write");
    ok(&run(&[
        "consistency",
        "--server",
        server,
        "--vkey-file",
        &data.join("verifier-key").display().to_string(),
        "--from",
        &from.display().to_string(),
    ]));
}

fn keys(data: &Path) -> Vec<VerifierKey> {
    parse_verifier_keys(&std::fs::read_to_string(data.join("verifier-key")).expect("vkey"))
        .expect("keys")
}

/// One append through gRPC, to read the status it is answered with.
async fn append_status(server: &str, data: &Path, tag: &str) -> Result<u64, tonic::Status> {
    let content = format!("appended after the restore, {tag}");
    let mut request = tonic::Request::new(AppendRequest {
        statement: Some(EvidenceStatement {
            sha256: evault_core::hash::sha256(content.as_bytes()).to_vec(),
            size: content.len() as u64,
            media_type: "text/plain".into(),
            name: String::new(),
            labels: vec![],
            content: None,
        }),
    });
    let token = std::fs::read_to_string(data.join("dev-token")).expect("token");
    let bearer = format!("Bearer {}", token.trim()).parse().expect("header");
    request.metadata_mut().insert("authorization", bearer);
    let mut ingest = IngestServiceClient::connect(server.to_string())
        .await
        .expect("connect");
    let answer = ingest.append(request).await?;
    Ok(answer.into_inner().receipt.map_or(0, |r| r.index))
}

/// The signer's record of `origin` in its file in `data`, read with the
/// vault stopped.
fn signer_record(data: &Path, origin: &str) -> evault_storage::SignedHead {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        SignerFile::open(&data.join(SIGNER_FILE))
            .expect("signer file")
            .last_signed(origin)
            .await
            .expect("record")
            .expect("signed")
    })
}

fn origin(data: &Path) -> String {
    std::fs::read_to_string(data.join("origin"))
        .expect("origin")
        .trim()
        .to_string()
}

/// How the log's storage is put back behind what was signed.
enum Rollback<'a> {
    /// `vault.redb` copied aside at 20 entries and put back.
    EmbeddedFile,
    /// The log's PostgreSQL database rolled back to 20 entries.
    Postgres(&'a PgSchema),
}

/// Appends 20 entries, keeps the log's storage as it is then, appends 10
/// more, and puts the storage back at 20 entries, keeping the signer's
/// file. Restarted, the vault refuses every append with
/// `FAILED_PRECONDITION`, reports `IngestService` `NOT_SERVING`, still
/// serves the checkpoint at 20, and signs nothing: the signer's record is
/// still the checkpoint at 30. Put back at 30 (the copy that holds what
/// was signed), it appends again, consistently with that checkpoint.
fn restored_storage_behind_the_signer_is_refused(rollback: Rollback<'_>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let url = match &rollback {
        Rollback::EmbeddedFile => None,
        Rollback::Postgres(schema) => Some(schema.url.clone()),
    };
    let args = up_args(&data, url.as_deref());
    let files = tmp.path().join("files");

    let server = start(&args);
    ok(&append(&server.url, &data, &write_files(&files, 0, 20)));
    let at_twenty = served_checkpoint(&server.url);
    assert_eq!(size_of(&at_twenty), 20);
    server.kill();
    let log_file = data.join(evault_storage::embedded::DATABASE_FILE);
    let backup = tmp.path().join("vault.redb.at-20");
    if let Rollback::EmbeddedFile = rollback {
        std::fs::copy(&log_file, &backup).expect("copy the log aside");
    }

    let server = start(&args);
    ok(&append(&server.url, &data, &write_files(&files, 20, 30)));
    let at_thirty = served_checkpoint(&server.url);
    assert_eq!(size_of(&at_thirty), 30);
    server.kill();
    let origin = origin(&data);
    assert_eq!(signer_record(&data, &origin).checkpoint, at_thirty);

    let ahead = tmp.path().join("vault.redb.at-30");
    match &rollback {
        Rollback::EmbeddedFile => {
            std::fs::rename(&log_file, &ahead).expect("keep the newer copy");
            std::fs::copy(&backup, &log_file).expect("put the old copy back");
        }
        Rollback::Postgres(schema) => roll_back_to(&schema.url, &at_twenty),
    }

    let server = start(&args);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for attempt in 0..2 {
        let refused = runtime
            .block_on(append_status(&server.url, &data, &attempt.to_string()))
            .expect_err("storage behind the signer");
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{refused:?}"
        );
        assert!(
            refused.message().contains("size 20") && refused.message().contains("size 30"),
            "{}",
            refused.message()
        );
    }
    runtime.block_on(health_reaches(
        &server.url,
        "evault.v1.IngestService",
        ServingStatus::NotServing,
    ));
    runtime.block_on(health_reaches(
        &server.url,
        "evault.v1.TreeService",
        ServingStatus::Serving,
    ));
    let cli = append(&server.url, &data, &write_files(&files, 30, 31));
    assert_ne!(cli.status.code(), Some(0), "the CLI's append fails too");
    assert_eq!(served_checkpoint(&server.url), at_twenty);
    server.kill();
    assert_eq!(
        signer_record(&data, &origin).checkpoint,
        at_thirty,
        "nothing signed at a size already signed"
    );

    // The repair: the log's storage back at what was signed.
    match &rollback {
        Rollback::EmbeddedFile => {
            std::fs::rename(&ahead, &log_file).expect("put the newer copy back");
        }
        Rollback::Postgres(_) => return,
    }
    let server = start(&args);
    ok(&append(&server.url, &data, &write_files(&files, 30, 35)));
    extends(&server.url, &data, &at_thirty, tmp.path());
    let latest = served_checkpoint(&server.url);
    evault_core::open_checkpoint(&latest, &keys(&data), None).expect("verifies");
    assert_eq!(size_of(&latest), 35);
    server.kill();
}

/// Leaves the log's database as a backup taken at `checkpoint` would: its
/// entries, tiles and checkpoints beyond it gone, its head at it.
fn roll_back_to(url: &str, checkpoint: &[u8]) {
    let note = Note::parse(checkpoint).expect("note");
    let cp = Checkpoint::parse(note.text()).expect("checkpoint");
    // The checkpoint's log alone: its audit trail is another log in the
    // same tables, left as it is.
    let sql = format!(
        "BEGIN;
         CREATE TEMPORARY TABLE rolled AS SELECT id FROM logs WHERE origin = '{origin}';
         DELETE FROM checkpoints WHERE size > {size} AND log_id IN (SELECT id FROM rolled);
         DELETE FROM entries WHERE idx >= {size} AND log_id IN (SELECT id FROM rolled);
         DELETE FROM tiles WHERE (idx + 1) * power(256::NUMERIC, level + 1) > {size}
           AND log_id IN (SELECT id FROM rolled);
         UPDATE tree_heads SET size = {size}, root = '\\x{root}'
           WHERE log_id IN (SELECT id FROM rolled);
         COMMIT;",
        origin = cp.origin,
        size = cp.size,
        root = evault_core::hash::hex(cp.root.as_bytes())
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client.batch_execute(&sql).await.expect("roll back");
    });
}

#[test]
fn embedded_up_refuses_an_old_copy_of_the_log_behind_the_signer() {
    restored_storage_behind_the_signer_is_refused(Rollback::EmbeddedFile);
}

#[test]
fn postgres_up_refuses_a_rolled_back_database_behind_the_signer() {
    let schema = PgSchema::create_blocking("evault_rollback");
    restored_storage_behind_the_signer_is_refused(Rollback::Postgres(&schema));
    schema.drop_blocking();
}

/// A data directory of an earlier version kept the signer's record in the
/// log's file (`signer_heads` in `vault.redb`). `evault up` moves it into
/// `signer.redb` once and goes on signing from it; without it, the signer
/// would have refused every checkpoint that did not start from nothing.
#[test]
fn up_moves_the_signers_record_out_of_the_logs_file() {
    const LEGACY: redb::TableDefinition<'_, &str, &[u8]> =
        redb::TableDefinition::new("signer_heads");
    const OWN: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("signed_heads");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let args = up_args(&data, None);
    let files = tmp.path().join("files");
    let server = start(&args);
    ok(&append(&server.url, &data, &write_files(&files, 0, 12)));
    let before = served_checkpoint(&server.url);
    server.kill();

    // As an earlier version left it: the record in the log's file.
    let signer_path = data.join(SIGNER_FILE);
    let origin = origin(&data);
    let record = {
        let db = redb::Database::open(&signer_path).expect("signer file");
        let txn = redb::ReadableDatabase::begin_read(&db).expect("read");
        let table = txn.open_table(OWN).expect("table");
        let value = table.get(origin.as_str()).expect("get").expect("record");
        value.value().to_vec()
    };
    std::fs::remove_file(&signer_path).expect("remove the signer file");
    {
        let db = redb::Database::open(data.join(evault_storage::embedded::DATABASE_FILE))
            .expect("log file");
        let txn = db.begin_write().expect("write");
        txn.open_table(LEGACY)
            .expect("legacy table")
            .insert(origin.as_str(), record.as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    }

    let server = start(&args);
    ok(&append(&server.url, &data, &write_files(&files, 12, 15)));
    extends(&server.url, &data, &before, tmp.path());
    server.kill();
    assert_eq!(size_of(&signer_record(&data, &origin).checkpoint), 15);
    let db =
        redb::Database::open(data.join(evault_storage::embedded::DATABASE_FILE)).expect("log file");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("read");
    assert!(
        txn.open_table(LEGACY).is_err(),
        "the record kept beside the log is gone"
    );
}

#[test]
fn serve_signer_refuses_the_logs_database() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let schema = PgSchema::create_blocking("evault_shared");
    let key = tmp.path().join("signing.key");
    let key_arg = key.display().to_string();
    ok(&run(&[
        "keygen",
        "--origin",
        "vault.example/log",
        "--key-file",
        &key_arg,
    ]));
    ok(&run(&["migrate", "--database-url", &schema.url]));
    let out = run(&[
        "serve",
        "signer",
        "--listen",
        "127.0.0.1:0",
        "--origin",
        "vault.example/log",
        "--key-file",
        &key_arg,
        "--database-url",
        &schema.url,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--database-url") && stderr.contains("kept apart"),
        "{stderr}"
    );
    let out = run(&["migrate", "--signer-database-url", &schema.url]);
    assert_eq!(out.status.code(), Some(2));
    schema.drop_blocking();
}

/// `count` entries of a history named `tag`, as ingest would send them.
fn sequence_request(origin: &str, from: u32, to: u32, tag: &str) -> SequenceRequest {
    SequenceRequest {
        origin: origin.into(),
        entries: (from..to)
            .map(|n| {
                let entry = EvidenceEntry {
                    digest: evault_core::hash::sha256(format!("{tag} {n}").as_bytes()),
                    size: u64::from(n),
                    received_ms: 1_795_960_341_000,
                    media_type: "text/plain".into(),
                    name: None,
                    principal: "four-roles".into(),
                    labels: Default::default(),
                };
                SequenceEntry {
                    dedup_key: entry.dedup_key().expect("key").to_vec(),
                    entry: entry.encode().expect("entry"),
                }
            })
            .collect(),
    }
}

/// Signer and tree as separate processes, each with a database of its
/// own: tree restarted on its database rolled back behind the signer's
/// record refuses `Sequence` with `FAILED_PRECONDITION`, reports
/// `SequencerService` `NOT_SERVING`, and the signer's record is unchanged.
#[test]
fn separate_tree_refuses_its_database_rolled_back_behind_the_signer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = PgSchema::create_blocking("evault_roles_log");
    let signer_db = PgSchema::create_blocking("evault_roles_signer");
    let origin = "vault.example/separate";
    let key = tmp.path().join("signing.key");
    ok(&run(&[
        "keygen",
        "--origin",
        origin,
        "--key-file",
        &key.display().to_string(),
    ]));
    let serve = |role: &str, database: &str, extra: &[&str]| {
        let mut args: Vec<String> = ["serve", role, "--origin", origin, "--listen", "127.0.0.1:0"]
            .map(String::from)
            .to_vec();
        args.extend(["--database-url".to_string(), database.to_string()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        start(&args)
    };
    let signer = serve(
        "signer",
        &signer_db.url,
        &["--key-file", &key.display().to_string()],
    );
    let tree = serve("tree", &log.url, &["--signer", &signer.url]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // A tree serves as soon as it listens, and sequences once it leads
    // the log (a standby answers UNAVAILABLE until then).
    let sequence = |url: &str, from: u32, to: u32| {
        let request = sequence_request(origin, from, to, "separate");
        let url = url.to_string();
        runtime.block_on(async move {
            let mut client = SequencerServiceClient::connect(url).await.expect("connect");
            for _ in 0..100 {
                match client.sequence(request.clone()).await {
                    Err(status) if status.code() == tonic::Code::Unavailable => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    answer => return answer.map(|r| r.into_inner().checkpoint),
                }
            }
            panic!("the tree never led the log");
        })
    };
    let at_ten = sequence(&tree.url, 0, 10).expect("sequence");
    sequence(&tree.url, 10, 20).expect("sequence");
    let signed_head = || {
        let url = signer.url.clone();
        runtime.block_on(async move {
            SignerServiceClient::connect(url)
                .await
                .expect("connect")
                .get_signed_head(GetSignedHeadRequest {
                    origin: origin.into(),
                })
                .await
                .expect("signed head")
                .into_inner()
        })
    };
    let signed = signed_head();
    assert_eq!(signed.head.as_ref().map(|h| h.size), Some(20));
    tree.kill();

    roll_back_to(&log.url, &at_ten);
    let tree = serve("tree", &log.url, &["--signer", &signer.url]);
    let refused = sequence(&tree.url, 20, 25).expect_err("behind the signer");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    runtime.block_on(health_reaches(
        &tree.url,
        "evault.v1.SequencerService",
        ServingStatus::NotServing,
    ));
    runtime.block_on(health_reaches(
        &tree.url,
        "evault.v1.TreeService",
        ServingStatus::Serving,
    ));
    assert_eq!(signed_head(), signed, "nothing signed");
    drop((tree, signer));
    log.drop_blocking();
    signer_db.drop_blocking();
}
