//! Scores grouped by a column (CSV) or key (JSONL) that an analyst names: per-value groups, or a
//! time series when the column holds dates.
//!
//! Items arrive one at a time in input order, and an input may have any number of rows, so
//! [`GroupAggregator`] keeps memory bounded by fixed caps rather than by the input:
//!
//! - Whether the column is a date column is only known at the end (at least 95 % of its non-empty
//!   cells must be dates), so both tables are kept while streaming, each capped.
//! - The value table holds exact statistics for the first [`MAX_VALUES`] distinct values; a value
//!   first seen after that goes into one untracked aggregate reported inside `other`, and the
//!   grouping says `truncated`. Real grouping columns (product, region, channel) have their largest
//!   groups appear early and often, so the 50 groups shown are almost always exact; a column with
//!   more distinct values than that is an id, not a category. Values are also cut to
//!   [`MAX_KEY_BYTES`] (marked with `…`), because a single cell may be megabytes long.
//! - The date table is keyed by calendar day (at most [`MAX_DAYS`] days, 270+ years of daily
//!   data); weeks and months are built from it at the end, which is possible without keeping items
//!   because each group keeps integer sums that merge exactly. Compounds carry 4 decimals, so the
//!   sum and the sum of squares of `compound · 10⁴` give the variance with no cancellation error,
//!   and the sum of `compound · 2⁶⁶` (an integer for every such f64) gives the mean of the f64
//!   values exactly, rounded once, as Python's `statistics.mean` does: a mean that falls on a
//!   half of the 4th decimal then rounds the same way as in Python, whatever the input order.
//! - Slash dates (`03/04/2026`) are month-first in the US and day-first elsewhere; one cell cannot
//!   tell, the column can. They are kept under their raw (first, second, year) fields and read
//!   day-first at the end if any first field is above 12, else month-first.
//!
//! A timestamp is grouped by the calendar date as written: no time-zone conversion, because the
//! analyst's question is about the day the source recorded, and an offset-less timestamp has no
//! zone to convert from anyway. The time series lists only the periods that have items; gaps are
//! not filled with zeros, because a zero-count period has no mean to plot and would stand for
//! "no data" rather than "neutral".
//!
//! The 95 % interval of a group's mean compound is Student's t interval, as an analyst would get
//! from scipy or a spreadsheet, clamped to the compound's own range [-1, 1].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use super::exact::{fixed, fixed_mean};
use super::pytext;
use super::report::{Label, LabelCounts};

/// Distinct values with exact statistics; later new values are summed into `other`.
pub const MAX_VALUES: usize = 10_000;
/// Value groups listed; the rest are summed into `other`.
pub const TOP_GROUPS: usize = 50;
/// Distinct days (or raw slash dates) tracked; dates beyond are counted as unparsed.
pub const MAX_DAYS: usize = 100_000;
/// Longest group key kept, in bytes; longer values are cut at a character boundary.
pub const MAX_KEY_BYTES: usize = 256;
/// Share of non-empty cells, in percent, that must be dates for a time series.
pub const DATE_PERCENT: u64 = 95;

/// Length of the time-series periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

/// A period name that is none of `day`, `week`, `month`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPeriod(pub String);

impl fmt::Display for UnknownPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown period {:?}: choose one of day, week, month",
            self.0
        )
    }
}

impl std::error::Error for UnknownPeriod {}

impl FromStr for Period {
    type Err = UnknownPeriod;

    fn from_str(s: &str) -> Result<Period, UnknownPeriod> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            _ => Err(UnknownPeriod(s.to_owned())),
        }
    }
}

/// What the groups are keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupKind {
    /// One group per distinct cell value.
    Values,
    /// One group per day, ISO week or month.
    Dates,
}

/// Scores of the items that share a value or a period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Group {
    /// The value as written (trimmed), or the period: `2026-03-14`, `2026-W11`, `2026-03`.
    pub key: String,
    pub count: u64,
    /// Mean compound, 4 decimals.
    pub mean_compound: f64,
    /// Student's t 95 % interval of the mean, clamped to [-1, 1], 4 decimals; none below 2 items.
    pub ci95: Option<[f64; 2]>,
    pub labels: LabelCounts,
}

