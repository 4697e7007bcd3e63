//! C2SP tlog-proof receipts (`.tlog-proof` files): an entry's index, its
//! inclusion proof and the checkpoint it is proven against, verifiable
//! offline. The vault carries the logged entry itself in the `extra` line,
//! so a receipt alone shows what was logged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::checkpoint::{Checkpoint, CheckpointError, open_checkpoint};
use crate::hash::{Hash, leaf_hash};
use crate::note::VerifierKey;
use crate::proof::{ProofError, verify_inclusion};
use crate::tile::parse_decimal;

/// First line of every receipt.
pub const RECEIPT_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// An inclusion proof in a tree of 2^64 leaves has at most 64 hashes.
const MAX_PROOF_HASHES: usize = 64;

/// A parsed, not yet verified, receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Opaque extra data; for vault receipts, the entry bytes.
    pub extra: Option<Vec<u8>>,
    /// Index of the entry in the log.
    pub index: u64,
    /// Inclusion proof, leaf to root.
    pub proof: Vec<Hash>,
    /// The checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Why a receipt was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The bytes are not a tlog-proof.
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// The receipt has no `extra` line, so the leaf cannot be recomputed.
    #[error("receipt carries no entry (no extra line), so its leaf hash cannot be computed")]
    NoEntry,
    /// The checkpoint inside is malformed, untrusted or for another log.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof fails against the checkpoint.
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] ProofError),
}

/// What a verified receipt establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The signed tree head the entry is proven in.
    pub checkpoint: Checkpoint,
    /// The entry's index.
    pub index: u64,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The entry bytes.
    pub entry: Vec<u8>,
}

fn next_line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let at = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..at];
    *rest = &rest[at + 1..];
    Some(line)
}

impl Receipt {
    /// Parses a tlog-proof file.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let mut rest = bytes;
        let malformed = ReceiptError::Malformed;
        if next_line(&mut rest) != Some(RECEIPT_HEADER.as_bytes()) {
            return Err(malformed("first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = next_line(&mut rest).ok_or(malformed("missing index line"))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix(b"extra ") {
            extra = Some(
                BASE64
                    .decode(b64)
                    .map_err(|_| malformed("extra data is not base64"))?,
            );
            line = next_line(&mut rest).ok_or(malformed("missing index line"))?;
        }
        let index = line
            .strip_prefix(b"index ")
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(parse_decimal)
            .ok_or(malformed("index line is not `index <decimal>`"))?;
        let mut proof = Vec::new();
        loop {
            let line =
                next_line(&mut rest).ok_or(malformed("no blank line before the checkpoint"))?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(malformed("more than 64 proof hashes"));
            }
            let hash = std::str::from_utf8(line)
                .ok()
                .and_then(Hash::from_base64)
                .ok_or(malformed("proof line is not a base64 SHA-256 hash"))?;
            proof.push(hash);
        }
        if rest.is_empty() {
            return Err(malformed("no checkpoint"));
        }
        Ok(Receipt {
            extra,
            index,
            proof,
            checkpoint: rest.to_vec(),
        })
    }

    /// The tlog-proof bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{RECEIPT_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.checkpoint);
        bytes
    }

    /// Checks the checkpoint's log signature against `keys` (and its
    /// origin, if given) and the entry's inclusion in that checkpoint.
    pub fn verify(
        &self,
        keys: &[VerifierKey],
        origin: Option<&str>,
    ) -> Result<VerifiedReceipt, ReceiptError> {
        let signed = open_checkpoint(&self.checkpoint, keys, origin)?;
        let entry = self.extra.clone().ok_or(ReceiptError::NoEntry)?;
        let leaf = leaf_hash(&entry);
        let cp = signed.checkpoint;
        verify_inclusion(
            self.index,
            cp.size,
            leaf.as_bytes(),
            &self.proof,
            cp.root.as_bytes(),
        )?;
        Ok(VerifiedReceipt {
            checkpoint: cp,
            index: self.index,
            leaf_hash: leaf,
            entry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_extra() {
        for extra in [None, Some(b"entry".to_vec()), Some(vec![])] {
            let r = Receipt {
                extra,
                index: 73894,
                proof: vec![leaf_hash(b"a"), leaf_hash(b"b")],
                checkpoint: b"o\n1\nAAAA\n\n\xe2\x80\x94 o x\n".to_vec(),
            };
            assert_eq!(Receipt::parse(&r.to_bytes()), Ok(r));
        }
    }

    #[test]
    fn rejects_malformed_receipts() {
        let h = leaf_hash(b"a").to_base64();
        for text in [
            "c2sp.org/tlog-proof@v2\nindex 1\n\ncp\n".to_string(),
            "c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n".to_string(),
            "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncp\n".to_string(),
            "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n".to_string(),
            format!("c2sp.org/tlog-proof@v1\nindex 1\n{h}\n"),
            "c2sp.org/tlog-proof@v1\nindex 1\n\n".to_string(),
            "c2sp.org/tlog-proof@v1\n".to_string(),
        ] {
            assert!(
                Receipt::parse(text.as_bytes()).is_err(),
                "{text:?} accepted"
            );
        }
    }
}
