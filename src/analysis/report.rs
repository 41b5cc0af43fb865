//! Aggregates of an analysis: counts, mean, labels, histogram, arc and the extreme items.
//!
//! [`Aggregator`] takes scored items in text order, one at a time, and keeps memory bounded
//! however many there are: the histogram and label counts are counters, the extremes are two
//! five-slot tables, and the arc is a fixed number of buckets that merge pairwise as the input
//! grows (exact up to [`ARC_BUCKETS`] items; beyond that segment edges fall within 1/2048 of the
//! text of where they belong). [`Aggregator::finish`] turns it into the serialisable [`Report`].

use serde::{Deserialize, Serialize};

use super::Format;
use super::pytext;

/// Number of histogram bins over [-1, 1].
pub const HISTOGRAM_BINS: usize = 20;
/// Most segments of the sentiment arc.
pub const ARC_SEGMENTS: usize = 100;
/// Extremes kept on each side.
pub const TOP_N: usize = 5;
/// Longest text kept for an extreme item, in characters; longer texts are cut with an ellipsis.
pub const HIGHLIGHT_CHARS: usize = 400;
/// Buckets the arc keeps before it merges neighbours.
pub const ARC_BUCKETS: usize = 4096;

/// Compound thresholds of the usual VADER labels.
pub const POSITIVE_AT: f64 = 0.05;
pub const NEGATIVE_AT: f64 = -0.05;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Positive,
    Neutral,
    Negative,
}

impl Label {
    /// The label's name, as JSON and the downloads write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Positive => "positive",
            Label::Neutral => "neutral",
            Label::Negative => "negative",
        }
    }

    /// The CSS class of a score with this label (`pos`, `neu`, `neg`).
    pub fn class(self) -> &'static str {
        match self {
            Label::Positive => "pos",
            Label::Neutral => "neu",
            Label::Negative => "neg",
        }
    }

    pub fn of(compound: f64) -> Label {
        if compound >= POSITIVE_AT {
            Label::Positive
        } else if compound <= NEGATIVE_AT {
            Label::Negative
        } else {
            Label::Neutral
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LabelCounts {
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
}

/// One of the most positive or most negative items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Highlight {
    /// 0-based position of the item in the input (sentence, row, line or document order).
    pub position: u64,
    /// The item's own id, for batch documents and JSONL lines that carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub text: String,
    /// True when `text` was shortened to [`HIGHLIGHT_CHARS`] characters.
    #[serde(default)]
    pub truncated: bool,
    pub compound: f64,
}

/// The result of analysing one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub format: Format,
    /// Number of scored items (sentences, rows, lines or documents).
    pub items: u64,
    /// Mean compound score, 4 decimals; 0 for no items.
    pub mean_compound: f64,
    pub labels: LabelCounts,
    /// Item counts in 20 equal bins of compound over [-1, 1]; bin k holds
    /// [-1 + k/10, -1 + (k+1)/10), the last bin also holds 1.0.
    pub histogram: Vec<u64>,
    /// Mean compound of up to 100 consecutive, equally sized groups of items in text order.
    pub arc: Vec<f64>,
    /// Up to 5 items with compound > 0, highest first (earlier item first on ties).
    pub most_positive: Vec<Highlight>,
    /// Up to 5 items with compound < 0, lowest first (earlier item first on ties).
    pub most_negative: Vec<Highlight>,
    /// Wall-clock time of the analysis in milliseconds.
    pub elapsed_ms: f64,
    /// CSV: the header's column names, in order. `items.csv` gives every row back under them,
    /// followed by its scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// CSV and JSONL: the column or key the text was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    /// The column or key that names the items (their "#"), found by name or chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_column: Option<String>,
    /// Per-group figures when the analysis was asked to group by a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupSummary>,
    /// How far the scores agree with the rows' own ratings, when the rows have a rating column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<RatingSummary>,
    /// Why a column that looked like a rating was not used (a cell that is not a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_note: Option<String>,
    /// The items' languages, when they were detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Languages>,
}

/// Share of items not in English above which the results carry a warning.
pub const NOT_ENGLISH_WARNING: f64 = 0.05;

/// How many items are in which language: VADER scores English only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Languages {
    /// Items per detected language (ISO 639-1 code), most first.
    pub counts: Vec<LanguageCount>,
    /// Items too short or with too few letters to tell.
    pub undetermined: u64,
    /// Items detected as a language other than English.
    pub not_english: u64,
    /// Set when more than 5 % of the items are not English: how many, and which languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LanguageCount {
    /// ISO 639-1 code, e.g. `en`, `es`, `ko`.
    pub lang: String,
    pub items: u64,
}