/// Scores grouped by a column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grouping {
    pub kind: GroupKind,
    /// The period of a time series; none for values.
    pub period: Option<Period>,
    /// Values: the 50 largest groups (largest first, equal counts by key). Dates: every period
    /// that has items, oldest first.
    pub groups: Vec<Group>,
    /// Values: every item not in `groups`, under the key `other`; none when there is none.
    pub other: Option<Group>,
    /// Items whose cell was empty.
    pub missing: u64,
    /// Dates: non-empty cells that are no date (or a date past the day table's cap); in no group.
    pub unparsed: u64,
    /// Distinct non-empty values: exact up to 10,000, a lower bound when `truncated` by values.
    pub distinct: u64,
    /// Values: the value table was full, so some values are only in `other`. Dates: the day
    /// table was full, so some dates are only in `unparsed`.
    pub truncated: bool,
}

/// A compound in the integer forms that [`Stats`] sums.
#[derive(Clone, Copy)]
struct Scored {
    /// `compound · 10⁴`.
    ticks: i128,
    /// `compound · 2⁶⁶`.
    fixed: i128,
    label: Label,
}

impl Scored {
    fn new(compound: f64) -> Scored {
        Scored {
            ticks: ((compound * 1e4).round() as i128).clamp(-10_000, 10_000),
            fixed: fixed(compound),
            label: Label::of(compound),
        }
    }
}

/// Exact sums of a set of compounds.
#[derive(Clone, Debug, Default)]
struct Stats {
    count: u64,
    fixed: i128,
    ticks: i128,
    ticks_sq: i128,
    labels: LabelCounts,
}

impl Stats {
    fn add(&mut self, item: Scored) {
        self.count += 1;
        self.fixed += item.fixed;
        self.ticks += item.ticks;
        self.ticks_sq += item.ticks * item.ticks;
        match item.label {
            Label::Positive => self.labels.positive += 1,
            Label::Neutral => self.labels.neutral += 1,
            Label::Negative => self.labels.negative += 1,
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.fixed += other.fixed;
        self.ticks += other.ticks;
        self.ticks_sq += other.ticks_sq;
        self.labels.positive += other.labels.positive;
        self.labels.neutral += other.labels.neutral;
        self.labels.negative += other.labels.negative;
    }

    fn group(&self, key: String) -> Group {
        let n = self.count as i128;
        let mean = fixed_mean(self.fixed, self.count);
        let ci95 = (self.count >= 2).then(|| {
            // n·Σx² − (Σx)² is exact in integers, so a near-constant group gets no negative or
            // noisy variance.
            let centred = n * self.ticks_sq - self.ticks * self.ticks;
            let sd = (centred as f64 / (n * (n - 1)) as f64).sqrt() / 1e4;
            let half = t_975(self.count - 1) * sd / (self.count as f64).sqrt();
            [
                pytext::round((mean - half).max(-1.0), 4),
                pytext::round((mean + half).min(1.0), 4),
            ]
        });
        Group {
            key,
            count: self.count,
            mean_compound: pytext::round(mean, 4),
            ci95,
            labels: self.labels.clone(),
        }
    }
}

/// Two-sided 95 % quantile of Student's t, t(0.975, df), df ≥ 1.
///
/// Small df are where approximations are worst and intervals widest, so df 1..=30 use the
/// published table; above, the Cornish–Fisher expansion in 1/df (Abramowitz & Stegun 26.7.5)
/// is within 10⁻⁶ of the exact value.
fn t_975(df: u64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706204736,
        4.302652730,
        3.182446305,
        2.776445105,
        2.570581836,
        2.446911851,
        2.364624252,
        2.306004135,
        2.262157163,
        2.228138852,
        2.200985160,
        2.178812830,
        2.160368656,
        2.144786688,
        2.131449546,
        2.119905299,
        2.109815578,
        2.100922040,
        2.093024054,
        2.085963447,
        2.079613845,
        2.073873068,
        2.068657610,
        2.063898562,
        2.059538553,
        2.055529439,
        2.051830516,
        2.048407142,
        2.045229642,
        2.042272456,
    ];
    if (1..=30).contains(&df) {
        return TABLE[df as usize - 1];
    }
    const Z: f64 = 1.959963984540054;
    let v = df.max(1) as f64;
    let z2 = Z * Z;
    let g1 = (z2 + 1.0) * Z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * Z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * Z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * Z / 92160.0;
    Z + (g1 + (g2 + (g3 + g4 / v) / v) / v) / v
}

/// Where a date cell goes in the day table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum DateKey {
    Day(NaiveDate),
    /// `first/second/year`, order decided at the end.
    Slash(u8, u8, i32),
}

