//! Every RFC 6962 inclusion and consistency vector of transparency-dev/merkle,
//! with its expected verdict.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use evault_core::{ProofError, verify_consistency, verify_inclusion};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn b64(s: &str) -> Vec<u8> {
    BASE64.decode(s).expect("vector base64")
}

fn proof(p: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    p.iter().flatten().map(|s| b64(s)).collect()
}

fn json_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("vector dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(json_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Runs `verify` on every vector under `dir` and checks each verdict
/// against `wantErr`; both verdicts must occur.
fn check_all<V: serde::de::DeserializeOwned>(
    dir: &str,
    verify: impl Fn(&V) -> (Result<(), ProofError>, bool, String),
) {
    let files = json_files(&super::testdata().join(dir));
    assert!(files.len() > 50, "only {} vectors in {dir}", files.len());
    let (mut accepted, mut rejected) = (0, 0);
    for file in files {
        let v: V = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        let (got, want_err, desc) = verify(&v);
        assert_eq!(
            got.is_err(),
            want_err,
            "{} ({desc}): {got:?}",
            file.display()
        );
        if want_err {
            rejected += 1
        } else {
            accepted += 1
        }
    }
    assert!(accepted > 0 && rejected > 0);
}

#[test]
fn every_inclusion_vector_gets_its_expected_verdict() {
    check_all("rfc6962/inclusion", |v: &Inclusion| {
        let got = verify_inclusion(
            v.leaf_idx,
            v.tree_size,
            &b64(&v.leaf_hash),
            &proof(&v.proof),
            &b64(&v.root),
        );
        (got, v.want_err, v.desc.clone())
    });
}

#[test]
fn every_consistency_vector_gets_its_expected_verdict() {
    check_all("rfc6962/consistency", |v: &Consistency| {
        let got = verify_consistency(
            v.size1,
            v.size2,
            &proof(&v.proof),
            &b64(&v.root1),
            &b64(&v.root2),
        );
        (got, v.want_err, v.desc.clone())
    });
}

/// The reference tree behind the numbered vector folders, rebuilt with the
/// vault's own integrator.
#[test]
fn reference_tree_root_is_reproduced() {
    let leaves: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let mut tree = evault_core::Integrator::new();
    assert_eq!(
        tree.root().to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    tree.integrate(leaves.iter().map(|l| evault_core::leaf_hash(l)));
    assert_eq!(
        tree.root().to_hex(),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
}
