//! The log's keys as operators hold them: Ed25519 keys inside a real
//! PKCS#11 token (SoftHSM2, keys made with OpenSC's `pkcs11-tool`), key
//! files, and a rotation from one key to another without a flag day.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use evault_core::{Receipt, VerifierKey, open_checkpoint, parse_verifier_keys};
use evault_test_support::ServerProcess;
use evault_test_support::softhsm::SoftHsm;

fn evault(hsm: &SoftHsm) -> Command {
    let mut command = evault_test_support::command(env!("CARGO_BIN_EXE_evault"));
    hsm.configure(&mut command);
    command
}

fn ok(out: &Output) -> String {
    evault_test_support::succeeded(out)
}

/// `evault up` on `data` with `flags`, on port 0.
fn up(hsm: &SoftHsm, data: &Path, flags: &[String]) -> ServerProcess {
    let mut command = evault(hsm);
    command
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(flags);
    ServerProcess::start(command)
}

/// Appends one new file and returns its receipt.
fn append_one(hsm: &SoftHsm, server: &str, data: &Path, name: &str) -> Receipt {
    let dir = data
        .parent()
        .expect("parent")
        .join(format!("evidence-{name}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join(name);
    std::fs::write(&file, format!("evidence {name}\n")).expect("write");
    let receipts = dir.join("receipts");
    ok(&evault(hsm)
        .args(["append", "--server", server, "--token-file"])
        .arg(data.join("dev-token"))
        .arg("--receipts")
        .arg(&receipts)
        .arg(&file)
        .output()
        .expect("append"));
    let path = std::fs::read_dir(&receipts)
        .expect("receipts")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "tlog-proof"))
        .expect("a receipt");
    Receipt::parse(&std::fs::read(path).expect("read")).expect("receipt")
}

/// The keys `evault up` wrote to `DATA_DIR/verifier-key`, which must be
/// the ones the gateway lists at `/verifier-keys`.
fn verifier_keys(server: &str, data: &Path) -> Vec<VerifierKey> {
    let written = std::fs::read_to_string(data.join("verifier-key")).expect("read");
    let listed = ureq::get(format!("{server}/verifier-keys"))
        .call()
        .expect("GET /verifier-keys")
        .into_body()
        .read_to_string()
        .expect("body");
    assert_eq!(listed, written, "/verifier-keys and DATA_DIR/verifier-key");
    parse_verifier_keys(&written).expect("verifier keys")
}

fn key_file(path: &Path) -> Vec<String> {
    vec!["--key-file".into(), path.display().to_string()]
}

fn write_keys(path: &Path, keys: &[&VerifierKey]) -> PathBuf {
    let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
    std::fs::write(path, text).expect("write keys");
    path.to_path_buf()
}

#[test]
fn up_signs_with_a_key_that_stays_in_the_token() {
    let hsm = SoftHsm::new("vault");
    hsm.generate_ed25519("log-2026");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let server = up(&hsm, &data, &hsm.flags(&["log-2026"]));

    // The verifier key comes from the token's public key; no key file is
    // made beside the log.
    let keys = verifier_keys(&server.url, &data);
    assert_eq!(keys.len(), 1);
    assert!(!data.join("signing.key").exists());

    let receipt = append_one(&hsm, &server.url, &data, "one.txt");
    let verified = receipt.verify(&keys, None).expect("receipt verifies");
    assert_eq!(verified.index, receipt.index);
    // ... and with `evault verify`, as a verifier holding only the file.
    let receipt_file = tmp.path().join("one.tlog-proof");
    std::fs::write(&receipt_file, receipt.to_bytes()).expect("write");
    ok(&evault(&hsm)
        .args(["verify", "--vkey-file"])
        .arg(data.join("verifier-key"))
        .arg(&receipt_file)
        .output()
        .expect("verify"));

    // The token holds the private key as one it never hands out, and
    // reading it yields nothing.
    let access = hsm.private_key_access("log-2026");
    assert!(
        access.contains("always sensitive") && access.contains("never extractable"),
        "{access}"
    );
    assert!(hsm.read_private_key("log-2026").is_empty());
}

