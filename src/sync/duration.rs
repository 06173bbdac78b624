//! Durations as Kubernetes users write them (`1h`, `15m`, `90s`, `1h30m`, `500ms`, `1.5h`).

use std::time::Duration;

/// Parses a Go-style duration: one or more `<number><unit>` with units `ms`, `s`, `m`, `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 1h, 15m or 90s"))?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let seconds = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
        };
        total += seconds;
        rest = next;
    }
    if !total.is_finite() || total > 10.0 * 365.0 * 86400.0 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a duration and refuses one shorter than `min` (a zero refresh interval would hammer the server).
pub fn parse_at_least(text: &str, min: Duration) -> Result<Duration, String> {
    let d = parse(text)?;
    if d < min {
        return Err(format!("{text:?} is shorter than the minimum {}s", min.as_secs()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_style_durations_parse() {
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse(" 90s ").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn minimums_are_enforced() {
        assert!(parse_at_least("0s", Duration::from_secs(10)).is_err());
        assert!(parse_at_least("9s", Duration::from_secs(10)).is_err());
        assert_eq!(parse_at_least("10s", Duration::from_secs(10)).unwrap(), Duration::from_secs(10));
    }

    #[test]
    fn nonsense_is_a_clear_error() {
        for bad in ["", "h", "10", "10d", "1h-5m", "abc", "1e400h", "99999999999h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
