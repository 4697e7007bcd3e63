//! The `evault` command, run as a real process: `verify`, `fsck` (from a
//! directory and over HTTP) and `keygen`, their output and exit statuses.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use evault_core::tile::bundles_for_size;
use evault_core::{
    Checkpoint, EvidenceEntry, Integrator, Receipt, SigningKey, TileId, TileReader, TreeReader,
    encode_bundle, leaf_hash,
};

const TESSERA_VKEY: &str =
    "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const TESSERA_SKEY: &str =
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";
const WORDS: &str =
    "one two three four five six seven eit nain ten ileven twelf threeten fourten fivten";

fn tessera() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/tessera-log")
}

fn evault(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env_remove("EVAULT_VKEY")
        .env_remove("EVAULT_VKEY_FILE")
        .env_remove("EVAULT_ORIGIN")
        .output()
        .expect("run evault")
}

fn status(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the command succeeded and returns its standard output.
fn expect_valid(out: &Output) -> String {
    assert_eq!(status(out), 0, "{}", stderr(out));
    stdout(out)
}

/// Asserts the command ended with `code` and said `reason` on standard error.
fn expect_failure(out: &Output, code: i32, reason: &str) {
    assert_eq!(status(out), code, "{}{}", stdout(out), stderr(out));
    assert!(
        stderr(out).contains(reason),
        "{:?} not in {}",
        reason,
        stderr(out)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Tiles read from a tlog-tiles directory.
struct DirTiles(PathBuf);

impl TileReader for DirTiles {
    type Error = std::io::Error;
    fn read_tile(&mut self, tile: TileId) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.0.join(tile.path()))
    }
}

/// Writes a log of `entries` in the tlog-tiles layout, signed by `key`.
fn write_log(dir: &Path, entries: &[Vec<u8>], key: &SigningKey) -> Vec<u8> {
    let mut tree = Integrator::new();
    let put = |path: String, bytes: &[u8]| {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, bytes).expect("write");
    };
    for (tile, bytes) in tree.integrate(entries.iter().map(|e| leaf_hash(e))) {
        put(tile.path(), &bytes);
    }
    for bundle in bundles_for_size(entries.len() as u64) {
        let first = bundle.first_entry() as usize;
        let bytes =
            encode_bundle(&entries[first..first + usize::from(bundle.width)]).expect("bundle");
        put(bundle.path(), &bytes);
    }
    let checkpoint = Checkpoint {
        origin: key.name().to_string(),
        size: entries.len() as u64,
        root: tree.root(),
        extensions: vec![],
    }
    .sign(&[key])
    .expect("sign");
    put("checkpoint".into(), &checkpoint);
    checkpoint
}

/// A receipt for entry `index` of the log in `dir`.
fn receipt_from_dir(dir: &Path, index: u64, entry: &[u8]) -> Receipt {
    let checkpoint = std::fs::read(dir.join("checkpoint")).expect("checkpoint");
    let note = evault_core::Note::parse(&checkpoint).expect("note");
    let size = Checkpoint::parse(note.text()).expect("cp").size;
    let mut tiles = DirTiles(dir.to_path_buf());
    let proof = TreeReader::new(size, &mut tiles)
        .inclusion_proof(index, size)
        .expect("proof");
    Receipt {
        extra: Some(entry.to_vec()),
        index,
        proof,
        checkpoint,
    }
}

/// Serves `dir` over HTTP/1.1 on a port of its own, one request per
/// connection, until the test ends.
fn serve(dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            let response = match std::fs::read(dir.join(path)) {
                Ok(body) if !path.contains("..") => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    format!("http://{addr}")
}

#[test]
fn fsck_accepts_the_tessera_log() {
    let out = evault(&[
        "fsck",
        "--vkey",
        TESSERA_VKEY,
        tessera().to_str().expect("path"),
    ]);
    expect_valid(&out);
    assert!(stdout(&out).contains("tree size  15"), "{}", stdout(&out));
}

#[test]
fn fsck_rejects_any_flipped_byte_the_tree_needs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("log");
    copy_dir(&tessera(), &log);
    let vkey_file = tmp.path().join("vkey");
    std::fs::write(&vkey_file, format!("{TESSERA_VKEY}\n")).expect("vkey");
    for file in ["checkpoint", "tile/0/000.p/15", "tile/entries/000.p/15"] {
        let path = log.join(file);
        let original = std::fs::read(&path).expect("read");
        for i in 0..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0x01;
            std::fs::write(&path, &bytes).expect("write");
            let out = evault(&[
                "fsck",
                "--vkey-file",
                vkey_file.to_str().expect("p"),
                log.to_str().expect("p"),
            ]);
            assert_eq!(
                status(&out),
                1,
                "{file} byte {i} accepted: {}",
                stdout(&out)
            );
        }
        std::fs::write(&path, &original).expect("restore");
    }
    let out = evault(&[
        "fsck",
        "--vkey-file",
        vkey_file.to_str().expect("p"),
        log.to_str().expect("p"),
    ]);
    expect_valid(&out);
}

