//! Durations as users write them (`1s`, `100ms`, `1m30s`): one grammar for the CRD schema
//! ([`DURATION_PATTERN`]), the parser and the formatter every reader and writer shares.

use std::time::Duration;

/// The grammar of a duration, as the CRD's OpenAPI pattern: numbers each followed by a unit.
/// [`parse_duration`] reads exactly these.
pub(crate) const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns))+$";

/// What every reader says of a text that is no duration (the CRD's rule says it too, so a
/// refusal reads the same from `kubectl apply`, `check` and the agent): preceded by the text
/// in double quotes.
pub(crate) const NOT_A_DURATION: &str = "is not a duration: write numbers each with a unit, e.g. 1s, 100ms or 1m30s (units h, m, s, ms, us, ns)";

/// `"TEXT" is not a duration: ...`.
pub(crate) fn not_a_duration(text: &str) -> String {
    format!("\"{text}\" {NOT_A_DURATION}")
}

/// Parses a duration as Kubernetes and keepalived users write it: `1s`, `100ms`, `1.5s`,
/// `1m30s`, `250us`, exactly what [`DURATION_PATTERN`] matches. A bare number is refused: the
/// unit is never guessed.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || not_a_duration(text);
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        // The pattern's number: digits, optionally a point and more digits.
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let well_formed = match num.split_once('.') {
            Some((a, b)) => digits(a) && digits(b),
            None => digits(num),
        };
        if !well_formed {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let nanos_per_unit: f64 = match unit {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" => 1e3,
            "ns" => 1.0,
            _ => return Err(bad()),
        };
        let nanos = value * nanos_per_unit;
        if !nanos.is_finite() || nanos > 1e18 {
            return Err(format!("{text:?} is too long"));
        }
        total += Duration::from_nanos(nanos.round() as u64);
        rest = tail;
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it back, exactly: `100ms`, `3s`, or
/// decimal seconds such as `2.30334375s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 && nanos < 1_000_000_000 {
        format!("{}ms", nanos / 1_000_000)
    } else {
        let frac = format!("{:09}", nanos % 1_000_000_000);
        format!("{}.{}s", nanos / 1_000_000_000, frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("100").is_err());
        assert!(parse_duration("1parsec").is_err());
        assert!(parse_duration("").is_err());
        for d in [
            "0s",
            "20ms",
            "3s",
            "0.00025s",
            "2.30334375s",
            "1.000000007s",
        ] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn pattern_names_every_unit_the_parser_reads() {
        for unit in ["h", "m", "s", "ms", "us", "ns"] {
            assert!(
                DURATION_PATTERN.contains(&format!("|{unit}|"))
                    || DURATION_PATTERN.contains(&format!("({unit}|"))
                    || DURATION_PATTERN.contains(&format!("|{unit})")),
                "{unit}"
            );
            assert!(parse_duration(&format!("1{unit}")).is_ok(), "{unit}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        for bad in [
            "100", "1parsec", "1..5s", ".5s", "5.s", "", " 2s ", "2µs", "s",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e, format!("\"{bad}\" {NOT_A_DURATION}"));
            // The CRD's pattern refuses exactly these too.
            assert!(!pattern_matches(bad), "{bad}");
        }
        assert!(
            parse_duration("99999999999h")
                .unwrap_err()
                .contains("too long")
        );
        for good in ["1s", "1.5s", "1m30s", "250us", "0.00025s"] {
            assert!(
                pattern_matches(good) && parse_duration(good).is_ok(),
                "{good}"
            );
        }
    }

    /// DURATION_PATTERN by hand (no regex crate): (digits(.digits)?unit)+.
    fn pattern_matches(t: &str) -> bool {
        let mut rest = t;
        if rest.is_empty() {
            return false;
        }
        while !rest.is_empty() {
            let n = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if n == 0 {
                return false;
            }
            rest = &rest[n..];
            if let Some(r) = rest.strip_prefix('.') {
                let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                if n == 0 {
                    return false;
                }
                rest = &r[n..];
            }
            let Some(u) = ["ms", "us", "ns", "h", "m", "s"]
                .into_iter()
                .find(|u| rest.starts_with(u))
            else {
                return false;
            };
            rest = &rest[u.len()..];
        }
        true
    }
}
