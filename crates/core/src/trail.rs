//! The audit trail: a second verifiable log, of who did what to the vault.
//!
//! Its origin is the log's with `/audit` appended ([`audit_origin`]), and
//! it is an ordinary log in every other way: the same entry bundles,
//! tiles and checkpoints, signed by the same keys under the audit origin's
//! name ([`audit_verifier_keys`]), checked by the same code. Each entry is
//! one [`AuditRecord`]: a JSON object (UTF-8, no trailing newline) whose
//! first four members are `time` (RFC 3339, UTC, milliseconds), `event`,
//! `principal` (a string or null) and `log`, the main log's latest signed
//! head when the record was made (`{"size": N, "root": "<base64>"}`), so
//! every record pins a tree head anyone can check; the event's own members
//! follow, in name order. `docs/audit.md` lists the events.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::hash::Hash;
use crate::note::{KeyError, VerifierKey};

/// Each main-log checkpoint signed: members `size`, `root` (base64) and
/// `key_ids` (the signing keys' IDs, 8 hex digits each, in line order).
pub const CHECKPOINT_SIGNED: &str = "checkpoint.signed";
/// A key signs checkpoints that the previous checkpoint's keys did not
/// include: member `key_id`.
pub const KEY_ADDED: &str = "key.added";
/// A key that signed the previous checkpoint signs no longer: member
/// `key_id`.
pub const KEY_REMOVED: &str = "key.removed";
/// The signer refused to sign: members `asked` (`{"old": head, "new":
/// head}`) and `reason`.
pub const SIGNER_REFUSED: &str = "signer.refused";
/// A tree became the log's active sequencer: member `instance`.
pub const LEADER_ACQUIRED: &str = "leader.acquired";
/// A migration of the log's database was applied: members `version`,
/// `name`, `applied_on` and `checksum`, as the migration history has them.
pub const MIGRATION_APPLIED: &str = "migration.applied";
/// Callers were refused: one record per principal (null when no token was
/// verified), code and reason in each window of refusals, with members
/// `code`, `reason`, `count`, `since` (when the window began, RFC 3339)
/// and `role`.
pub const AUTH_DENIED: &str = "auth.denied";
/// A caller read uploaded evidence: members `sha256` (base64) and `size`.
pub const EVIDENCE_READ: &str = "evidence.read";
/// A caller erased uploaded evidence: members `sha256` (base64), `size`
/// and `reason`.
pub const EVIDENCE_ERASED: &str = "evidence.erased";

/// The events other roles witness and hand to the tree that writes the
/// trail. Whatever else the trail holds, the tree records itself, and no
/// caller can claim it.
pub const WITNESSED: [&str; 3] = [AUTH_DENIED, EVIDENCE_READ, EVIDENCE_ERASED];

/// Whether `name` is one of the members every record has, which an event's
/// own members cannot be.
pub fn is_reserved_member(name: &str) -> bool {
    RESERVED.contains(&name)
}

/// The origin of the audit trail of the log `origin`.
pub fn audit_origin(origin: &str) -> String {
    format!("{origin}/audit")
}

/// The verifier keys of the audit trail of the log whose keys are `keys`:
/// the same public keys, named after the audit origin. Keys of other
/// names are left out.
pub fn audit_verifier_keys(
    origin: &str,
    keys: &[VerifierKey],
) -> Result<Vec<VerifierKey>, KeyError> {
    let audit = audit_origin(origin);
    keys.iter()
        .filter(|k| k.name() == origin)
        .map(|k| VerifierKey::from_public_key(&audit, *k.public_key()))
        .collect()
}

/// A tree head as a record pins it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedHead {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened, e.g. [`CHECKPOINT_SIGNED`].
    pub event: String,
    /// Who did it, when a caller did.
    pub principal: Option<String>,
    /// The main log's latest signed head at that moment.
    pub log: PinnedHead,
    /// The event's own members (never `time`, `event`, `principal` or
    /// `log`).
    pub fields: BTreeMap<String, Value>,
}

/// Why bytes are not an audit record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed audit record: {0}")]
pub struct RecordError(pub String);

const RESERVED: [&str; 4] = ["time", "event", "principal", "log"];

/// `head` as the `{"size", "root"}` object records carry.
pub fn pinned_head_value(head: &PinnedHead) -> Value {
    serde_json::json!({"size": head.size, "root": BASE64.encode(head.root.as_bytes())})
}

/// Reads a `{"size", "root"}` object.
pub fn parse_pinned_head(value: &Value) -> Result<PinnedHead, RecordError> {
    let bad = |what: &str| RecordError(format!("a tree head {what}"));
    let object = value.as_object().ok_or_else(|| bad("is not an object"))?;
    let size = object
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("has no integer size"))?;
    let root = object
        .get("root")
        .and_then(Value::as_str)
        .and_then(|r| BASE64.decode(r).ok())
        .and_then(|r| Hash::from_slice(&r))
        .ok_or_else(|| bad("has no base64 32-byte root"))?;
    Ok(PinnedHead { size, root })
}