#[test]
fn rotation_from_a_key_file_to_a_token_key_needs_no_flag_day() {
    let hsm = SoftHsm::new("vault");
    hsm.generate_ed25519("log-b");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");

    // Key A: the key `evault up` makes on first start.
    let server = up(&hsm, &data, &[]);
    let a = verifier_keys(&server.url, &data);
    assert_eq!(a.len(), 1);
    let before = append_one(&hsm, &server.url, &data, "before.txt");
    // Stopped as an operator restarts it, so nothing is left unwritten.
    server.stop();

    // Step 1: A and B both sign; verifiers learn B meanwhile.
    let mut both = key_file(&data.join("signing.key"));
    both.extend(hsm.flags(&["log-b"]));
    let server = up(&hsm, &data, &both);
    let ab = verifier_keys(&server.url, &data);
    assert_eq!(ab.len(), 2, "verifier-key lists both keys");
    assert_eq!(ab[0], a[0]);
    let b = vec![ab[1].clone()];
    let during = append_one(&hsm, &server.url, &data, "during.txt");
    during.verify(&a, None).expect("a verifier knowing only A");
    during.verify(&b, None).expect("a verifier knowing only B");
    // Stopped as an operator restarts it, so nothing is left unwritten.
    server.stop();

    // Step 2: B alone.
    let server = up(&hsm, &data, &hsm.flags(&["log-b"]));
    assert_eq!(verifier_keys(&server.url, &data), b);
    let after = append_one(&hsm, &server.url, &data, "after.txt");

    // Receipts signed before still verify with A; new ones with B, and
    // not with A.
    before.verify(&a, None).expect("old receipt with A");
    after.verify(&b, None).expect("new receipt with B");
    assert!(after.verify(&a, None).is_err(), "A no longer signs");

    // Consistency from the A-signed checkpoint to the B-signed one, as a
    // verifier who trusts A and has learnt B checks it.
    let old = tmp.path().join("checkpoint.before");
    std::fs::write(&old, &before.checkpoint).expect("write");
    assert!(open_checkpoint(&before.checkpoint, &b, None).is_err());
    let trusted = write_keys(&tmp.path().join("trusted"), &[&a[0], &b[0]]);
    let out = ok(&evault(&hsm)
        .args(["consistency", "--server", &server.url, "--vkey-file"])
        .arg(&trusted)
        .arg("--from")
        .arg(&old)
        .output()
        .expect("consistency"));
    assert!(out.contains("consistent"), "{out}");

    // The audit trail records both steps: B added, then A removed, each
    // before the first checkpoint that shows it.
    let id = |k: &VerifierKey| format!("{:08x}", k.key_id());
    let wanted = [("key.added", id(&b[0])), ("key.removed", id(&a[0]))];
    let mut changes = Vec::new();
    // The trail is written a moment after the log: poll until it holds
    // the second step.
    for _ in 0..100 {
        let out = evault(&hsm)
            .args(["audit", "--json", "--server", &server.url, "--vkey-file"])
            .arg(&trusted)
            .output()
            .expect("audit");
        let text = ok(&out);
        changes = text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|record| matches!(record["event"].as_str(), Some("key.added" | "key.removed")))
            .map(|record| {
                (
                    record["event"].as_str().unwrap_or_default().to_string(),
                    record["key_id"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect::<Vec<_>>();
        if changes.len() >= wanted.len() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let wanted: Vec<(String, String)> = wanted
        .into_iter()
        .map(|(event, key)| (event.to_string(), key))
        .collect();
    assert_eq!(changes, wanted);
}

#[test]
fn a_key_the_token_would_hand_out_is_refused() {
    let hsm = SoftHsm::new("vault");
    hsm.generate_extractable_ed25519("leaky");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = evault(&hsm)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(hsm.flags(&["leaky"]))
        .output()
        .expect("up");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read out"), "{stderr}");
}

#[test]
fn token_mistakes_are_named_before_anything_is_served() {
    let hsm = SoftHsm::new("vault");
    hsm.generate_ed25519("log");
    let tmp = tempfile::tempdir().expect("tempdir");
    let wrong_pin = tmp.path().join("wrong-pin");
    std::fs::write(&wrong_pin, "9999\n").expect("write");
    let flags = hsm.flags(&["log"]);
    let with = |replace: &str, value: &str| -> Vec<String> {
        let mut flags = flags.clone();
        let at = flags.iter().position(|f| f == replace).expect("flag");
        flags[at + 1] = value.to_string();
        flags
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            with("--pkcs11-key", "absent"),
            "no Ed25519 private key has this label",
        ),
        (
            with("--pkcs11-token", "other"),
            "no PKCS#11 token labelled \"other\"",
        ),
        (
            with("--pkcs11-pin-file", &wrong_pin.display().to_string()),
            "logging in",
        ),
        (
            with("--pkcs11-module", "/nonexistent/libpkcs11.so"),
            "PKCS#11 module /nonexistent/libpkcs11.so",
        ),
        (
            flags[..flags.len() - 2].to_vec(),
            "--pkcs11-key is required",
        ),
    ];
    for (flags, expected) in cases {
        let out = evault(&hsm)
            .args([
                "serve",
                "signer",
                "--listen",
                "127.0.0.1:0",
                "--origin",
                "vault.example/log",
                "--data-dir",
            ])
            .arg(tmp.path().join("data"))
            .args(&flags)
            .output()
            .expect("serve signer");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
}
