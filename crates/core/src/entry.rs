//! The evidence entry: the bytes the vault logs for one submission.
//!
//! Version 1 is a canonical binary encoding (specified with test vectors in
//! `docs/entry-format.md`): every record has exactly one encoding, and a
//! decoder accepts nothing else, so equal records always have equal leaf
//! hashes. The evidence bytes themselves are not in the entry, only their
//! SHA-256 digest and size, so erasing evidence never breaks a proof.
//!
//! ```text
//! u8      version (1)
//! [32]u8  SHA-256 of the evidence
//! u64     evidence size in bytes
//! u64     received at, milliseconds since the Unix epoch (UTC)
//! str     media type
//! str     name ("" when none)
//! str     submitting principal
//! u16     label count, then that many (str key, str value), keys strictly ascending
//! ```
//! Integers are big-endian; `str` is a u16 byte length and UTF-8 bytes.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::bundle::MAX_ENTRY_SIZE;

/// The encoding version this module writes and reads.
pub const ENTRY_VERSION: u8 = 1;

/// One evidence record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceEntry {
    /// SHA-256 digest of the evidence bytes.
    pub digest: [u8; 32],
    /// Size of the evidence in bytes.
    pub size: u64,
    /// When the vault received the evidence, ms since the Unix epoch (UTC).
    pub received_ms: u64,
    /// Media type of the evidence, printable ASCII, e.g. `application/pdf`.
    pub media_type: String,
    /// Optional human name, e.g. a file name.
    pub name: Option<String>,
    /// The authenticated principal that submitted it.
    pub principal: String,
    /// Free-form labels; keys are unique and non-empty.
    pub labels: BTreeMap<String, String>,
}

/// Why bytes are not a canonical evidence entry, or a record cannot be
/// encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The first byte names another encoding version.
    #[error("unsupported entry version {0}")]
    Version(u8),
    /// The bytes end before the entry does.
    #[error("entry is truncated in {0}")]
    Truncated(&'static str),
    /// Bytes follow the last label.
    #[error("entry has {0} trailing bytes")]
    TrailingBytes(usize),
    /// A text field breaks its rules.
    #[error("invalid {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Label keys are not strictly ascending (unsorted or repeated).
    #[error("label keys are not unique and in ascending byte order")]
    LabelOrder,
    /// The encoding would not fit a bundle.
    #[error("entry is {0} bytes; at most {MAX_ENTRY_SIZE} are allowed")]
    TooLarge(usize),
}

fn field(field: &'static str, reason: &'static str) -> EntryError {
    EntryError::Field { field, reason }
}

/// Text fields are shown to people (terminals, the browser UI), so control
/// characters, which could rewrite what they see, are not allowed.
fn check_text(name: &'static str, value: &str, allow_empty: bool) -> Result<(), EntryError> {
    if !allow_empty && value.is_empty() {
        return Err(field(name, "must not be empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(field(name, "must not contain control characters"));
    }
    Ok(())
}

fn check_media_type(value: &str) -> Result<(), EntryError> {
    if value.is_empty() {
        return Err(field("media type", "must not be empty"));
    }
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(field("media type", "must be printable ASCII"));
    }
    Ok(())
}

/// Every rule of a record's fields, in one order, whether the record is
/// built ([`EvidenceEntry::validate`]) or read from bytes.
fn check_fields<'a>(
    media_type: &str,
    name: Option<&str>,
    principal: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), EntryError> {
    check_media_type(media_type)?;
    if let Some(name) = name {
        check_text("name", name, false)?;
    }
    check_text("principal", principal, false)?;
    for (k, v) in labels {
        check_text("label key", k, false)?;
        check_text("label value", v, true)?;
    }
    Ok(())
}