/// A count with thousands separators: `10,605`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Counts items per language as they come; a handful of languages, so a short list.
#[derive(Default)]
pub struct LanguageCounter {
    counts: Vec<(&'static str, u64)>,
    undetermined: u64,
}

impl LanguageCounter {
    pub fn push(&mut self, lang: Option<&'static str>) {
        let Some(lang) = lang else {
            self.undetermined += 1;
            return;
        };
        match self.counts.iter_mut().find(|(l, _)| *l == lang) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((lang, 1)),
        }
    }

    pub fn finish(mut self, items: u64) -> Languages {
        self.counts
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let not_english: u64 = self
            .counts
            .iter()
            .filter(|(l, _)| *l != "en")
            .map(|(_, n)| n)
            .sum();
        let share = not_english as f64 / items.max(1) as f64;
        let warning = (share > NOT_ENGLISH_WARNING).then(|| {
            let which = self
                .counts
                .iter()
                .filter(|(l, _)| *l != "en")
                .take(5)
                .map(|(l, n)| format!("{l} {}", thousands(*n)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{} of {} items ({:.1}%) are not in English ({which}). VADER scores English \
                 only: their scores mean little, and most come out neutral.",
                thousands(not_english),
                thousands(items),
                100.0 * share
            )
        });
        Languages {
            counts: self
                .counts
                .into_iter()
                .map(|(lang, items)| LanguageCount {
                    lang: lang.to_owned(),
                    items,
                })
                .collect(),
            undetermined: self.undetermined,
            not_english,
            warning,
        }
    }
}

/// The groups of a `group_by` column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupSummary {
    /// The column (CSV) or key (JSONL) grouped by.
    pub column: String,
    #[serde(flatten)]
    pub grouping: super::groups::Grouping,
}

/// Agreement of the compound score with a rating column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RatingSummary {
    /// The rating column (CSV) or key (JSONL).
    pub column: String,
    #[serde(flatten)]
    pub agreement: super::agreement::Agreement,
}

#[derive(Default)]
pub struct Aggregator {
    count: u64,
    sum: f64,
    labels: LabelCounts,
    histogram: [u64; HISTOGRAM_BINS],
    /// (sum, count) per bucket; every bucket but the last holds `bucket_width` items.
    arc: Vec<(f64, u64)>,
    bucket_width: u64,
    positive: Vec<Highlight>,
    negative: Vec<Highlight>,
}

impl Aggregator {
    pub fn new() -> Self {
        Aggregator {
            bucket_width: 1,
            ..Default::default()
        }
    }

    /// Add the next item in text order.
    pub fn push(&mut self, position: u64, id: Option<&str>, text: &str, compound: f64) {
        self.count += 1;
        self.sum += compound;
        match Label::of(compound) {
            Label::Positive => self.labels.positive += 1,
            Label::Neutral => self.labels.neutral += 1,
            Label::Negative => self.labels.negative += 1,
        }
        // Compounds carry 4 decimals, so scaled to integers the bin edges are exact.
        let ticks = (compound * 10_000.0).round() as i64 + 10_000;
        let bin = (ticks.clamp(0, 20_000) / 1_000).min(HISTOGRAM_BINS as i64 - 1) as usize;
        self.histogram[bin] += 1;

        match self.arc.last_mut() {
            Some((sum, n)) if *n < self.bucket_width => {
                *sum += compound;
                *n += 1;
            }
            _ => {
                if self.arc.len() == ARC_BUCKETS {
                    self.arc = self
                        .arc
                        .chunks(2)
                        .map(|p| {
                            p.iter()
                                .fold((0.0, 0), |(s, n), &(ps, pn)| (s + ps, n + pn))
                        })
                        .collect();
                    self.bucket_width *= 2;
                }
                match self.arc.last_mut() {
                    Some((sum, n)) if *n < self.bucket_width => {
                        *sum += compound;
                        *n += 1;
                    }
                    _ => self.arc.push((compound, 1)),
                }
            }
        }

        if compound > 0.0 {
            offer(&mut self.positive, position, id, text, compound, |a, b| {
                a > b
            });
        } else if compound < 0.0 {
            offer(&mut self.negative, position, id, text, compound, |a, b| {
                a < b
            });
        }
    }

    pub fn finish(self, format: Format, elapsed_ms: f64) -> Report {
        Report {
            format,
            items: self.count,
            mean_compound: if self.count == 0 {
                0.0
            } else {
                pytext::round(self.sum / self.count as f64, 4)
            },
            labels: self.labels,
            histogram: self.histogram.to_vec(),
            arc: arc_segments(&self.arc, self.count),
            most_positive: self.positive,
            most_negative: self.negative,
            elapsed_ms,
            columns: None,
            text_column: None,
            id_column: None,
            groups: None,
            agreement: None,
            rating_note: None,
            languages: None,
        }
    }
}

