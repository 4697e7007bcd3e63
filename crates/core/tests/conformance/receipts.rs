//! Receipts for the Tessera log, with inclusion proofs from rs_merkle and
//! the checkpoint Tessera signed: made with other implementations, they
//! verify, and any change to one is rejected.

use evault_core::{Hash, Receipt, ReceiptError, VerifierKey, leaf_hash};

use super::properties::Rfc6962Tree;

const VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const WORDS: &str =
    "one two three four five six seven eit nain ten ileven twelf threeten fourten fivten";

fn receipts() -> Vec<Receipt> {
    let leaves: Vec<[u8; 32]> = WORDS
        .split(' ')
        .map(|w| leaf_hash(w.as_bytes()).0)
        .collect();
    let oracle = Rfc6962Tree::from_leaves(&leaves);
    let checkpoint = super::read("tessera-log/checkpoint.15");
    WORDS
        .split(' ')
        .enumerate()
        .map(|(i, word)| Receipt {
            extra: Some(word.as_bytes().to_vec()),
            index: i as u64,
            proof: oracle
                .proof(&[i])
                .proof_hashes()
                .iter()
                .map(|h| Hash(*h))
                .collect(),
            checkpoint: checkpoint.clone(),
        })
        .collect()
}

#[test]
fn receipts_from_other_implementations_verify() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    for (i, receipt) in receipts().iter().enumerate() {
        let parsed = Receipt::parse(&receipt.to_bytes()).expect("parse");
        let verified = parsed
            .verify(&keys, Some("example.com/log/testdata"))
            .expect("verify");
        assert_eq!(verified.index, i as u64);
        assert_eq!(verified.checkpoint.size, 15);
        assert_eq!(
            verified.entry,
            WORDS.split(' ').nth(i).expect("word").as_bytes()
        );
    }
}

#[test]
fn every_single_bit_change_to_a_receipt_is_rejected() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    for receipt in receipts().iter().step_by(4) {
        let bytes = receipt.to_bytes();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                let verdict = Receipt::parse(&bad).and_then(|r| r.verify(&keys, None));
                assert!(
                    verdict.is_err(),
                    "index {} byte {i} bit {bit} accepted",
                    receipt.index
                );
            }
        }
    }
}

#[test]
fn receipt_without_entry_or_for_another_origin_is_rejected() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    let mut receipt = receipts().remove(3);
    assert!(matches!(
        receipt.verify(&keys, Some("example.com/other")),
        Err(ReceiptError::Checkpoint(_))
    ));
    receipt.extra = None;
    assert_eq!(receipt.verify(&keys, None), Err(ReceiptError::NoEntry));
}