/// Groups scored items by a column, in bounded memory.
pub struct GroupAggregator {
    forced: Option<Period>,
    missing: u64,
    non_empty: u64,
    values: HashMap<String, Stats>,
    /// Items whose value was first seen after `values` was full.
    untracked: Stats,
    values_full: bool,
    dates: HashMap<DateKey, Stats>,
    /// Date cells whose day came after `dates` was full.
    date_overflow: u64,
}

impl GroupAggregator {
    /// `period` forces the time series' period; `None` chooses it from the span of the dates. It
    /// has no effect when the column turns out not to be dates.
    pub fn new(period: Option<Period>) -> Self {
        GroupAggregator {
            forced: period,
            missing: 0,
            non_empty: 0,
            values: HashMap::new(),
            untracked: Stats::default(),
            values_full: false,
            dates: HashMap::new(),
            date_overflow: 0,
        }
    }

    /// Add the next item: its cell (trimmed here; empty means missing) and its compound.
    pub fn push(&mut self, cell: &str, compound: f64) {
        let cell = cell.trim();
        if cell.is_empty() {
            self.missing += 1;
            return;
        }
        self.non_empty += 1;
        let item = Scored::new(compound);

        let cut;
        let key = if cell.len() > MAX_KEY_BYTES {
            cut = format!("{}…", &cell[..cell.floor_char_boundary(MAX_KEY_BYTES)]);
            &cut
        } else {
            cell
        };
        if let Some(s) = self.values.get_mut(key) {
            s.add(item);
        } else if self.values.len() < MAX_VALUES {
            self.values.insert(key.to_owned(), Stats::default());
            self.values.get_mut(key).expect("just inserted").add(item);
        } else {
            self.values_full = true;
            self.untracked.add(item);
        }

        if let Some(date) = parse_date(cell) {
            let n = self.dates.len();
            match self.dates.get_mut(&date) {
                Some(s) => s.add(item),
                None if n < MAX_DAYS => self.dates.entry(date).or_default().add(item),
                None => self.date_overflow += 1,
            }
        }
    }

    pub fn finish(self) -> Grouping {
        let distinct = self.values.len() as u64;
        // Day-first as soon as one slash date cannot be month-first.
        let day_first = self
            .dates
            .keys()
            .any(|k| matches!(k, DateKey::Slash(first, _, _) if *first > 12));
        let mut days: BTreeMap<NaiveDate, Stats> = BTreeMap::new();
        let mut dated = self.date_overflow;
        for (key, stats) in &self.dates {
            let day = match *key {
                DateKey::Day(d) => Some(d),
                DateKey::Slash(a, b, y) if day_first => ymd(y, b as u32, a as u32),
                DateKey::Slash(a, b, y) => ymd(y, a as u32, b as u32),
            };
            if let Some(day) = day {
                dated += stats.count;
                days.entry(day).or_default().merge(stats);
            }
        }

        let mostly_dates = dated as u128 * 100 >= self.non_empty as u128 * DATE_PERCENT as u128;
        // No day at all (only dates past the cap) leaves no series to show.
        if mostly_dates
            && let (Some(&first), Some(&last)) = (days.keys().next(), days.keys().next_back())
        {
            let period = self.forced.unwrap_or(match (last - first).num_days() {
                ..=92 => Period::Day,
                93..=1096 => Period::Week,
                _ => Period::Month,
            });
            let mut periods: BTreeMap<NaiveDate, Stats> = BTreeMap::new();
            let mut in_groups = 0;
            for (day, stats) in &days {
                in_groups += stats.count;
                periods
                    .entry(period_start(*day, period))
                    .or_default()
                    .merge(stats);
            }
            return Grouping {
                kind: GroupKind::Dates,
                period: Some(period),
                groups: periods
                    .iter()
                    .map(|(start, s)| s.group(period_key(*start, period)))
                    .collect(),
                other: None,
                missing: self.missing,
                unparsed: self.non_empty - in_groups,
                distinct,
                truncated: self.date_overflow > 0,
            };
        }

        let mut ranked: Vec<(String, Stats)> = self.values.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        let mut other = self.untracked;
        for (_, s) in ranked.iter().skip(TOP_GROUPS) {
            other.merge(s);
        }
        ranked.truncate(TOP_GROUPS);
        Grouping {
            kind: GroupKind::Values,
            period: None,
            groups: ranked.into_iter().map(|(k, s)| s.group(k)).collect(),
            other: (other.count > 0).then(|| other.group("other".to_owned())),
            missing: self.missing,
            unparsed: 0,
            distinct,
            truncated: self.values_full,
        }
    }
}

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// First day of the period that holds `day`.
fn period_start(day: NaiveDate, period: Period) -> NaiveDate {
    match period {
        Period::Day => day,
        Period::Week => day - chrono::Days::new(day.weekday().num_days_from_monday() as u64),
        Period::Month => day.with_day(1).expect("day 1 exists"),
    }
}

