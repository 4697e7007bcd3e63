//! How long a minted token lives, as people write it.

use std::time::Duration;

/// The longest lifetime a token may be given: a year. Past it, a token is
/// a password that never changes.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A token lifetime: `90s`, `15m`, `12h`, `30d`, or a bare number of
/// seconds. Zero and anything over a year are refused.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let form = || format!("token lifetime {s:?}: write it as 90s, 15m, 12h or 30d");
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => s.split_at(at),
        None => (s, "s"),
    };
    let seconds_per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return Err(form()),
    };
    if number.is_empty() {
        return Err(form());
    }
    let too_long = || format!("token lifetime {s:?}: at most 365d");
    let seconds = number
        .parse::<u64>()
        .map_err(|_| too_long())?
        .checked_mul(seconds_per_unit)
        .ok_or_else(too_long)?;
    check_ttl(Duration::from_secs(seconds)).map_err(|e| format!("token lifetime {s:?}: {e}"))
}

/// `ttl` unless it is zero or over [`MAX_TTL`].
pub(crate) fn check_ttl(ttl: Duration) -> Result<Duration, String> {
    if ttl.is_zero() {
        Err("must be more than zero".into())
    } else if ttl > MAX_TTL {
        Err("at most 365d".into())
    } else {
        Ok(ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ttl_reads_each_unit() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(15 * 60)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(30 * 24 * 3600)));
        assert_eq!(parse_ttl("365d"), Ok(MAX_TTL));
    }

    #[test]
    fn parse_ttl_reads_a_bare_number_as_seconds() {
        assert_eq!(parse_ttl("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl(" 60 "), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn parse_ttl_refuses_zero() {
        for zero in ["0", "0s", "0d"] {
            let error = parse_ttl(zero).expect_err(zero);
            assert!(error.contains("more than zero"), "{error}");
        }
    }

    #[test]
    fn parse_ttl_refuses_absurd_lifetimes() {
        for absurd in [
            "366d",
            "8785h",
            "99999999999999999999",
            "18446744073709551615d",
        ] {
            let error = parse_ttl(absurd).expect_err(absurd);
            assert!(error.contains("at most 365d"), "{error}");
        }
    }

    #[test]
    fn parse_ttl_refuses_what_it_cannot_read() {
        for bad in ["", "s", "1w", "1.5h", "-5m", "1h30m", "h1", "10 m", "15M"] {
            let error = parse_ttl(bad).expect_err(bad);
            assert!(error.contains("90s, 15m, 12h or 30d"), "{bad}: {error}");
        }
    }
}
