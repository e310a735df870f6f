//! When the daemon backs up: a systemd `OnCalendar=`-style expression (a useful subset) or a
//! fixed interval.
//!
//! Accepted calendar forms, in local time like systemd's timers:
//! - the shorthands `minutely`, `hourly`, `daily`, `weekly`, `monthly`;
//! - `[WEEKDAYS] [*-*-DAYS] HOURS:MINUTES[:SECONDS]`, for example `*-*-* 02:00:00`,
//!   `Mon..Fri 22:30`, `*-*-01 03:00`, `*-*-* 0/6:00:00` (every 6 hours). Each number field is
//!   `*`, a comma list of `N`, `N..M` or `N/STEP`.
//!
//! Intervals are `every <span>`, for example `every 6h` or `every 30 minutes`.
//! Anything else is an error that says what is accepted: never a silent "never", and never a
//! panic, whatever the bytes (the config is parsed at every start). docs/configuration.md lists
//! the same subset for users.

use std::fmt;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};
use serde::{Deserialize, Serialize};

/// A parsed schedule; keeps its text for messages and round trips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Calendar(Calendar),
    Interval(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Calendar {
    /// Allowed weekdays (Monday = bit 0); all when `None`.
    weekdays: Option<u8>,
    /// Allowed days of the month; all when `None`.
    days: Option<Vec<u8>>,
    hours: Vec<u8>,
    minutes: Vec<u8>,
    seconds: Vec<u8>,
}

/// A schedule that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "schedule `{text}`: {reason}; write an OnCalendar expression such as `daily`, \
     `*-*-* 02:00:00` or `Mon..Fri 22:30`, or an interval such as `every 6h`"
)]
pub struct ScheduleError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Schedule {
    /// Every day at `hour:minute` local time (`*-*-* HH:MM:00`).
    pub fn daily_at(hour: u8, minute: u8) -> Self {
        let (hour, minute) = (hour.min(23), minute.min(59));
        Self {
            text: format!("*-*-* {hour:02}:{minute:02}:00"),
            kind: Kind::Calendar(Calendar {
                weekdays: None,
                days: None,
                hours: vec![hour],
                minutes: vec![minute],
                seconds: vec![0],
            }),
        }
    }

    /// The first time strictly after `now` (in `tz` for calendar expressions), or `last` plus
    /// the interval for intervals: `now` when that is past, or when nothing ever ran (a host
    /// without any backup should not wait a whole interval for its first one).
    pub fn next_after(&self, now: Timestamp, last: Option<Timestamp>, tz: &TimeZone) -> Timestamp {
        match &self.kind {
            Kind::Interval(every) => {
                let every =
                    jiff::SignedDuration::try_from(*every).unwrap_or(jiff::SignedDuration::MAX);
                let Some(last) = last else { return now };
                last.checked_add(every).unwrap_or(Timestamp::MAX).max(now)
            }
            Kind::Calendar(calendar) => calendar.next_after(now, tz),
        }
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The calendar expression for a systemd timer, when this is one (intervals have none).
    pub fn on_calendar(&self) -> Option<&str> {
        matches!(self.kind, Kind::Calendar(_)).then_some(self.text.as_str())
    }
}

impl Calendar {
    fn next_after(&self, now: Timestamp, tz: &TimeZone) -> Timestamp {
        let start = now.to_zoned(tz.clone());
        let mut date = start.date();
        // Day-of-month lists can skip a month (31st); 400 days covers every combination.
        for _ in 0..400 {
            if self.matches(date) {
                for &h in &self.hours {
                    for &m in &self.minutes {
                        for &s in &self.seconds {
                            let civil =
                                date.at(h.cast_signed(), m.cast_signed(), s.cast_signed(), 0);
                            if let Some(at) = instant(civil, tz)
                                && at > now
                            {
                                return at;
                            }
                        }
                    }
                }
            }
            match date.checked_add(1.day()) {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        Timestamp::MAX
    }

    fn matches(&self, date: Date) -> bool {
        let weekday_ok = self
            .weekdays
            .is_none_or(|mask| mask & (1 << (date.weekday().to_monday_zero_offset())) != 0);
        let day_ok = self
            .days
            .as_ref()
            .is_none_or(|days| days.contains(&date.day().cast_unsigned()));
        weekday_ok && day_ok
    }
}

/// When local time `civil` happens in `tz`. A time the clocks skip (spring forward: 02:30 on
/// the day 02:00 jumps to 03:00) runs at the first instant after the gap, like cron, instead of
/// being skipped for the day; a time they repeat (fall back) runs at its first occurrence only.
/// Both keep the instants in the order of the local times, so the first match is the earliest.
fn instant(civil: jiff::civil::DateTime, tz: &TimeZone) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(civil);
    match ambiguous.offset() {
        jiff::tz::AmbiguousOffset::Gap { .. } => {
            let before_gap = ambiguous.earlier().ok()?;
            match tz.following(before_gap).next() {
                Some(transition) => Some(transition.timestamp()),
                None => ambiguous.compatible().ok(),
            }
        }
        jiff::tz::AmbiguousOffset::Unambiguous { .. } | jiff::tz::AmbiguousOffset::Fold { .. } => {
            ambiguous.earlier().ok()
        }
    }
}

impl TryFrom<String> for Schedule {
    type Error = ScheduleError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let error = |reason: &str| ScheduleError {
            text: text.clone(),
            reason: reason.to_owned(),
        };
        let trimmed = text.trim();
        let kind = if let Some(span) = trimmed.strip_prefix("every ") {
            let span: jiff::Span = span
                .trim()
                .parse()
                .map_err(|e| error(&format!("`{span}` is not a span: {e}")))?;
            let duration = span
                .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .ok()
                .and_then(|d| Duration::try_from(d).ok())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| error("the interval must be positive"))?;
            Kind::Interval(duration)
        } else {
            Kind::Calendar(parse_calendar(trimmed).map_err(|reason| error(&reason))?)
        };
        Ok(Self { text, kind })
    }
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::try_from(text.to_owned())
    }
}

