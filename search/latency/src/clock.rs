//! Timestamps for provenance records.

use std::time::SystemTime;
#[cfg(test)]
use std::time::{Duration, UNIX_EPOCH};

/// The current UTC time as RFC 3339 to the second, e.g. `2026-11-28T06:30:36Z`.
pub fn utc_now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `unix_secs` seconds after the epoch, for tests.
#[cfg(test)]
fn at(unix_secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_795_847_436)), "2026-11-28T06:30:36Z");
    }
}
