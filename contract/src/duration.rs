//! Durations, written the same way everywhere keyway reads one:
//!
//! - in the `ConnectedApp` spec ([`parse_duration`]): a sequence of `<digits><unit>` with unit
//!   `h`, `m` or `s`, e.g. `10m`, `720h`, `1h30m`. This is a subset of Go's
//!   `time.ParseDuration` syntax, so that the CEL `duration()` function in the API server reads
//!   the same strings the same way;
//! - in the binaries' flags ([`parse_flag_seconds`]): the same, and also one number with the
//!   unit `d` (days, `30d`) or a bare number of seconds (`90`), as earlier flags took.

use std::time::Duration;

/// The schema `pattern` of every duration field (at most 4 parts of at most 6 digits each).
pub const DURATION_PATTERN: &str = "^([0-9]{1,6}[hms]){1,4}$";

/// Parses a duration such as `10m`, `720h` or `1h30m` (see [`DURATION_PATTERN`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration: write digits followed by h, m or s, e.g. 10m, 720h, 1h30m"
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut parts = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        if digits.is_empty() || digits.len() > 6 {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = total.checked_add(n * unit).ok_or_else(bad)?;
        digits.clear();
        parts += 1;
    }
    if !digits.is_empty() || parts > 4 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Parses a duration flag into whole seconds: the spec's syntax ([`parse_duration`]: `720h`,
/// `1h30m`, `10m`), one number with a unit of `s`, `m`, `h` or `d` (days), or bare seconds
/// (`90`). Surrounding whitespace is ignored.
pub fn parse_flag_seconds(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if let Ok(d) = parse_duration(s) {
        return Ok(d.as_secs());
    }
    let bad = || {
        format!(
            "{text:?} is not a duration: write e.g. 30s, 10m, 12h, 1h30m or 30d (a bare number is seconds)"
        )
    };
    let (num, mult) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        Some(b'd') => (&s[..s.len() - 1], 86400),
        Some(b'0'..=b'9') => (s, 1),
        _ => return Err(bad()),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

/// [`parse_flag_seconds`] as a [`Duration`], for flags read straight into one.
pub fn parse_flag(text: &str) -> Result<Duration, String> {
    parse_flag_seconds(text).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_the_spec_syntax_days_and_bare_seconds() {
        assert_eq!(parse_flag_seconds("90"), Ok(90));
        assert_eq!(parse_flag_seconds("10m"), Ok(600));
        assert_eq!(parse_flag_seconds("30d"), Ok(30 * 86400));
        assert_eq!(parse_flag_seconds("720h"), Ok(720 * 3600));
        assert_eq!(parse_flag_seconds("1h30m15s"), Ok(5415));
        assert_eq!(parse_flag_seconds("2592000s"), Ok(2_592_000));
        assert_eq!(parse_flag_seconds(" 12h "), Ok(12 * 3600));
        assert_eq!(parse_flag_seconds("0"), Ok(0));
        assert_eq!(parse_flag("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "",
            "m",
            "-1s",
            "1.5h",
            "1h30",
            "10 m",
            "99999999999999999999d",
            "1w",
        ] {
            let e = parse_flag_seconds(bad);
            assert!(
                e.as_ref().is_err_and(|m| m.contains("is not a duration")),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("720h"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(parse_duration("1h30m15s"), Ok(Duration::from_secs(5415)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "10",
            "m",
            "10d",
            "1.5h",
            "-1h",
            " 1h",
            "1h ",
            "1234567s",
            "1h1m1s1h1m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