impl From<Schedule> for String {
    fn from(value: Schedule) -> Self {
        value.text
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_calendar(text: &str) -> Result<Calendar, String> {
    let expanded = match text {
        "minutely" => "*-*-* *:*:00",
        "hourly" => "*-*-* *:00:00",
        "daily" => "*-*-* 00:00:00",
        "weekly" => "Mon *-*-* 00:00:00",
        "monthly" => "*-*-01 00:00:00",
        other => other,
    };
    let mut words: Vec<&str> = expanded.split_whitespace().collect();
    if words.is_empty() {
        return Err("it is empty".into());
    }
    let weekdays = if words[0].chars().next().is_some_and(char::is_alphabetic) {
        Some(parse_weekdays(words.remove(0))?)
    } else {
        None
    };
    let (date, time) = match words.as_slice() {
        [time] => (None, *time),
        [date, time] => (Some(*date), *time),
        [] => return Err("a time such as 02:00 is missing".into()),
        _ => return Err("too many parts".into()),
    };
    let days = match date {
        None => None,
        Some(date) => {
            let parts: Vec<&str> = date.split('-').collect();
            let [year, month, day] = parts.as_slice() else {
                return Err(format!("date `{date}` is not YEAR-MONTH-DAY"));
            };
            if *year != "*" || *month != "*" {
                return Err("only `*` is supported for the year and month".into());
            }
            if *day == "*" {
                None
            } else {
                Some(parse_field(day, 1, 31, "day")?)
            }
        }
    };
    let fields: Vec<&str> = time.split(':').collect();
    let (hours, minutes, seconds) = match fields.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(format!("time `{time}` is not HOURS:MINUTES[:SECONDS]")),
    };
    Ok(Calendar {
        weekdays,
        days,
        hours: parse_field(hours, 0, 23, "hour")?,
        minutes: parse_field(minutes, 0, 59, "minute")?,
        seconds: parse_field(seconds, 0, 59, "second")?,
    })
}

/// `*`, or a comma list of `N`, `N..M`, `N/STEP`, `*/STEP`: the sorted, distinct values.
fn parse_field(text: &str, min: u8, max: u8, what: &str) -> Result<Vec<u8>, String> {
    let number = |s: &str| -> Result<u8, String> {
        s.parse::<u8>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("{what} `{s}` is not a number from {min} to {max}"))
    };
    let mut values = Vec::new();
    for item in text.split(',') {
        if item == "*" {
            values.extend(min..=max);
        } else if let Some((start, step)) = item.split_once('/') {
            let start = if start == "*" { min } else { number(start)? };
            let step: usize = step
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("{what} step `{step}` is not a positive number"))?;
            values.extend((start..=max).step_by(step));
        } else if let Some((a, b)) = item.split_once("..") {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("{what} range `{item}` runs backwards"));
            }
            values.extend(a..=b);
        } else {
            values.push(number(item)?);
        }
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