impl EvidenceEntry {
    /// Checks every field rule without encoding.
    pub fn validate(&self) -> Result<(), EntryError> {
        check_fields(
            &self.media_type,
            self.name.as_deref(),
            &self.principal,
            self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        let mut out = Vec::with_capacity(128);
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.received_ms.to_be_bytes());
        put_str(&mut out, "media type", &self.media_type)?;
        put_str(&mut out, "name", self.name.as_deref().unwrap_or(""))?;
        put_str(&mut out, "principal", &self.principal)?;
        let count =
            u16::try_from(self.labels.len()).map_err(|_| field("labels", "more than 65535"))?;
        out.extend_from_slice(&count.to_be_bytes());
        for (k, v) in &self.labels {
            put_str(&mut out, "label key", k)?;
            put_str(&mut out, "label value", v)?;
        }
        if out.len() > MAX_ENTRY_SIZE {
            return Err(EntryError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// The key that makes a retried append the same entry: the hash of
    /// the canonical encoding without the time received, so the same
    /// principal sending the same statement again gets the first entry's
    /// receipt. Tree computes it from the entry itself rather than trusting
    /// whoever sent it.
    pub fn dedup_key(&self) -> Result<[u8; 32], EntryError> {
        Self::dedup_key_of(&self.encode()?)
    }

    /// [`EvidenceEntry::dedup_key`] of the entry `bytes` encode, read from
    /// the bytes: the time received is hashed as zero where it stands.
    /// `bytes` must be canonical (from [`EvidenceEntry::encode`], or checked
    /// by [`EvidenceEntry::decode`] or [`EvidenceEntry::checked_digest`]);
    /// only their length is checked here.
    pub fn dedup_key_of(bytes: &[u8]) -> Result<[u8; 32], EntryError> {
        let (head, rest) = bytes
            .split_at_checked(RECEIVED_AT)
            .ok_or(EntryError::Truncated("received time"))?;
        let tail = rest
            .get(8..)
            .ok_or(EntryError::Truncated("received time"))?;
        let mut h = Sha256::new();
        h.update(b"evault dedup v1\n");
        h.update(head);
        h.update([0u8; 8]);
        h.update(tail);
        Ok(h.finalize().into())
    }

    /// Decodes a canonical entry; anything else is rejected.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let f = Fields::parse(bytes)?;
        Ok(EvidenceEntry {
            digest: f.digest,
            size: f.size,
            received_ms: f.received_ms,
            media_type: f.media_type.to_owned(),
            name: (!f.name.is_empty()).then(|| f.name.to_owned()),
            principal: f.principal.to_owned(),
            labels: f
                .labels
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
    }

    /// The evidence digest of a canonical entry, checked exactly as
    /// [`EvidenceEntry::decode`] checks it, without building the record:
    /// what a sequencer needs of each entry it logs.
    pub fn checked_digest(bytes: &[u8]) -> Result<[u8; 32], EntryError> {
        Fields::parse(bytes).map(|f| f.digest)
    }
}

/// Where the time received starts in an encoding: after the version, the
/// digest and the size.
const RECEIVED_AT: usize = 1 + 32 + 8;

/// An entry's fields, borrowed from its encoding.
struct Fields<'a> {
    digest: [u8; 32],
    size: u64,
    received_ms: u64,
    media_type: &'a str,
    name: &'a str,
    principal: &'a str,
    labels: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    /// Reads a canonical encoding, then checks the rules of
    /// [`EvidenceEntry::validate`]; anything else is rejected.
    fn parse(bytes: &'a [u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_SIZE {
            return Err(EntryError::TooLarge(bytes.len()));
        }
        let mut r = Reader(bytes);
        let version = r.take(1, "version")?[0];
        if version != ENTRY_VERSION {
            return Err(EntryError::Version(version));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(r.take(32, "digest")?);
        let size = r.u64("size")?;
        let received_ms = r.u64("received time")?;
        let media_type = r.string("media type")?;
        let name = r.string("name")?;
        let principal = r.string("principal")?;
        let count = r.u16("label count")?;
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(usize::from(count).min(16));
        for _ in 0..count {
            let k = r.string("label key")?;
            let v = r.string("label value")?;
            if labels
                .last()
                .is_some_and(|(prev, _)| prev.as_bytes() >= k.as_bytes())
            {
                return Err(EntryError::LabelOrder);
            }
            labels.push((k, v));
        }
        if !r.0.is_empty() {
            return Err(EntryError::TrailingBytes(r.0.len()));
        }
        // The record's own rules, as validate applies them: an empty name
        // is the record's "no name".
        check_fields(
            media_type,
            (!name.is_empty()).then_some(name),
            principal,
            labels.iter().copied(),
        )?;
        Ok(Fields {
            digest,
            size,
            received_ms,
            media_type,
            name,
            principal,
            labels,
        })
    }
}

fn put_str(out: &mut Vec<u8>, name: &'static str, value: &str) -> Result<(), EntryError> {
    let len = u16::try_from(value.len()).map_err(|_| field(name, "longer than 65535 bytes"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], EntryError> {
        let (head, tail) = self
            .0
            .split_at_checked(n)
            .ok_or(EntryError::Truncated(what))?;
        self.0 = tail;
        Ok(head)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, EntryError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, EntryError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(b))
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, EntryError> {
        let len = usize::from(self.u16(what)?);
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes).map_err(|_| field(what, "is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EvidenceEntry {
        EvidenceEntry {
            digest: crate::hash::sha256(b"evidence"),
            size: 8,
            received_ms: 1_700_000_000_123,
            media_type: "text/plain".into(),
            name: Some("notes.txt".into()),
            principal: "alice".into(),
            labels: [("case".to_string(), "42".to_string())].into(),
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(EvidenceEntry::decode(&e.encode().expect("encode")), Ok(e));
    }

    #[test]
    fn empty_name_has_one_encoding() {
        let mut e = sample();
        e.name = Some(String::new());
        assert!(e.encode().is_err());
    }

    #[test]
    fn control_characters_are_refused() {
        let mut e = sample();
        e.principal = "ali\u{1b}[2Jce".into();
        assert!(matches!(
            e.encode(),
            Err(EntryError::Field {
                field: "principal",
                ..
            })
        ));
    }

    #[test]
    fn the_dedup_key_hashes_the_encoding_with_no_time_received() {
        let mut unnamed = sample();
        unnamed.name = None;
        unnamed.labels.clear();
        for e in [sample(), unnamed] {
            let timeless = EvidenceEntry {
                received_ms: 0,
                ..e.clone()
            };
            let mut keyed = b"evault dedup v1\n".to_vec();
            keyed.extend_from_slice(&timeless.encode().expect("encode"));
            let want = crate::hash::sha256(&keyed);
            assert_eq!(e.dedup_key(), Ok(want));
            let bytes = e.encode().expect("encode");
            assert_eq!(EvidenceEntry::dedup_key_of(&bytes), Ok(want));
            let later = EvidenceEntry {
                received_ms: e.received_ms + 1,
                ..e.clone()
            };
            assert_eq!(later.dedup_key(), Ok(want), "the time is not part of it");
            assert!(EvidenceEntry::dedup_key_of(&bytes[..RECEIVED_AT + 7]).is_err());
        }
        let other = EvidenceEntry {
            principal: "bob".into(),
            ..sample()
        };
        assert_ne!(other.dedup_key(), sample().dedup_key());
    }

    #[test]
    fn a_checked_digest_refuses_what_decode_refuses() {
        let good = sample().encode().expect("encode");
        let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        cases.push(good.clone());
        cases.push([good.as_slice(), &[0]].concat());
        let mut version = good.clone();
        version[0] = 2;
        cases.push(version);
        // The principal "alice" with a control character in it.
        let at = good
            .windows(5)
            .position(|w| w == b"alice")
            .expect("the principal");
        let mut control = good.clone();
        control[at + 2] = 0x1b;
        cases.push(control);
        let mut not_utf8 = good.clone();
        not_utf8[at + 2] = 0xff;
        cases.push(not_utf8);
        let two_labels = EvidenceEntry {
            labels: [("a".into(), "1".into()), ("b".into(), "2".into())].into(),
            ..sample()
        }
        .encode()
        .expect("encode");
        let mut swapped = two_labels.clone();
        let end = swapped.len();
        // Each label is 2+1 bytes of key and 2+1 of value: swap the keys.
        swapped.swap(end - 12 + 2, end - 6 + 2);
        assert_eq!(EvidenceEntry::decode(&swapped), Err(EntryError::LabelOrder));
        cases.push(two_labels);
        cases.push(swapped);
        for bytes in cases {
            assert_eq!(
                EvidenceEntry::checked_digest(&bytes),
                EvidenceEntry::decode(&bytes).map(|e| e.digest),
                "{bytes:02x?}"
            );
        }
        assert_eq!(
            EvidenceEntry::checked_digest(&good),
            Ok(crate::hash::sha256(b"evidence"))
        );
    }

    #[test]
    fn oversized_entries_are_refused() {
        let mut e = sample();
        e.labels.insert("big".into(), "x".repeat(60_000));
        e.labels.insert("bigger".into(), "x".repeat(6_000));
        assert!(matches!(e.encode(), Err(EntryError::TooLarge(_))));
    }
}