#[test]
fn fsck_reads_a_log_over_http() {
    let base = serve(tessera());
    let out = evault(&["fsck", "--vkey", TESSERA_VKEY, &base]);
    expect_valid(&out);

    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&tessera(), tmp.path());
    std::fs::remove_file(tmp.path().join("tile/0/000.p/15")).expect("rm");
    let out = evault(&[
        "fsck",
        "--vkey",
        TESSERA_VKEY,
        &serve(tmp.path().to_path_buf()),
    ]);
    expect_failure(&out, 1, "tile/0/000.p/15: HTTP status 404");
}

#[test]
fn fsck_of_an_unreachable_server_is_not_a_verdict() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let out = evault(&[
        "fsck",
        "--vkey",
        TESSERA_VKEY,
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(status(&out), 2, "{}", stderr(&out));
}

#[test]
fn fsck_checks_the_log_extends_a_previous_checkpoint() {
    let dir = tessera();
    let log = dir.to_str().expect("path");
    let previous = dir.join("checkpoint.8");
    let out = evault(&[
        "fsck",
        "--vkey",
        TESSERA_VKEY,
        "--previous",
        previous.to_str().expect("p"),
        log,
    ]);
    expect_valid(&out);
    assert!(stdout(&out).contains("extends    checkpoint of size 8"));

    // Checkpoints the log's own key signed, for trees this log is not.
    let key = SigningKey::from_note_key(TESSERA_SKEY).expect("key");
    let tmp = tempfile::tempdir().expect("tempdir");
    let forged = |size: u64, root_of: &str| {
        let path = tmp.path().join(format!("forged.{size}"));
        let cp = Checkpoint {
            origin: key.name().to_string(),
            size,
            root: leaf_hash(root_of.as_bytes()),
            extensions: vec![],
        };
        std::fs::write(&path, cp.sign(&[&key]).expect("sign")).expect("write");
        path
    };
    let fork = forged(8, "another history");
    let out = evault(&[
        "fsck",
        "--vkey",
        TESSERA_VKEY,
        "--previous",
        fork.to_str().expect("p"),
        log,
    ]);
    expect_failure(&out, 1, "root at size 8");
    let larger = forged(16, "the future");
    let out = evault(&[
        "fsck",
        "--vkey",
        TESSERA_VKEY,
        "--previous",
        larger.to_str().expect("p"),
        log,
    ]);
    expect_failure(&out, 1, "fewer than the 16");
}

#[test]
fn fsck_recomputes_every_tile_level_of_a_larger_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (key, _) = SigningKey::generate("vault.example/fsck").expect("key");
    let entries: Vec<Vec<u8>> = (0..66_000u32)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    write_log(tmp.path(), &entries, &key);
    let vkey = key.verifier_key().to_string();
    let log = tmp.path().to_str().expect("path");
    let out = evault(&["fsck", "--vkey", &vkey, log]);
    expect_valid(&out);
    assert!(stdout(&out).contains("tree size  66000"));

    for victim in ["tile/1/000", "tile/2/000.p/1", "tile/entries/100"] {
        let path = tmp.path().join(victim);
        let original = std::fs::read(&path).expect("read");
        let mut bytes = original.clone();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x80;
        std::fs::write(&path, &bytes).expect("write");
        let out = evault(&["fsck", "--vkey", &vkey, log]);
        expect_failure(&out, 1, victim);
        std::fs::write(&path, &original).expect("restore");
    }
}

#[test]
fn verify_accepts_receipts_for_the_tessera_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (i, word) in WORDS.split(' ').enumerate() {
        let receipt = receipt_from_dir(&tessera(), i as u64, word.as_bytes());
        let path = tmp.path().join(format!("{i}.tlog-proof"));
        std::fs::write(&path, receipt.to_bytes()).expect("write");
        let out = evault(&[
            "verify",
            "--vkey",
            TESSERA_VKEY,
            "--origin",
            "example.com/log/testdata",
            path.to_str().expect("p"),
        ]);
        expect_valid(&out);
        assert!(
            stdout(&out).contains(&format!("index      {i}\n")),
            "{}",
            stdout(&out)
        );
        assert!(stdout(&out).contains("not an evidence entry"));
    }
}