/// Keep `table` as the TOP_N best items by `better`, earlier items winning ties. Only items that
/// make the table pay for copying their text.
fn offer(
    table: &mut Vec<Highlight>,
    position: u64,
    id: Option<&str>,
    text: &str,
    compound: f64,
    better: fn(f64, f64) -> bool,
) {
    if table.len() == TOP_N && !better(compound, table[TOP_N - 1].compound) {
        return;
    }
    let at = table
        .iter()
        .position(|h| better(compound, h.compound))
        .unwrap_or(table.len());
    let (text, truncated) = match text.char_indices().nth(HIGHLIGHT_CHARS) {
        Some((cut, _)) => (format!("{}…", &text[..cut]), true),
        None => (text.to_owned(), false),
    };
    table.insert(
        at,
        Highlight {
            position,
            id: id.map(str::to_owned),
            text,
            truncated,
            compound,
        },
    );
    table.truncate(TOP_N);
}

/// Mean compound of `min(100, count)` groups of consecutive items of (nearly) equal size. Buckets
/// that straddle a group edge are shared out in proportion, as if their items were even.
fn arc_segments(buckets: &[(f64, u64)], count: u64) -> Vec<f64> {
    let segments = (count as usize).min(ARC_SEGMENTS);
    let mut sums = vec![0.0f64; segments];
    let mut weights = vec![0.0f64; segments];
    let edge = |j: usize| (j as u64 * count) as f64 / segments as f64;
    let mut start = 0u64;
    let mut seg = 0usize;
    for &(sum, n) in buckets {
        let (lo, hi) = (start as f64, (start + n) as f64);
        let mean = sum / n as f64;
        let mut at = lo;
        while at < hi && seg < segments {
            let seg_end = edge(seg + 1);
            let part = hi.min(seg_end) - at;
            sums[seg] += mean * part;
            weights[seg] += part;
            at += part;
            if at >= seg_end {
                seg += 1;
            }
        }
        start += n;
    }
    sums.iter()
        .zip(&weights)
        .map(|(s, w)| {
            if *w > 0.0 {
                pytext::round(s / w, 4)
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(values: &[f64]) -> Report {
        let mut a = Aggregator::new();
        for (i, &v) in values.iter().enumerate() {
            a.push(i as u64, None, &format!("item {i}"), v);
        }
        a.finish(Format::Text, 0.0)
    }

    #[test]
    fn labels_and_histogram_bins_use_exact_edges() {
        let r = report(&[-1.0, -0.9, -0.05, -0.0499, 0.0, 0.0499, 0.05, 0.9999, 1.0]);
        assert_eq!(
            r.labels,
            LabelCounts {
                positive: 3,
                neutral: 3,
                negative: 3
            }
        );
        let mut expected = vec![0u64; 20];
        expected[0] = 1; // -1.0
        expected[1] = 1; // -0.9
        expected[9] = 2; // -0.05, -0.0499
        expected[10] = 3; // 0.0, 0.0499, 0.05
        expected[19] = 2; // 0.9999, 1.0
        assert_eq!(r.histogram, expected);
    }

    #[test]
    fn the_arc_has_one_point_per_item_up_to_a_hundred() {
        let r = report(&[0.5, -0.5, 0.25]);
        assert_eq!(r.arc, vec![0.5, -0.5, 0.25]);
        let values: Vec<f64> = (0..1000)
            .map(|i| if i < 500 { 0.2 } else { -0.4 })
            .collect();
        let r = report(&values);
        assert_eq!(r.arc.len(), 100);
        assert!(r.arc[..50].iter().all(|&v| v == 0.2));
        assert!(r.arc[50..].iter().all(|&v| v == -0.4));
    }

    #[test]
    fn the_arc_stays_accurate_after_buckets_merge() {
        let n = 1_000_000u64;
        let values: Vec<f64> = (0..n).map(|i| if i < n / 4 { 1.0 } else { 0.0 }).collect();
        let r = report(&values);
        assert_eq!(r.arc.len(), 100);
        // Only the two segments beside the edge may be blurred, by less than 1%.
        assert!(r.arc[..24].iter().all(|&v| v == 1.0), "{:?}", &r.arc[..26]);
        assert!(r.arc[24] > 0.99 && r.arc[25] < 0.01, "{:?}", &r.arc[23..27]);
        assert!(r.arc[26..].iter().all(|&v| v == 0.0));
        assert_eq!(r.mean_compound, 0.25);
    }

    #[test]
    fn extremes_keep_the_five_strongest_of_each_sign_earliest_first_on_ties() {
        let r = report(&[0.1, 0.9, 0.9, 0.3, 0.8, 0.7, 0.95, -0.2, -0.9, 0.0]);
        let pos: Vec<u64> = r.most_positive.iter().map(|h| h.position).collect();
        assert_eq!(pos, vec![6, 1, 2, 4, 5]);
        let neg: Vec<u64> = r.most_negative.iter().map(|h| h.position).collect();
        assert_eq!(neg, vec![8, 7]);
    }
}