fn period_key(start: NaiveDate, period: Period) -> String {
    match period {
        Period::Day => format!(
            "{:04}-{:02}-{:02}",
            start.year(),
            start.month(),
            start.day()
        ),
        Period::Week => {
            let w = start.iso_week();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        Period::Month => format!("{:04}-{:02}", start.year(), start.month()),
    }
}

/// A cursor over the ASCII structure of a date cell.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += hit as usize;
        hit
    }

    fn spaces(&mut self) -> usize {
        let start = self.i;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        self.i - start
    }

    /// A whole run of digits, of `min..=max` digits: `123` never reads as `12` then `3`.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let len = self.i - start;
        if len < min || len > max {
            return None;
        }
        Some(
            self.b[start..self.i]
                .iter()
                .fold(0, |n, &c| n * 10 + (c - b'0') as u32),
        )
    }

    /// A whole run of ASCII letters, lower-cased.
    fn word(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        self.b[start..self.i]
            .iter()
            .map(|c| c.to_ascii_lowercase() as char)
            .collect()
    }
}

/// Read a cell as a date if it is one of the forms that CSV exports and APIs write:
/// ISO 8601 (`2026-03-14`, `2026-03-14T10:05:00.5+01:00`, a space for the `T`), `2026/03/14`,
/// `14.03.2026`, slash dates (`03/14/2026`, `14/03/2026`, also with dashes), month names (`Mar 14, 2026`,
/// `14 Mar 2026`, `March 14th, 2026`, `14-Mar-2026`) and RFC 2822 (`Sat, 14 Mar 2026 10:05:00
/// +0000`), each with an optional time. Anything else, trailing text included, is no date.
fn parse_date(cell: &str) -> Option<DateKey> {
    let mut c = Cursor {
        b: cell.as_bytes(),
        i: 0,
    };
    if c.peek()?.is_ascii_digit() {
        let start = c.i;
        let first = c.number(1, 4)?;
        let len = c.i - start;
        let sep = c.peek()?;
        c.i += 1;
        return match (len, sep) {
            (4, b'-' | b'/') => {
                let m = c.number(1, 2)?;
                if !c.eat(sep) {
                    return None;
                }
                let d = c.number(1, 2)?;
                time_tail(&mut c, true)?;
                ymd(first as i32, m, d).map(DateKey::Day)
            }
            (1 | 2, b'.') => {
                let m = c.number(1, 2)?;
                if !c.eat(b'.') {
                    return None;
                }
                let y = c.number(4, 4)?;
                time_tail(&mut c, false)?;
                ymd(y as i32, m, first).map(DateKey::Day)
            }
            (1 | 2, b'/' | b'-') if c.peek().is_some_and(|b| b.is_ascii_digit()) => {
                let second = c.number(1, 2)?;
                if !c.eat(sep) {
                    return None;
                }
                let y = c.number(4, 4)? as i32;
                time_tail(&mut c, false)?;
                // Valid read one way or the other; the column decides which at the end.
                (ymd(y, first, second).is_some() || ymd(y, second, first).is_some())
                    .then_some(DateKey::Slash(first as u8, second as u8, y))
            }
            (1 | 2, b' ' | b'-') => {
                c.i = start;
                day_month_year(&mut c, None)
            }
            _ => None,
        };
    }
    let word = c.word();
    if let Some(weekday) = weekday(&word) {
        c.eat(b',');
        c.spaces();
        if c.peek()?.is_ascii_digit() {
            return day_month_year(&mut c, Some(weekday));
        }
        let word = c.word();
        return month_day_year(&mut c, month(&word)?, Some(weekday));
    }
    month_day_year(&mut c, month(&word)?, None)
}

/// `14 Mar 2026`, `14-Mar-2026`, `14th March 2026`, then an optional time.
fn day_month_year(c: &mut Cursor, weekday: Option<Weekday>) -> Option<DateKey> {
    let d = c.number(1, 2)?;
    ordinal(c);
    let dash = c.eat(b'-');
    if !dash && c.spaces() == 0 {
        return None;
    }
    let m = month(&c.word())?;
    c.eat(b'.');
    if dash {
        if !c.eat(b'-') {
            return None;
        }
    } else {
        c.eat(b',');
        if c.spaces() == 0 {
            return None;
        }
    }
    year_and_time(c, m, d, weekday)
}

