//! Dates as Password Safe writes them, and the arithmetic the simulator needs on them.
//!
//! The server is an ASP.NET application: dates are UTC but carry no zone designator, and the fraction is a
//! count of 100 ns ticks printed without trailing zeros (0 to 7 digits), e.g. `2024-12-10T08:57:45.9`.

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde::{Serialize, Serializer};

/// Nanoseconds in one .NET tick; the server never has finer precision than this.
const NANOS_PER_TICK: i128 = 100;

/// Drops precision below one tick so that a value handed to a client and the value kept in memory compare
/// equal after the client parses it back.
pub(crate) fn truncate_to_tick(ts: Timestamp) -> Timestamp {
    let nanos = ts.as_nanosecond();
    Timestamp::from_nanosecond(nanos - nanos.rem_euclid(NANOS_PER_TICK)).unwrap_or(ts)
}

/// `ts + seconds`, saturating at the ends of the representable range instead of panicking: seed values
/// such as a rotation interval are user input.
pub(crate) fn plus_secs(ts: Timestamp, seconds: i64) -> Timestamp {
    plus(ts, SignedDuration::from_secs(seconds))
}

/// `ts + d`, saturating.
pub(crate) fn plus(ts: Timestamp, d: SignedDuration) -> Timestamp {
    ts.checked_add(d).unwrap_or(if d.is_negative() { Timestamp::MIN } else { Timestamp::MAX })
}

/// Formats a timestamp the way the server does: UTC, no zone, 0-7 fractional digits.
pub(crate) fn format_date(ts: Timestamp) -> String {
    let dt = ts.to_zoned(TimeZone::UTC).datetime();
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let ticks = dt.subsec_nanosecond() / 100;
    if ticks != 0 {
        let digits = format!("{ticks:07}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// Parses a date written by a person (seed files) or a client (`AfterDate`): RFC 3339 with a zone, or a
/// zone-less date/time which is taken as UTC like every date of this API.
pub(crate) fn parse_date(text: &str) -> anyhow::Result<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(truncate_to_tick(ts));
    }
    let civil: jiff::civil::DateTime = text.parse().map_err(|e| anyhow::anyhow!("invalid date {text:?}: {e}"))?;
    let ts = civil.to_zoned(TimeZone::UTC).map_err(|e| anyhow::anyhow!("invalid date {text:?}: {e}"))?.timestamp();
    Ok(truncate_to_tick(ts))
}

/// A timestamp serialized in the server's date format (see [`format_date`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireDate(pub Timestamp);

impl Serialize for WireDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_date(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_without_zone_and_trims_fraction() {
        let ts: Timestamp = "2024-12-10T08:57:45.9Z".parse().unwrap();
        assert_eq!(format_date(ts), "2024-12-10T08:57:45.9");
        let ts: Timestamp = "2024-12-10T08:57:45Z".parse().unwrap();
        assert_eq!(format_date(ts), "2024-12-10T08:57:45");
        let ts: Timestamp = "2024-12-10T08:57:45.123456789Z".parse().unwrap();
        assert_eq!(format_date(truncate_to_tick(ts)), "2024-12-10T08:57:45.1234567");
    }

    #[test]
    fn parses_zoned_and_zoneless_dates_as_utc() {
        let a = parse_date("2024-12-10T08:57:45.9").unwrap();
        let b = parse_date("2024-12-10T08:57:45.9Z").unwrap();
        let c = parse_date("2024-12-10T09:57:45.9+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn saturates_instead_of_panicking() {
        assert_eq!(plus_secs(Timestamp::MAX, 10), Timestamp::MAX);
        assert_eq!(plus_secs(Timestamp::MIN, -10), Timestamp::MIN);
    }
}