fn parse_weekdays(text: &str) -> Result<u8, String> {
    // Whole-word comparisons only: slicing by bytes would split a multi-byte character
    // (`ab€`) and panic while loading the config.
    let day = |s: &str| -> Result<u8, String> {
        let lower = s.to_ascii_lowercase();
        WEEKDAYS
            .iter()
            .position(|(short, full)| lower == *short || lower == *full)
            .and_then(|i| u8::try_from(i).ok())
            .ok_or_else(|| format!("`{s}` is not a weekday (Mon, Tue, ... Sun)"))
    };
    let mut mask = 0_u8;
    for item in text.split(',') {
        if let Some((a, b)) = item.split_once("..") {
            let (a, b) = (day(a)?, day(b)?);
            if a > b {
                return Err(format!("weekday range `{item}` runs backwards"));
            }
            for d in a..=b {
                mask |= 1 << d;
            }
        } else {
            mask |= 1 << day(item)?;
        }
    }
    Ok(mask)
}

/// Weekdays from Monday: the three-letter abbreviation and the full English name, lower case.
const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expr: &str, now: &str) -> String {
        let schedule: Schedule = expr.parse().unwrap();
        let now: Timestamp = now.parse().unwrap();
        schedule.next_after(now, None, &TimeZone::UTC).to_string()
    }

    #[test]
    fn calendar_expressions() {
        assert_eq!(
            next("*-*-* 02:00:00", "2026-11-22T01:00:00Z"),
            "2026-11-22T02:00:00Z"
        );
        assert_eq!(
            next("*-*-* 02:00:00", "2026-11-22T02:00:00Z"),
            "2026-11-23T02:00:00Z"
        );
        assert_eq!(
            next("daily", "2026-11-22T05:00:00Z"),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(
            next("hourly", "2026-11-22T05:00:01Z"),
            "2026-11-22T06:00:00Z"
        );
        assert_eq!(
            next("minutely", "2026-11-22T05:00:01Z"),
            "2026-11-22T05:01:00Z"
        );
        // 2026-11-22 is a Sunday.
        assert_eq!(
            next("weekly", "2026-11-22T05:00:00Z"),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(
            next("Mon..Fri 22:30", "2026-11-21T23:00:00Z"),
            "2026-11-23T22:30:00Z"
        );
        assert_eq!(
            next("Sat,Sun 08:00", "2026-11-23T00:00:00Z"),
            "2026-11-28T08:00:00Z"
        );
        assert_eq!(
            next("saturday..SUNDAY 08:00", "2026-11-22T05:00:00Z"),
            "2026-11-22T08:00:00Z"
        );
        assert_eq!(
            next("monthly", "2026-11-22T05:00:00Z"),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            next("*-*-31 03:00", "2026-11-22T05:00:00Z"),
            "2026-12-31T03:00:00Z"
        );
        assert_eq!(
            next("*-*-* 0/6:00:00", "2026-11-22T05:00:00Z"),
            "2026-11-22T06:00:00Z"
        );
        assert_eq!(
            next("*-*-* 1,13:15", "2026-11-22T05:00:00Z"),
            "2026-11-22T13:15:00Z"
        );
        assert_eq!(
            next("04:00", "2026-11-22T05:00:00Z"),
            "2026-11-23T04:00:00Z"
        );
    }

    #[test]
    fn daily_at_is_what_it_says() {
        let parsed: Schedule = "*-*-* 02:00:00".parse().unwrap();
        assert_eq!(Schedule::daily_at(2, 0), parsed);
    }

    #[test]
    fn local_time_follows_the_zone() {
        let schedule: Schedule = "*-*-* 02:00:00".parse().unwrap();
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let now: Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        // 02:00 in Berlin in summer is 00:00 UTC.
        assert_eq!(
            schedule.next_after(now, None, &tz).to_string(),
            "2026-07-02T00:00:00Z"
        );
    }

    fn berlin(expr: &str, now: &str) -> String {
        let schedule: Schedule = expr.parse().unwrap();
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let now: Timestamp = now.parse().unwrap();
        schedule.next_after(now, None, &tz).to_string()
    }

    /// 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC), so 02:30 never
    /// happens. It runs at the first instant after the gap (cron runs skipped jobs then;
    /// systemd's timers skip the day, see docs/configuration.md), once, and the next day at
    /// 02:30 CEST again.
    #[test]
    fn a_time_the_clocks_skip_runs_when_the_gap_ends() {
        assert_eq!(
            berlin("*-*-* 02:30:00", "2026-03-28T12:00:00Z"),
            "2026-03-29T01:00:00Z"
        );
        assert_eq!(
            berlin("*-*-* 02:30:00", "2026-03-29T01:00:00Z"),
            "2026-03-30T00:30:00Z"
        );
        // Every time in the gap (02:10, 02:30) coalesces into one run at 03:00 CEST; the
        // 03:10 and 03:30 after it are real times and keep their order.
        let expr = "*-*-* 2,3:10,30";
        assert_eq!(berlin(expr, "2026-03-29T00:00:00Z"), "2026-03-29T01:00:00Z");
        assert_eq!(berlin(expr, "2026-03-29T01:00:00Z"), "2026-03-29T01:10:00Z");
        assert_eq!(berlin(expr, "2026-03-29T01:10:00Z"), "2026-03-29T01:30:00Z");
        assert_eq!(berlin(expr, "2026-03-29T01:30:00Z"), "2026-03-30T00:10:00Z");
        // The day before and after: 02:30 is the local time it says.
        assert_eq!(
            berlin("*-*-* 02:30:00", "2026-03-27T12:00:00Z"),
            "2026-03-28T01:30:00Z"
        );
    }

    /// 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice
    /// (00:30 and 01:30 UTC). It runs once, at the first; a run still going or finished
    /// between the two is not followed by another at the second.
    #[test]
    fn a_time_the_clocks_repeat_runs_once() {
        assert_eq!(
            berlin("*-*-* 02:30:00", "2026-10-24T12:00:00Z"),
            "2026-10-25T00:30:00Z"
        );
        for after_the_first in ["2026-10-25T00:30:00Z", "2026-10-25T01:15:00Z"] {
            assert_eq!(
                berlin("*-*-* 02:30:00", after_the_first),
                "2026-10-26T01:30:00Z",
                "after {after_the_first}"
            );
        }
        // Hourly at :30: 01:30 CEST, 02:30 CEST, then 03:30 CET; no second 02:30.
        assert_eq!(
            berlin("*:30", "2026-10-25T00:00:00Z"),
            "2026-10-25T00:30:00Z"
        );
        assert_eq!(
            berlin("*:30", "2026-10-25T00:30:00Z"),
            "2026-10-25T02:30:00Z"
        );
    }

    #[test]
    fn intervals_count_from_the_last_run() {
        let schedule: Schedule = "every 6h".parse().unwrap();
        assert_eq!(schedule.on_calendar(), None);
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let tz = TimeZone::UTC;
        assert_eq!(schedule.next_after(now, None, &tz), now);
        let last: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        assert_eq!(
            schedule.next_after(now, Some(last), &tz).to_string(),
            "2026-11-22T16:00:00Z"
        );
        // Overdue: now, not in the past.
        let old: Timestamp = "2026-11-01T10:00:00Z".parse().unwrap();
        assert_eq!(schedule.next_after(now, Some(old), &tz), now);
        assert!("every 30 minutes".parse::<Schedule>().is_ok());
    }

    #[test]
    fn non_ascii_is_an_error_not_a_panic() {
        for bad in [
            "ab€ 02:00",
            "€€€ 02:00",
            "Mon€ 02:00",
            "Mön..Fri 02:00",
            "Montag 02:00",
            "*-*-* 0２:00",
            "*-*-€ 02:00",
            "every 6€",
            "ŞŞŞ",
            "é",
        ] {
            let err = bad.parse::<Schedule>().unwrap_err();
            assert!(err.to_string().contains("every 6h"), "{bad}: {err}");
        }
    }

    /// Property-style: thousands of strings built from the parser's own vocabulary, multi-byte
    /// characters and stray separators; parsing and computing the next run must never panic,
    /// and an accepted calendar's next run lies in the future.
    #[test]
    fn arbitrary_input_never_panics() {
        const PIECES: [&str; 34] = [
            "*", "-", ":", ",", "..", "/", " ", "\t", "0", "1", "2", "5", "9", "23", "59", "60",
            "99", "300", "Mon", "fri", "Sunday", "every ", "6h", "daily", "€", "ä", "ß", "日",
            "🦀", "\u{301}", "ab", "x", "  ", "*-*-*",
        ];
        let now: Timestamp = "2026-11-22T05:00:00Z".parse().unwrap();
        // A fixed xorshift sequence: reproducible, no extra dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next_random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = next_random() % 8;
            let text: String = (0..len)
                .map(|_| {
                    let index = usize::try_from(next_random() % PIECES.len() as u64).unwrap();
                    PIECES[index]
                })
                .collect();
            if let Ok(schedule) = text.parse::<Schedule>() {
                accepted += 1;
                assert!(
                    schedule.next_after(now, None, &TimeZone::UTC) >= now,
                    "{text:?}"
                );
            }
        }
        assert!(
            accepted > 0,
            "the generator never produced a valid schedule"
        );
    }

    #[test]
    fn the_text_is_kept_for_messages_and_timers() {
        let schedule: Schedule = "Mon..Fri 22:30".parse().unwrap();
        assert_eq!(schedule.as_str(), "Mon..Fri 22:30");
        assert_eq!(schedule.to_string(), "Mon..Fri 22:30");
        assert_eq!(String::from(schedule.clone()), "Mon..Fri 22:30");
        assert_eq!(schedule.on_calendar(), Some("Mon..Fri 22:30"));
        let json = serde_json::to_string(&schedule).unwrap();
        assert_eq!(json, "\"Mon..Fri 22:30\"");
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), schedule);
    }

    #[test]
    fn field_edges() {
        // A one-value range, overlapping weekday lists, steps from a start and from `*`.
        assert_eq!(
            next("*-*-* 5..5:00", "2026-11-22T05:00:00Z"),
            "2026-11-23T05:00:00Z"
        );
        // 2026-11-22 is a Sunday; Sun..Sun and an overlapping list keep every named day.
        assert_eq!(
            next("Sun..Sun 08:00", "2026-11-22T05:00:00Z"),
            "2026-11-22T08:00:00Z"
        );
        assert_eq!(
            next("Mon..Wed,Tue 08:00", "2026-11-23T09:00:00Z"),
            "2026-11-24T08:00:00Z"
        );
        assert_eq!(
            next("*-*-* *:*/20", "2026-11-22T05:00:01Z"),
            "2026-11-22T05:20:00Z"
        );
        assert_eq!(
            next("*-*-* *:10/20", "2026-11-22T05:30:00Z"),
            "2026-11-22T05:50:00Z"
        );
        assert_eq!(
            next("*-*-* 23:59:59", "2026-11-22T23:59:58Z"),
            "2026-11-22T23:59:59Z"
        );
        assert_eq!(
            next("*-*-1,15 00:00", "2026-11-02T00:00:00Z"),
            "2026-11-15T00:00:00Z"
        );
        for bad in [
            "*-*-* */0:00",
            "*-*-* 1/x:00",
            "*-*-* 24:00",
            "*-*-* 02:60",
            "*-*-* 02:00:60",
            "*-*-0 02:00",
            "*-*-32 02:00",
            "*-12-* 02:00",
            "Fri..Mon 02:00",
            "Mon *-*-* 02:00 extra",
            "Mon",
            "*-* 02:00",
            "*-*-* 02",
            "every -1h",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad} was accepted");
        }
        for (bad, reason) in [
            ("Mon", "a time such as 02:00 is missing"),
            ("Mon *-*-* 02:00 extra", "too many parts"),
            ("*-*-* 5..2:00", "hour range `5..2` runs backwards"),
            ("*-*-* */0:00", "hour step `0` is not a positive number"),
        ] {
            let err = bad.parse::<Schedule>().unwrap_err();
            assert_eq!(err.reason, reason, "{bad}");
        }
    }

    #[test]
    fn errors_say_what_is_accepted() {
        for bad in [
            "",
            "sometimes",
            "*-*-* 25:00",
            "2026-*-* 02:00",
            "Mon..Fun 02:00",
            "every 0s",
            "*-*-* 5..2:00",
        ] {
            let err = bad.parse::<Schedule>().unwrap_err();
            assert!(err.to_string().contains("every 6h"), "{bad}: {err}");
        }
    }
}