#[test]
fn verify_rejects_tampered_receipts_and_reports_why() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("r.tlog-proof");
    let path_str = path.to_str().expect("p");
    let mut receipt = receipt_from_dir(&tessera(), 5, b"six");
    receipt.proof[1].0[0] ^= 1;
    std::fs::write(&path, receipt.to_bytes()).expect("write");
    let out = evault(&["verify", "--vkey", TESSERA_VKEY, path_str]);
    expect_failure(&out, 1, "inclusion proof");

    let receipt = receipt_from_dir(&tessera(), 5, b"SIX");
    std::fs::write(&path, receipt.to_bytes()).expect("write");
    assert_eq!(
        status(&evault(&["verify", "--vkey", TESSERA_VKEY, path_str])),
        1
    );

    let receipt = receipt_from_dir(&tessera(), 5, b"six");
    std::fs::write(&path, receipt.to_bytes()).expect("write");
    let out = evault(&[
        "verify",
        "--vkey",
        TESSERA_VKEY,
        "--origin",
        "example.com/other",
        path_str,
    ]);
    assert_eq!(status(&out), 1);
    let (stranger, _) = SigningKey::generate("example.com/log/testdata").expect("key");
    let out = evault(&[
        "verify",
        "--vkey",
        &stranger.verifier_key().to_string(),
        path_str,
    ]);
    expect_failure(&out, 1, "no signature by a trusted key");

    std::fs::write(&path, b"not a receipt\n").expect("write");
    assert_eq!(
        status(&evault(&["verify", "--vkey", TESSERA_VKEY, path_str])),
        1
    );
}

#[test]
fn verify_usage_errors_exit_2() {
    let missing = evault(&[
        "verify",
        "--vkey",
        TESSERA_VKEY,
        "/nonexistent/receipt.tlog-proof",
    ]);
    assert_eq!(status(&missing), 2);
    let bad_key = evault(&["verify", "--vkey", "nope+00000000+AAAA", "x"]);
    expect_failure(&bad_key, 2, "--vkey");
    assert_eq!(status(&evault(&["verify"])), 2);
    assert_eq!(status(&evault(&["verify", "--bogus"])), 2);
    assert_eq!(status(&evault(&["verify", "--help"])), 0);
}

#[test]
fn verify_checks_the_evidence_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let evidence = tmp.path().join("report.pdf");
    std::fs::write(&evidence, b"%PDF-1.7 the incident report").expect("write");
    let other = tmp.path().join("other.pdf");
    std::fs::write(&other, b"%PDF-1.7 something else").expect("write");
    let content = std::fs::read(&evidence).expect("read");
    let entry = EvidenceEntry {
        digest: evault_core::hash::sha256(&content),
        size: content.len() as u64,
        received_ms: 1_795_960_341_123,
        media_type: "application/pdf".into(),
        name: Some("report.pdf".into()),
        principal: "responder@example.com".into(),
        labels: [("case".to_string(), "IR-7".to_string())].into(),
    }
    .encode()
    .expect("entry");
    let (key, _) = SigningKey::generate("vault.example/evidence").expect("key");
    let log = tmp.path().join("log");
    let entries = vec![b"first".to_vec(), entry.clone(), b"third".to_vec()];
    write_log(&log, &entries, &key);
    let receipt_path = tmp.path().join("report.pdf.tlog-proof");
    std::fs::write(&receipt_path, receipt_from_dir(&log, 1, &entry).to_bytes()).expect("write");

    let vkey = key.verifier_key().to_string();
    let receipt = receipt_path.to_str().expect("p");
    let out = evault(&[
        "verify",
        "--vkey",
        &vkey,
        "--evidence",
        evidence.to_str().expect("p"),
        receipt,
    ]);
    expect_valid(&out);
    let text = stdout(&out);
    assert!(text.contains("principal  responder@example.com"), "{text}");
    assert!(
        text.contains("received   2026-11-29T13:52:21.123Z"),
        "{text}"
    );
    assert!(text.contains("label      case=IR-7"), "{text}");

    let out = evault(&[
        "verify",
        "--vkey",
        &vkey,
        "--evidence",
        other.to_str().expect("p"),
        receipt,
    ]);
    expect_failure(&out, 1, "does not match");

    let tessera_receipt = tmp.path().join("t.tlog-proof");
    std::fs::write(
        &tessera_receipt,
        receipt_from_dir(&tessera(), 0, b"one").to_bytes(),
    )
    .expect("write");
    let out = evault(&[
        "verify",
        "--vkey",
        TESSERA_VKEY,
        "--evidence",
        evidence.to_str().expect("p"),
        tessera_receipt.to_str().expect("p"),
    ]);
    expect_failure(&out, 1, "not an evidence entry");
}