impl AuditRecord {
    /// The record's bytes: the JSON object, `time`, `event`, `principal`,
    /// `log` first, then the event's members in name order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::from("{");
        let mut member = |name: &str, value: &Value| {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&Value::from(name).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        };
        member("time", &Value::from(format_utc_ms(self.time_ms)));
        member("event", &Value::from(self.event.as_str()));
        member(
            "principal",
            &self.principal.as_deref().map_or(Value::Null, Value::from),
        );
        member("log", &pinned_head_value(&self.log));
        for (name, value) in &self.fields {
            if !RESERVED.contains(&name.as_str()) {
                member(name, value);
            }
        }
        out.push('}');
        out.into_bytes()
    }

    /// Parses a record, checking the four members every record has.
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        let bad = |what: &str| RecordError(what.to_string());
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| RecordError(format!("not JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(bad("not a JSON object"));
        };
        let time = object
            .remove("time")
            .and_then(|t| t.as_str().and_then(parse_utc_ms))
            .ok_or_else(|| bad("time is not RFC 3339 UTC with milliseconds"))?;
        let event = match object.remove("event") {
            Some(Value::String(e)) if !e.is_empty() => e,
            _ => return Err(bad("event is not a non-empty string")),
        };
        let principal = match object.remove("principal") {
            Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p),
            _ => return Err(bad("principal is neither a string nor null")),
        };
        let log = parse_pinned_head(&object.remove("log").ok_or_else(|| bad("log is missing"))?)?;
        Ok(AuditRecord {
            time_ms: time,
            event,
            principal,
            log,
            fields: object.into_iter().collect(),
        })
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC, e.g.
/// `2026-11-29T13:52:21.123Z`.
pub fn format_utc_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// The inverse of [`format_utc_ms`], for exactly that form.
pub fn parse_utc_ms(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = &text[range];
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second, milli) = (
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        number(20..23)?,
    );
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    // A day past the month's end would name another date: refuse it.
    if days < 0 || civil_from_days(days) != (year as i64, month as i64, day as i64) {
        return None;
    }
    Some(((days as u64 * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + milli)
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_as_rfc3339_utc_and_back() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
            (1_795_960_341_123, "2026-11-29T13:52:21.123Z"),
        ] {
            assert_eq!(format_utc_ms(ms), text);
            assert_eq!(parse_utc_ms(text), Some(ms));
        }
        for bad in [
            "2026-02-30T00:00:00.000Z",
            "2026-11-29T13:52:21Z",
            "2026-11-29 13:52:21.123Z",
            "2026-13-01T00:00:00.000Z",
            "2026-11-29T13:52:21.123+01:00",
        ] {
            assert_eq!(parse_utc_ms(bad), None, "{bad}");
        }
    }

    fn record() -> AuditRecord {
        AuditRecord {
            time_ms: 1_795_960_341_123,
            event: CHECKPOINT_SIGNED.into(),
            principal: None,
            log: PinnedHead {
                size: 7,
                root: Hash::from_slice(&[7; 32]).expect("hash"),
            },
            fields: [
                ("size".to_string(), Value::from(7)),
                ("key_ids".to_string(), serde_json::json!(["0a0b0c0d"])),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn a_record_is_one_json_object_with_the_common_members_first() {
        let bytes = record().to_bytes();
        let text = String::from_utf8(bytes.clone()).expect("UTF-8");
        assert_eq!(
            text,
            "{\"time\":\"2026-11-29T13:52:21.123Z\",\"event\":\"checkpoint.signed\",\
             \"principal\":null,\"log\":{\"root\":\"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\",\
             \"size\":7},\"key_ids\":[\"0a0b0c0d\"],\"size\":7}"
        );
        assert_eq!(AuditRecord::parse(&bytes).expect("parse"), record());
    }

    #[test]
    fn records_missing_a_common_member_are_refused() {
        for bad in [
            &b"[]"[..],
            b"{\"event\":\"x\",\"principal\":null,\"log\":{\"size\":0,\"root\":\"\"}}",
            b"{\"time\":\"2026-11-29T13:52:21.123Z\",\"event\":\"\",\"principal\":null}",
            b"{\"time\":\"2026-11-29T13:52:21.123Z\",\"event\":\"x\",\"principal\":3,\
              \"log\":{\"size\":0,\"root\":\"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\"}}",
            b"{\"time\":\"2026-11-29T13:52:21.123Z\",\"event\":\"x\",\"principal\":null,\
              \"log\":{\"size\":0,\"root\":\"AAAA\"}}",
        ] {
            assert!(
                AuditRecord::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn audit_keys_are_the_logs_keys_under_the_audit_name() {
        let (key, _) = crate::note::SigningKey::generate("vault.example/log").expect("key");
        let (other, _) = crate::note::SigningKey::generate("elsewhere").expect("key");
        let keys = [key.verifier_key().clone(), other.verifier_key().clone()];
        let audit = audit_verifier_keys("vault.example/log", &keys).expect("keys");
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].name(), "vault.example/log/audit");
        assert_eq!(audit[0].public_key(), key.verifier_key().public_key());
        assert_ne!(audit[0].key_id(), key.verifier_key().key_id());
    }
}