/// `Mar 14, 2026`, `March 14th 2026`, `Mar. 14, 2026`, then an optional time.
fn month_day_year(c: &mut Cursor, m: u32, weekday: Option<Weekday>) -> Option<DateKey> {
    c.eat(b'.');
    if c.spaces() == 0 {
        return None;
    }
    let d = c.number(1, 2)?;
    ordinal(c);
    c.eat(b',');
    if c.spaces() == 0 {
        return None;
    }
    year_and_time(c, m, d, weekday)
}

/// The end of a date written with its month's name: a four-digit year, an optional time.
fn year_and_time(c: &mut Cursor, m: u32, d: u32, weekday: Option<Weekday>) -> Option<DateKey> {
    let y = c.number(4, 4)?;
    time_tail(c, false)?;
    checked_day(y as i32, m, d, weekday)
}

/// The date, if it exists and falls on the weekday written beside it: a wrong weekday means the
/// cell is not the date it seems to be.
fn checked_day(y: i32, m: u32, d: u32, weekday: Option<Weekday>) -> Option<DateKey> {
    let day = ymd(y, m, d)?;
    (weekday.is_none() || weekday == Some(day.weekday())).then_some(DateKey::Day(day))
}

/// Skip `st`, `nd`, `rd`, `th` after a day number.
fn ordinal(c: &mut Cursor) {
    let at = c.i;
    if !matches!(c.word().as_str(), "st" | "nd" | "rd" | "th") {
        c.i = at;
    }
}