/// Ingest refuses such text now, but a log may hold it (written before,
/// or by another implementation): verify shows it escaped, so a name
/// cannot pass for another or rewrite the terminal.
#[test]
fn verify_shows_text_that_could_rewrite_the_screen_escaped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let entry = EvidenceEntry {
        digest: evault_core::hash::sha256(b"x"),
        size: 1,
        received_ms: 0,
        media_type: "text/plain".into(),
        name: Some("invoice\u{202e}fdp.exe".into()),
        principal: "mallory\u{200b}".into(),
        labels: [("case\u{2028}".to_string(), "\u{2066}42\\".to_string())].into(),
    }
    .encode()
    .expect("the entry codec takes what ingest refuses");
    let (key, _) = SigningKey::generate("vault.example/evidence").expect("key");
    let log = tmp.path().join("log");
    write_log(&log, std::slice::from_ref(&entry), &key);
    let receipt = tmp.path().join("invoice.tlog-proof");
    std::fs::write(&receipt, receipt_from_dir(&log, 0, &entry).to_bytes()).expect("write");

    let vkey = key.verifier_key().to_string();
    let out = evault(&["verify", "--vkey", &vkey, receipt.to_str().expect("p")]);
    let text = expect_valid(&out);
    for shown in [
        "  name       invoice\\u{202e}fdp.exe\n",
        "  label      case\\u{2028}=\\u{2066}42\\\\\n",
        "  principal  mallory\\u{200b}\n",
    ] {
        assert!(text.contains(shown), "{shown:?} not in {text:?}");
    }
    let one_line = text.replace('\n', " ");
    assert_eq!(
        evault_core::text::find_forbidden(&one_line),
        None,
        "{text:?}"
    );
}

#[test]
fn keygen_writes_a_key_whose_printed_verifier_key_checks_its_signatures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key_file = tmp.path().join("log.key");
    let key_path = key_file.to_str().expect("p");
    let out = evault(&[
        "keygen",
        "--origin",
        "vault.example/evidence",
        "--key-file",
        key_path,
    ]);
    expect_valid(&out);
    let vkey = stdout(&out).trim().to_string();
    assert!(vkey.starts_with("vault.example/evidence+"), "{vkey}");

    let key = evault_signer::KeyFile::load(&key_file, "vault.example/evidence").expect("load");
    let log = tmp.path().join("log");
    write_log(&log, &[b"x".to_vec()], &key);
    let out = evault(&["fsck", "--vkey", &vkey, log.to_str().expect("p")]);
    expect_valid(&out);

    let before = std::fs::read(&key_file).expect("read");
    let again = evault(&[
        "keygen",
        "--origin",
        "vault.example/evidence",
        "--key-file",
        key_path,
    ]);
    expect_failure(&again, 2, "refusing to overwrite");
    assert_eq!(std::fs::read(&key_file).expect("read"), before);
}

#[test]
fn proof_builds_receipts_that_verify_from_a_directory_or_http() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = serve(tessera());
    for (i, log) in [tessera().to_str().expect("p").to_string(), base]
        .iter()
        .enumerate()
    {
        let receipt = tmp.path().join(format!("{i}.tlog-proof"));
        let out = evault(&[
            "proof",
            "--log",
            log,
            "--index",
            "2",
            "-o",
            receipt.to_str().expect("p"),
        ]);
        expect_valid(&out);
        let out = evault(&[
            "verify",
            "--vkey",
            TESSERA_VKEY,
            receipt.to_str().expect("p"),
        ]);
        expect_valid(&out);
        assert!(stdout(&out).contains("\"three\""), "{}", stdout(&out));
    }
    let out = evault(&[
        "proof",
        "--log",
        tessera().to_str().expect("p"),
        "--index",
        "15",
    ]);
    expect_failure(&out, 2, "the log has 15 entries");
}

#[test]
fn proof_refuses_a_log_whose_tiles_disagree_with_its_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&tessera(), tmp.path());
    let tile = tmp.path().join("tile/0/000.p/15");
    let mut bytes = std::fs::read(&tile).expect("read");
    bytes[100] ^= 1;
    std::fs::write(&tile, bytes).expect("write");
    let out = evault(&[
        "proof",
        "--log",
        tmp.path().to_str().expect("p"),
        "--index",
        "0",
    ]);
    expect_failure(&out, 1, "disagree");
}

#[test]
fn a_cors_origin_that_is_not_an_origin_is_refused_before_serving() {
    let data = tempfile::tempdir().expect("tempdir");
    let data = data.path().display().to_string();
    for bad in ["https://app.example.com/path", "*", "app.example.com"] {
        let out = evault(&[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--cors-origin",
            bad,
        ]);
        expect_failure(&out, 2, "--cors-origin");
    }
}
