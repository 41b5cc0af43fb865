//! The one timestamp type: a UTC instant, stored and shown as RFC 3339 with milliseconds and a
//! `Z` (`2026-12-02T04:05:06.789Z`). That text sorts as time, so SQL compares stored values
//! as strings in both dialects; a stored value that does not parse is an error when read.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// An instant as the database stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(Utc::now())
    }

    /// `duration` before now.
    pub fn ago(duration: Duration) -> Timestamp {
        let duration = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        Timestamp(Utc::now() - duration)
    }

    /// `duration` after `self` (the far future when that is past the calendar's end).
    pub fn after(self, duration: Duration) -> Timestamp {
        chrono::Duration::from_std(duration)
            .ok()
            .and_then(|d| self.0.checked_add_signed(d))
            .map_or(Timestamp(DateTime::<Utc>::MAX_UTC), Timestamp)
    }

    /// Seconds from `self` to `later` (0 when `later` is earlier).
    pub fn seconds_until(self, later: Timestamp) -> f64 {
        ((later.0 - self.0).num_milliseconds().max(0)) as f64 / 1000.0
    }

    /// Whole seconds from `self` to now (0 for a time in the future).
    pub fn seconds_ago(self) -> i64 {
        (Utc::now() - self.0).num_seconds().max(0)
    }

    pub fn as_datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// "2026-11-22 04:50 UTC": to the minute, for a person.
    pub fn minute_utc(self) -> String {
        self.0.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    /// "2026-11-22 04:50:07" (UTC): to the second, for an operator.
    pub fn clock(self) -> String {
        self.0.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// "just now", "42 s ago", "5 min ago", "3 h ago", "2 days ago".
    pub fn relative(self) -> String {
        let s = self.seconds_ago();
        match s {
            0 => "just now".into(),
            1..=119 => format!("{s} s ago"),
            120..=7199 => format!("{} min ago", s / 60),
            7200..=172_799 => format!("{} h ago", s / 3600),
            _ => format!("{} days ago", s / 86_400),
        }
    }
}

/// The stored text of now: what every write binds.
pub fn now() -> String {
    Timestamp::now().to_string()
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl FromStr for Timestamp {
    type Err = chrono::ParseError;

    fn from_str(s: &str) -> Result<Timestamp, Self::Err> {
        Ok(Timestamp(
            DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc),
        ))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

crate::text_column!(Timestamp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_timestamp_reads_back_as_the_same_text() {
        let stored = "2026-12-02T04:05:06.789Z";
        let t: Timestamp = stored.parse().unwrap();
        assert_eq!(t.to_string(), stored);
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{stored}\""));
    }

    #[test]
    fn times_read_as_a_person_expects() {
        let t: Timestamp = "2026-11-22T04:50:07.123Z".parse().unwrap();
        assert_eq!(t.minute_utc(), "2026-11-22 04:50 UTC");
        assert_eq!(t.clock(), "2026-11-22 04:50:07");
        assert_eq!(Timestamp::now().relative(), "just now");
        assert_eq!(
            Timestamp::ago(Duration::from_secs(42)).relative(),
            "42 s ago"
        );
        assert_eq!(
            Timestamp::ago(Duration::from_secs(300)).relative(),
            "5 min ago"
        );
        assert_eq!(
            Timestamp::ago(Duration::from_secs(3 * 3600)).relative(),
            "3 h ago"
        );
        assert_eq!(
            Timestamp::ago(Duration::from_secs(3 * 86_400)).relative(),
            "3 days ago"
        );
    }

    #[test]
    fn text_that_is_not_a_timestamp_is_refused() {
        assert!("2026".parse::<Timestamp>().is_err());
        assert!("".parse::<Timestamp>().is_err());
    }

    #[test]
    fn stored_text_sorts_as_time() {
        let earlier = Timestamp::ago(Duration::from_secs(90));
        let later = Timestamp::now();
        assert!(earlier.to_string() < later.to_string());
        let gap = earlier.seconds_until(later);
        assert!((89.0..=91.0).contains(&gap), "{gap}");
        assert_eq!(later.seconds_until(earlier), 0.0);
    }
}
