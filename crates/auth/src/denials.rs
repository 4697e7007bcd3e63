//! Refusals counted for the audit trail: per principal, code and reason,
//! in windows, so that an attacker sending a million bad tokens costs the
//! trail one record per window, not a million.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Code;

/// Distinct (principal, code, reason) kinds one window counts apart; the
/// rest are counted together under [`OTHER_REASONS`], so that reasons an
/// attacker can vary (a token's key ID) cannot grow a window without
/// bound.
pub const MAX_KINDS: usize = 256;
/// The reason refusals beyond [`MAX_KINDS`] kinds are counted under.
pub const OTHER_REASONS: &str = "other refusals, beyond the kinds a window counts apart";
/// Longest reason kept, in bytes; a longer one is cut at a character
/// boundary.
const MAX_REASON: usize = 256;

/// Refusals counted since the window began. Cloning shares the count.
#[derive(Clone)]
pub struct Denials {
    tally: Arc<Mutex<Tally>>,
}

struct Tally {
    since_ms: u64,
    counts: BTreeMap<(Option<String>, &'static str, String), u64>,
}

/// How often one kind of refusal happened in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenialCount {
    /// The verified caller refused, or `None` when no token was verified.
    pub principal: Option<String>,
    /// The gRPC code answered: `UNAUTHENTICATED` or `PERMISSION_DENIED`.
    pub code: &'static str,
    /// Why, as the caller was told.
    pub reason: String,
    /// How many times.
    pub count: u64,
}

/// The refusals of one window, taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenialWindow {
    /// When the window began, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Each kind of refusal and its count, in (principal, code, reason)
    /// order.
    pub counts: Vec<DenialCount>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::PermissionDenied => "PERMISSION_DENIED",
        _ => "OTHER",
    }
}

impl Default for Denials {
    fn default() -> Self {
        Denials::new()
    }
}

impl Denials {
    /// No refusal yet; the first window begins now.
    pub fn new() -> Denials {
        Denials {
            tally: Arc::new(Mutex::new(Tally {
                since_ms: now_ms(),
                counts: BTreeMap::new(),
            })),
        }
    }

    /// Counts one refusal.
    pub fn count(&self, principal: Option<&str>, code: Code, reason: &str) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (
            principal.map(str::to_string),
            code_name(code),
            cut(reason).to_string(),
        );
        if !tally.counts.contains_key(&key) && tally.counts.len() >= MAX_KINDS {
            key = (None, code_name(code), OTHER_REASONS.to_string());
        }
        *tally.counts.entry(key).or_insert(0) += 1;
    }

    /// The refusals counted since the window began, if any, and a new
    /// window beginning now.
    pub fn take(&self) -> Option<DenialWindow> {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        let since_ms = std::mem::replace(&mut tally.since_ms, now);
        let counts = std::mem::take(&mut tally.counts);
        if counts.is_empty() {
            return None;
        }
        Some(DenialWindow {
            since_ms,
            counts: counts
                .into_iter()
                .map(|((principal, code, reason), count)| DenialCount {
                    principal,
                    code,
                    reason,
                    count,
                })
                .collect(),
        })
    }
}

fn cut(reason: &str) -> &str {
    if reason.len() <= MAX_REASON {
        return reason;
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_per_principal_code_and_reason() {
        let denials = Denials::new();
        for _ in 0..1000 {
            denials.count(None, Code::Unauthenticated, "missing bearer token");
        }
        denials.count(
            Some("mallory"),
            Code::PermissionDenied,
            "needs evault.admin",
        );
        denials.count(
            Some("mallory"),
            Code::PermissionDenied,
            "needs evault.admin",
        );
        let window = denials.take().expect("refusals");
        assert_eq!(
            window.counts,
            [
                DenialCount {
                    principal: None,
                    code: "UNAUTHENTICATED",
                    reason: "missing bearer token".into(),
                    count: 1000
                },
                DenialCount {
                    principal: Some("mallory".into()),
                    code: "PERMISSION_DENIED",
                    reason: "needs evault.admin".into(),
                    count: 2
                },
            ]
        );
        assert_eq!(denials.take(), None, "a window is taken once");
    }

    #[test]
    fn a_window_counts_a_bounded_number_of_kinds() {
        let denials = Denials::new();
        for i in 0..MAX_KINDS + 500 {
            denials.count(None, Code::Unauthenticated, &format!("unknown key id k{i}"));
        }
        let window = denials.take().expect("refusals");
        assert_eq!(window.counts.len(), MAX_KINDS + 1);
        let other = window
            .counts
            .iter()
            .find(|c| c.reason == OTHER_REASONS)
            .expect("the rest, together");
        assert_eq!(other.count, 500);
        assert_eq!(
            window.counts.iter().map(|c| c.count).sum::<u64>(),
            (MAX_KINDS + 500) as u64,
            "every refusal is counted"
        );
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let denials = Denials::new();
        let long = "é".repeat(MAX_REASON);
        denials.count(None, Code::Unauthenticated, &long);
        let window = denials.take().expect("refusals");
        assert!(window.counts[0].reason.len() <= MAX_REASON);
        assert!(long.starts_with(&window.counts[0].reason));
    }
}