/// Nothing, or a separator (`T` where ISO allows it, else spaces), a valid time and an optional
/// zone, and nothing after. The time is checked but not kept: items group by the written date.
fn time_tail(c: &mut Cursor, iso: bool) -> Option<()> {
    if c.done() {
        return Some(());
    }
    if !(iso && (c.eat(b'T') || c.eat(b't'))) {
        c.eat(b',');
        if c.spaces() == 0 {
            return None;
        }
    }
    let h = c.number(1, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let m = c.number(2, 2)?;
    let mut s = 0;
    if c.eat(b':') {
        s = c.number(2, 2)?;
        if c.eat(b'.') || c.eat(b',') {
            c.number(1, 9)?;
        }
    }
    let at = c.i;
    c.spaces();
    let hours = match c.word().as_str() {
        "am" | "pm" => 1..=12,
        _ => {
            c.i = at;
            0..=23
        }
    };
    if !hours.contains(&h) || m > 59 || s > 60 {
        return None;
    }
    c.spaces();
    if c.done() {
        return Some(());
    }
    let at = c.i;
    match c.word().as_str() {
        "z" | "ut" | "utc" | "gmt" if c.done() => return Some(()),
        "ut" | "utc" | "gmt" => {}
        "est" | "edt" | "cst" | "cdt" | "mst" | "mdt" | "pst" | "pdt" if c.done() => {
            return Some(());
        }
        "" => c.i = at,
        _ => return None,
    }
    // `+01:00`, `+0100`, `+01`.
    if !(c.eat(b'+') || c.eat(b'-')) {
        return None;
    }
    let start = c.i;
    let hhmm = c.number(2, 4)?;
    let (oh, om) = match c.i - start {
        2 if c.eat(b':') => (hhmm, c.number(2, 2)?),
        2 => (hhmm, 0),
        4 => (hhmm / 100, hhmm % 100),
        _ => return None,
    };
    (oh <= 23 && om <= 59 && c.done()).then_some(())
}

fn month(word: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if word == "sept" {
        return Some(9);
    }
    NAMES
        .iter()
        .position(|name| word.len() >= 3 && (word == *name || word == &name[..3]))
        .map(|i| i as u32 + 1)
}

fn weekday(word: &str) -> Option<Weekday> {
    const NAMES: [(&str, Weekday); 7] = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];
    NAMES
        .iter()
        .find(|(name, _)| word.len() >= 3 && (word == *name || word == &name[..3]))
        .map(|&(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(period: Option<Period>, items: &[(&str, f64)]) -> Grouping {
        let mut g = GroupAggregator::new(period);
        for &(cell, compound) in items {
            g.push(cell, compound);
        }
        g.finish()
    }

    fn keys(g: &Grouping) -> Vec<&str> {
        g.groups.iter().map(|g| g.key.as_str()).collect()
    }

    fn day(cell: &str) -> Option<NaiveDate> {
        match parse_date(cell)? {
            DateKey::Day(d) => Some(d),
            DateKey::Slash(..) => None,
        }
    }

    #[test]
    fn the_t_quantile_matches_published_values() {
        for (df, t) in [
            (1, 12.7062),
            (2, 4.3027),
            (10, 2.2281),
            (30, 2.0423),
            (31, 2.0395),
            (40, 2.0211),
            (100, 1.9840),
            (1000, 1.9623),
        ] {
            assert_eq!(pytext::round(t_975(df), 4), t, "df {df}");
        }
        // The expansion must join the table smoothly at df 30 → 31.
        assert!((t_975(31) - 2.039513446).abs() < 1e-6);
    }

    #[test]
    fn a_group_has_its_mean_and_student_t_interval() {
        // n = 4, mean 0.25, s = sqrt(((-0.15)² + (-0.05)² + 0.05² + 0.15²) / 3) = 0.129099,
        // half width = 3.182446 · 0.129099 / 2 = 0.205428.
        let g = group(
            None,
            &[("a", 0.1), ("a", 0.2), ("a", 0.3), ("a", 0.4), ("b", -0.5)],
        );
        let a = &g.groups[0];
        assert_eq!((a.key.as_str(), a.count, a.mean_compound), ("a", 4, 0.25));
        assert_eq!(a.ci95, Some([0.0446, 0.4554]));
        assert_eq!(
            a.labels,
            LabelCounts {
                positive: 4,
                neutral: 0,
                negative: 0
            }
        );
        assert_eq!(g.groups[1].ci95, None, "one item has no interval");
    }

    #[test]
    fn a_mean_on_a_half_of_the_fourth_decimal_rounds_as_python_does() {
        // Compounds from the VADER tweets set whose mean is exactly x.xxxx5 in decimal. Python's
        // round(statistics.mean(...), 4) goes by the f64 values, and so must we: the decimal
        // mean (ticks) would give -0.742 and 0.9137.
        let g = group(
            None,
            &[
                ("a", -0.7717),
                ("a", -0.7124),
                ("b", 0.9367),
                ("b", 0.8908),
                ("c", 0.9379),
                ("c", 0.9482),
            ],
        );
        let means: Vec<f64> = g.groups.iter().map(|g| g.mean_compound).collect();
        assert_eq!(means, [-0.7421, 0.9138, 0.943]);
    }

    #[test]
    fn the_interval_is_clamped_to_the_compound_range() {
        let g = group(None, &[("x", 0.99), ("x", 0.2)]);
        let [lo, hi] = g.groups[0].ci95.unwrap();
        assert_eq!(hi, 1.0);
        assert_eq!(lo, -1.0);
        let g = group(None, &[("x", 0.3), ("x", 0.3), ("x", 0.3)]);
        assert_eq!(g.groups[0].ci95, Some([0.3, 0.3]), "no spread, no width");
    }

    #[test]
    fn value_groups_are_the_fifty_largest_and_the_rest_is_other() {
        let mut g = GroupAggregator::new(None);
        // Value k appears k + 1 times, so 59 is largest and 0..=9 fall outside the 50.
        for k in 0..60 {
            for _ in 0..=k {
                g.push(&format!("v{k}"), -0.5);
            }
        }
        let g = g.finish();
        assert_eq!(g.kind, GroupKind::Values);
        assert_eq!(g.groups.len(), 50);
        assert_eq!((g.groups[0].key.as_str(), g.groups[0].count), ("v59", 60));
        assert_eq!(g.groups[49].key, "v10");
        let other = g.other.unwrap();
        assert_eq!((other.key.as_str(), other.count), ("other", 55));
        assert_eq!(other.labels.negative, 55);
        assert_eq!((g.distinct, g.truncated), (60, false));
    }

    #[test]
    fn keys_are_trimmed_case_sensitive_and_equal_counts_sort_by_key() {
        let g = group(
            None,
            &[
                (" b ", 0.1),
                ("B", 0.1),
                ("a", 0.1),
                ("b", 0.1),
                ("  ", 0.0),
                ("", 0.0),
            ],
        );
        assert_eq!(keys(&g), ["b", "B", "a"]);
        assert_eq!(g.groups[0].count, 2);
        assert_eq!(g.missing, 2);
        assert_eq!(g.other, None);
    }

    #[test]
    fn values_first_seen_after_the_table_is_full_go_to_other() {
        let mut g = GroupAggregator::new(None);
        for k in 0..MAX_VALUES + 5 {
            g.push(&format!("id-{k}"), 0.0);
        }
        g.push("id-0", 0.0); // known values keep counting exactly
        let g = g.finish();
        assert!(g.truncated);
        assert_eq!(g.distinct, MAX_VALUES as u64);
        assert_eq!((g.groups[0].key.as_str(), g.groups[0].count), ("id-0", 2));
        assert_eq!(g.other.unwrap().count, (MAX_VALUES + 5 - TOP_GROUPS) as u64);
    }

    #[test]
    fn long_values_are_cut_and_marked() {
        let long = "é".repeat(200); // 400 bytes
        let g = group(None, &[(&long, 0.0), (&format!("{long}x"), 0.0)]);
        assert_eq!(g.groups.len(), 1);
        assert_eq!(g.groups[0].count, 2);
        assert_eq!(g.groups[0].key, format!("{}…", "é".repeat(128)));
    }

    #[test]
    fn every_supported_date_form_reads_as_the_written_day() {
        let want = NaiveDate::from_ymd_opt(2026, 3, 14);
        for cell in [
            "2026-03-14",
            "2026-03-14T10:05:00",
            "2026-03-14T10:05",
            "2026-03-14T10:05:00.123456Z",
            "2026-03-14t23:59:59,5z",
            "2026-03-14T23:30:00+01:00",
            "2026-03-14T00:30:00-0800",
            "2026-03-14 10:05:00+01",
            "2026-03-14 10:05:00 UTC",
            "2026/03/14",
            "2026/3/14 10:05",
            "14.03.2026",
            "14.3.2026 10:05:00",
            "Mar 14, 2026",
            "Mar. 14, 2026 10:05 PM",
            "March 14, 2026",
            "march 14th 2026",
            "14 Mar 2026",
            "14 March 2026",
            "14-Mar-2026",
            "Sat, 14 Mar 2026 10:05:00 +0000",
            "Sat, 14 Mar 2026 10:05:00 GMT",
            "Saturday, March 14, 2026",
        ] {
            assert_eq!(day(cell), want, "{cell}");
        }
        assert_eq!(
            parse_date("03/14/2026 10:05 AM"),
            Some(DateKey::Slash(3, 14, 2026))
        );
        assert_eq!(parse_date("14-03-2026"), Some(DateKey::Slash(14, 3, 2026)));
    }

    #[test]
    fn invalid_dates_and_near_misses_are_not_dates() {
        for cell in [
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "02/30/2026",
            "31/31/2026",
            "32.01.2026",
            "2026-03-14 later",
            "2026-03-14T25:00",
            "2026-03-14 13:00 PM",
            "2026-03-14T10:05:00+01:00 x",
            "Fri, 14 Mar 2026 10:05:00 +0000",
            "Mar 2026",
            "May",
            "20260314",
            "2026-03",
            "3/14/26",
            "12345",
            "1.5",
            "hello",
        ] {
            assert_eq!(parse_date(cell), None, "{cell}");
        }
        assert_eq!(day("2024-02-29"), NaiveDate::from_ymd_opt(2024, 2, 29));
    }

    #[test]
    fn timestamps_group_by_the_written_date_without_zone_conversion() {
        let g = group(
            None,
            &[
                ("2026-03-14T23:30:00-05:00", 0.5),
                ("2026-03-15T00:30:00+09:00", -0.5),
            ],
        );
        assert_eq!(keys(&g), ["2026-03-14", "2026-03-15"]);
    }

    #[test]
    fn slash_dates_are_month_first_unless_a_first_field_exceeds_twelve() {
        let us = group(None, &[("03/04/2026", 0.1), ("03/14/2026", 0.1)]);
        assert_eq!(keys(&us), ["2026-03-04", "2026-03-14"]);
        let eu = group(None, &[("03/04/2026", 0.1), ("14/03/2026", 0.1)]);
        assert_eq!(keys(&eu), ["2026-03-14", "2026-04-03"]);
        // Read day-first, a month-first-only cell is no date.
        let mixed = group(
            None,
            &(0..40)
                .map(|_| ("14/03/2026", 0.1))
                .chain([("03/14/2026", 0.1)])
                .collect::<Vec<_>>(),
        );
        assert_eq!(keys(&mixed), ["2026-03-14"]);
        assert_eq!(mixed.unparsed, 1);
    }

    fn span(days: u64, step: u64) -> Vec<(String, f64)> {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        (0..=days)
            .step_by(step as usize)
            .map(|i| ((start + chrono::Days::new(i)).to_string(), 0.1))
            .collect()
    }

    fn group_owned(period: Option<Period>, items: &[(String, f64)]) -> Grouping {
        let mut g = GroupAggregator::new(period);
        for (cell, compound) in items {
            g.push(cell, *compound);
        }
        g.finish()
    }

    #[test]
    fn dates_spanning_ninety_two_days_are_grouped_by_day() {
        let g = group_owned(None, &span(92, 1));
        assert_eq!(g.kind, GroupKind::Dates);
        assert_eq!(g.period, Some(Period::Day));
        assert_eq!(g.groups.len(), 93);
        assert_eq!(g.groups[0].key, "2024-01-01");
    }

    #[test]
    fn dates_spanning_a_year_are_grouped_by_iso_week() {
        let g = group_owned(None, &span(93, 1));
        assert_eq!(g.period, Some(Period::Week));
        let g = group_owned(None, &span(1096, 1));
        assert_eq!(g.period, Some(Period::Week));
        // 2024-01-01 is a Monday, so every week is full; 2024-12-30 starts ISO week 2025-W01.
        assert_eq!(g.groups[0].key, "2024-W01");
        assert_eq!(g.groups[0].count, 7);
        assert!(keys(&g).contains(&"2025-W01"));
        assert!(!keys(&g).contains(&"2024-W53"));
    }

    #[test]
    fn dates_spanning_more_than_three_years_are_grouped_by_month() {
        let g = group_owned(None, &span(1097, 1));
        assert_eq!(g.period, Some(Period::Month));
        assert_eq!(g.groups.len(), 37);
        assert_eq!(
            (g.groups[1].key.as_str(), g.groups[1].count),
            ("2024-02", 29)
        );
    }

    #[test]
    fn periods_without_items_are_left_out() {
        let g = group(None, &[("2026-01-05", 0.2), ("2026-01-20", 0.4)]);
        assert_eq!(keys(&g), ["2026-01-05", "2026-01-20"]);
    }

    #[test]
    fn a_forced_period_overrides_the_span() {
        let g = group(
            Some(Period::Month),
            &[
                ("2026-03-14", 0.2),
                ("2026-03-30", 0.4),
                ("2026-04-01", 0.0),
            ],
        );
        assert_eq!(g.period, Some(Period::Month));
        assert_eq!(keys(&g), ["2026-03", "2026-04"]);
        assert_eq!(g.groups[0].mean_compound, 0.3);
    }

    #[test]
    fn a_column_is_dates_only_when_ninety_five_percent_of_cells_are() {
        let mut items: Vec<(String, f64)> = span(18, 1); // 19 dates
        items.push(("n/a".to_owned(), 0.0));
        items.push((String::new(), 0.0)); // missing does not count against
        let g = group_owned(None, &items);
        assert_eq!(g.kind, GroupKind::Dates);
        assert_eq!((g.unparsed, g.missing), (1, 1));
        assert_eq!(g.groups.iter().map(|g| g.count).sum::<u64>(), 19);

        items.push(("unknown".to_owned(), 0.0)); // 19 of 21
        let g = group_owned(None, &items);
        assert_eq!(g.kind, GroupKind::Values);
        assert_eq!(g.period, None);
        assert_eq!(g.distinct, 21);
    }

    #[test]
    fn dates_past_the_day_table_cap_are_unparsed() {
        let start = NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
        let mut g = GroupAggregator::new(Some(Period::Month));
        for i in 0..MAX_DAYS as u64 + 3 {
            g.push(&(start + chrono::Days::new(i)).to_string(), 0.0);
        }
        let g = g.finish();
        assert_eq!(g.kind, GroupKind::Dates);
        assert!(g.truncated);
        assert_eq!(g.unparsed, 3);
        assert_eq!(
            g.groups.iter().map(|g| g.count).sum::<u64>(),
            MAX_DAYS as u64
        );
    }

    #[test]
    fn periods_parse_by_name_and_an_unknown_one_lists_the_choices() {
        assert_eq!("week".parse(), Ok(Period::Week));
        assert_eq!(" Month ".parse(), Ok(Period::Month));
        let err = "year".parse::<Period>().unwrap_err().to_string();
        assert_eq!(
            err,
            r#"unknown period "year": choose one of day, week, month"#
        );
    }

    #[test]
    fn a_grouping_serialises_with_lower_case_names() {
        let g = group(None, &[("2026-03-14", 0.5)]);
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["kind"], "dates");
        assert_eq!(json["period"], "day");
        assert_eq!(json["groups"][0]["ci95"], serde_json::Value::Null);
        let back: Grouping = serde_json::from_value(json).unwrap();
        assert_eq!(back, g);
    }
}
