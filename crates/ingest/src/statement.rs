//! From a client's evidence statement to the entry the log records, with
//! field-precise refusals for anything malformed or over the limits.

use std::collections::BTreeMap;

use evault_core::{EvidenceEntry, hash::sha256};
use evault_proto::v1::EvidenceStatement;
use tonic::Status;

/// Longest evidence name, in bytes.
pub const MAX_NAME: usize = 1024;
/// Most labels on one statement.
pub const MAX_LABELS: usize = 64;
/// Longest label key or value, in bytes.
pub const MAX_LABEL: usize = 1024;
/// Longest media type, in bytes.
pub const MAX_MEDIA_TYPE: usize = 255;
/// Largest evidence size a statement may declare: 2^63 − 1 bytes.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// A statement that passed validation, ready to become an entry.
#[derive(Clone, Debug)]
pub struct Statement {
    /// The entry, stamped with the principal and the time received.
    pub entry: EvidenceEntry,
    /// The entry's encoding.
    pub bytes: Vec<u8>,
    /// Same principal, same statement → same key, whatever the time: a
    /// retry gets the original receipt.
    pub dedup_key: [u8; 32],
    /// The evidence bytes, when the client sent them (already checked).
    pub content: Option<Vec<u8>>,
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

/// `field` names the field only when there is something to refuse: the
/// names are built for errors, not for every statement accepted.
fn text(field: impl Fn() -> String, value: &str, max: usize, required: bool) -> Result<(), Status> {
    if required && value.is_empty() {
        return Err(invalid(&field(), "is required"));
    }
    if value.len() > max {
        return Err(invalid(
            &field(),
            format!("is {} bytes; at most {max}", value.len()),
        ));
    }
    // Shown to people: nothing that could rewrite what they see.
    if let Some((c, why)) = evault_core::text::find_forbidden(value) {
        return Err(invalid(
            &field(),
            format!("contains U+{:04X} ({why})", u32::from(c)),
        ));
    }
    Ok(())
}

/// Validates `statement` from `principal`, received at `received_ms`.
pub fn accept(
    field: &str,
    statement: Option<EvidenceStatement>,
    principal: &str,
    received_ms: u64,
) -> Result<Statement, Status> {
    let s = statement.ok_or_else(|| invalid(field, "is required"))?;
    let digest: [u8; 32] = s.sha256.as_slice().try_into().map_err(|_| {
        invalid(
            &format!("{field}.sha256"),
            format!("must be 32 bytes, got {}", s.sha256.len()),
        )
    })?;
    // Sizes are signed 64-bit wherever they are stored.
    if s.size > MAX_SIZE {
        return Err(invalid(
            &format!("{field}.size"),
            format!("is {}; at most {MAX_SIZE}", s.size),
        ));
    }
    let media = || format!("{field}.media_type");
    text(media, &s.media_type, MAX_MEDIA_TYPE, true)?;
    if !s.media_type.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(invalid(&media(), "must be printable ASCII"));
    }
    text(|| format!("{field}.name"), &s.name, MAX_NAME, false)?;
    if s.labels.len() > MAX_LABELS {
        return Err(invalid(
            &format!("{field}.labels"),
            format!("{} labels; at most {MAX_LABELS}", s.labels.len()),
        ));
    }
    let mut labels = BTreeMap::new();
    for (i, label) in s.labels.into_iter().enumerate() {
        let key_field = || format!("{field}.labels[{i}].key");
        text(key_field, &label.key, MAX_LABEL, true)?;
        text(
            || format!("{field}.labels[{i}].value"),
            &label.value,
            MAX_LABEL,
            false,
        )?;
        if labels.contains_key(&label.key) {
            return Err(invalid(
                &key_field(),
                format!("{:?} is repeated", label.key),
            ));
        }
        labels.insert(label.key, label.value);
    }
    if let Some(content) = &s.content {
        let content_field = || format!("{field}.content");
        if content.len() as u64 != s.size {
            return Err(invalid(
                &content_field(),
                format!("is {} bytes but size says {}", content.len(), s.size),
            ));
        }
        if sha256(content) != digest {
            return Err(invalid(
                &content_field(),
                "does not have the SHA-256 given in sha256",
            ));
        }
    }
    let entry = EvidenceEntry {
        digest,
        size: s.size,
        received_ms,
        media_type: s.media_type,
        name: (!s.name.is_empty()).then_some(s.name),
        principal: principal.to_string(),
        labels,
    };
    let bytes = entry.encode().map_err(|e| invalid(field, e))?;
    let dedup_key = EvidenceEntry::dedup_key_of(&bytes).map_err(|e| invalid(field, e))?;
    Ok(Statement {
        entry,
        bytes,
        dedup_key,
        content: s.content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use evault_proto::v1::Label;

    fn statement() -> EvidenceStatement {
        EvidenceStatement {
            sha256: sha256(b"report").to_vec(),
            size: 6,
            media_type: "text/plain".into(),
            name: "report.txt".into(),
            labels: vec![
                Label {
                    key: "z".into(),
                    value: "1".into(),
                },
                Label {
                    key: "a".into(),
                    value: "".into(),
                },
            ],
            content: Some(b"report".to_vec()),
        }
    }

    fn alice() -> &'static str {
        "alice"
    }

    fn refused(s: EvidenceStatement) -> String {
        let status = accept("statement", Some(s), alice(), 1).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        status.message().to_string()
    }

    #[test]
    fn accepted_statement_becomes_a_canonical_entry() {
        let s = accept("statement", Some(statement()), alice(), 42).expect("accepted");
        assert_eq!(s.entry.principal, "alice");
        assert_eq!(s.entry.received_ms, 42);
        assert_eq!(s.entry.labels.keys().collect::<Vec<_>>(), ["a", "z"]);
        assert_eq!(EvidenceEntry::decode(&s.bytes).expect("decodes"), s.entry);
    }

    #[test]
    fn retries_share_a_dedup_key_and_others_do_not() {
        let key = |s: EvidenceStatement, who: &str, at: u64| {
            accept("statement", Some(s), who, at).expect("ok").dedup_key
        };
        assert_eq!(key(statement(), "alice", 1), key(statement(), "alice", 999));
        assert_ne!(key(statement(), "alice", 1), key(statement(), "bob", 1));
        let mut renamed = statement();
        renamed.name = "other.txt".into();
        assert_ne!(key(statement(), "alice", 1), key(renamed, "alice", 1));
    }

    /// A change that makes a statement invalid.
    type Mutation = Box<dyn Fn(&mut EvidenceStatement)>;

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|s| s.sha256.truncate(31)), "statement.sha256"),
            (Box::new(|s| s.media_type.clear()), "statement.media_type"),
            (
                Box::new(|s| s.media_type = "tëxt/plain".into()),
                "statement.media_type",
            ),
            (Box::new(|s| s.name = "a\u{1b}[2J".into()), "statement.name"),
            (
                Box::new(|s| s.name = "n".repeat(MAX_NAME + 1)),
                "statement.name",
            ),
            (
                Box::new(|s| s.labels[1].key.clear()),
                "statement.labels[1].key",
            ),
            (
                Box::new(|s| s.labels[1].key = "z".into()),
                "statement.labels[1].key",
            ),
            (
                Box::new(|s| s.labels[0].value = "\n".into()),
                "statement.labels[0].value",
            ),
            (
                Box::new(|s| s.content = Some(b"tampered".to_vec())),
                "statement.content",
            ),
            (
                Box::new(|s| s.content = Some(b"REPORT".to_vec())),
                "statement.content",
            ),
            (
                Box::new(|s| {
                    s.labels = (0..=MAX_LABELS)
                        .map(|i| Label {
                            key: i.to_string(),
                            value: String::new(),
                        })
                        .collect()
                }),
                "statement.labels",
            ),
        ];
        for (mutate, field) in cases {
            let mut s = statement();
            mutate(&mut s);
            let message = refused(s);
            assert!(
                message.starts_with(&format!("{field}:")),
                "{message} does not name {field}"
            );
        }
        let status = accept("statement", None, alice(), 1).expect_err("missing");
        assert!(status.message().starts_with("statement:"));
    }

    #[test]
    fn text_that_could_rewrite_what_people_see_is_refused_by_code_point() {
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|s| s.name = "evil\u{202e}fdp.exe".into()),
                "statement.name: contains U+202E (a format character)",
            ),
            (
                Box::new(|s| s.name = "two\u{2028}lines".into()),
                "statement.name: contains U+2028 (a line or paragraph separator)",
            ),
            (
                Box::new(|s| s.name = "soft\u{ad}hyphen".into()),
                "statement.name: contains U+00AD (a format character)",
            ),
            (
                Box::new(|s| s.labels[0].key = "z\u{200b}".into()),
                "statement.labels[0].key: contains U+200B (a format character)",
            ),
            (
                Box::new(|s| s.labels[1].value = "\u{2029}".into()),
                "statement.labels[1].value: contains U+2029 (a line or paragraph separator)",
            ),
            (
                Box::new(|s| s.labels[1].value = "tag\u{e0041}".into()),
                "statement.labels[1].value: contains U+E0041 (a format character)",
            ),
            (
                Box::new(|s| s.media_type = "text/plain\u{202e}".into()),
                "statement.media_type: contains U+202E (a format character)",
            ),
            (
                Box::new(|s| s.media_type = "text/\u{7f}plain".into()),
                "statement.media_type: contains U+007F (a control character)",
            ),
        ];
        for (mutate, message) in cases {
            let mut s = statement();
            mutate(&mut s);
            assert_eq!(refused(s), message);
        }
    }

    #[test]
    fn declared_sizes_beyond_a_signed_64_bit_integer_are_refused() {
        let mut s = statement();
        s.content = None;
        s.size = u64::MAX;
        assert_eq!(
            refused(s.clone()),
            format!("statement.size: is {}; at most {MAX_SIZE}", u64::MAX)
        );
        s.size = MAX_SIZE;
        accept("statement", Some(s), alice(), 1).expect("the largest size is accepted");
    }
}
