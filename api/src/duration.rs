//! Durations in the spec: a sequence of `<digits><unit>` with unit `h`, `m` or `s`, e.g. `10m`,
//! `720h`, `1h30m`. This is a subset of Go's `time.ParseDuration` syntax, so that the CEL
//! `duration()` function in the API server reads the same strings the same way.

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

#[cfg(test)]
mod tests {
    use super::*;

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
