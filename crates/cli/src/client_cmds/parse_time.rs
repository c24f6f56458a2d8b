//! Parsing of `strata consume --from`: where a consumer starts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use strata_client::Offset;

/// What `--from` accepts, for error messages.
pub const FROM_FORMS: &str = "earliest, latest, an offset (0, 42), an RFC 3339 time \
     (2024-05-01T12:00:00Z) or a time ago (-10m, -1h30m)";

/// Parses a `--from` value; `now` anchors relative times (`-10m` is 10 minutes before it).
///
/// - `earliest` / `latest`
/// - a non-negative integer: that offset
/// - `-DURATION` (humantime: `-10m`, `-1h 30m`, `-2days`): the first record at or after
///   `now - DURATION`
/// - an RFC 3339 time, UTC (`2024-05-01T12:00:00Z`, also with a space or without `Z`): the
///   first record at or after it
pub fn parse_from(from: &str, now: SystemTime) -> Result<Offset, String> {
    let s = from.trim();
    match s {
        "earliest" => return Ok(Offset::Earliest),
        "latest" => return Ok(Offset::Latest),
        _ => {}
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .map(Offset::At)
            .map_err(|e| format!("offset {s:?} is not valid: {e}"));
    }
    if let Some(ago) = s.strip_prefix('-') {
        let ago = humantime::parse_duration(ago.trim()).map_err(|e| {
            format!("{from:?} is not a time ago like -10m ({e}); --from accepts {FROM_FORMS}")
        })?;
        let at = now.checked_sub(ago).unwrap_or(UNIX_EPOCH);
        return Ok(Offset::Timestamp(millis_since_epoch(at)));
    }
    match humantime::parse_rfc3339_weak(s) {
        Ok(at) => Ok(Offset::Timestamp(millis_since_epoch(at))),
        Err(e) => Err(format!(
            "{from:?} is not valid ({e}); --from accepts {FROM_FORMS}"
        )),
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturating far after it).
pub fn millis_since_epoch(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time `ms` milliseconds after the Unix epoch (negative values count back from it).
pub fn time_from_millis(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(magnitude).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        // 2024-05-01T12:00:00Z
        UNIX_EPOCH + Duration::from_secs(1_714_564_800)
    }

    #[test]
    fn named_positions_and_offsets() {
        assert_eq!(parse_from("earliest", now()), Ok(Offset::Earliest));
        assert_eq!(parse_from("latest", now()), Ok(Offset::Latest));
        assert_eq!(parse_from("0", now()), Ok(Offset::At(0)));
        assert_eq!(parse_from(" 42 ", now()), Ok(Offset::At(42)));
        assert!(parse_from("99999999999999999999", now()).is_err());
    }

    #[test]
    fn relative_times_count_back_from_now() {
        let ten_minutes_ago = 1_714_564_800_000 - 600_000;
        assert_eq!(
            parse_from("-10m", now()),
            Ok(Offset::Timestamp(ten_minutes_ago))
        );
        assert_eq!(
            parse_from("-1h 30m", now()),
            Ok(Offset::Timestamp(1_714_564_800_000 - 5_400_000))
        );
        // Further back than the epoch clamps to it.
        assert_eq!(parse_from("-1000years", now()), Ok(Offset::Timestamp(0)));
        // A bare negative number is neither an offset nor a duration.
        let e = parse_from("-10", now()).unwrap_err();
        assert!(e.contains("time ago"), "{e}");
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(
            parse_from("2024-05-01T12:00:00Z", now()),
            Ok(Offset::Timestamp(1_714_564_800_000))
        );
        assert_eq!(
            parse_from("2024-05-01 12:00:00.250", now()),
            Ok(Offset::Timestamp(1_714_564_800_250))
        );
        let e = parse_from("yesterday", now()).unwrap_err();
        assert!(e.contains("earliest, latest"), "{e}");
    }

    #[test]
    fn millis_round_trip() {
        let t = time_from_millis(1_714_564_800_123);
        assert_eq!(millis_since_epoch(t), 1_714_564_800_123);
        assert_eq!(millis_since_epoch(time_from_millis(-5)), 0);
    }
}
