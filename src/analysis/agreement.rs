//! How far VADER's compound agrees with the human ratings that rows carry (stars 1–5, or a
//! continuous score such as -0.9 or 2.726315789): Pearson and Spearman correlations and the mean
//! compound per rating value.
//!
//! Items stream in and an input may have any number of rows, so [`RatingAggregator`] keeps
//! memory bounded:
//!
//! - Pearson uses running means and co-moments (Welford's update). Naive sums of x, y, x², xy
//!   lose every significant digit when ratings sit far from zero (Unix times, prices), and the
//!   co-moment form does not.
//! - Spearman needs every item's rank, which looks like it needs every item. It does not: items
//!   with the same (rating, compound) pair share both ranks, and a compound has at most 20,001
//!   values (4 decimals in [-1, 1]), so a count per distinct pair is the whole input as far as
//!   ranks go. Star ratings give at most 5 × 20,001 pairs whatever the row count. Average ranks of
//!   ties (as `scipy.stats.spearmanr` and Python's `statistics.correlation(method="ranked")`
//!   assign) come from cumulative counts, and twice an average rank is an integer, so the rank
//!   correlation is computed in exact integer arithmetic. Only a continuous rating with very
//!   many distinct values can exceed [`MAX_PAIRS`] pairs; then Spearman is withheld with a note
//!   rather than approximated.
//! - The mean per rating value lists at most [`MAX_RATINGS`] values, the first ones seen: a
//!   column with more distinct ratings is continuous and a table per value would not be read.
//!   Each mean is the exact mean of the f64 compounds rounded once, as Python's `statistics.mean`
//!   gives it (see [`fixed_mean`]), so a mean on a half of the 4th decimal rounds as in Python.
//!
//! Correlations are rounded to 4 decimals only in [`RatingAggregator::finish`], so nothing
//! downstream compounds a rounding error.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::exact::{fixed, fixed_mean};
use super::pytext;

/// Distinct (rating, compound) pairs counted for Spearman.
pub const MAX_PAIRS: usize = 250_000;
/// Distinct rating values in [`Agreement::by_rating`].
pub const MAX_RATINGS: usize = 1_000;

/// A rating cell that is not a finite decimal number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRating;

impl fmt::Display for InvalidRating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rating must be a finite decimal number")
    }
}

impl std::error::Error for InvalidRating {}

/// Read a rating cell: empty (after trimming) is a missing rating; a finite decimal number with
/// an optional sign and exponent is a rating; anything else, including `NaN` and `inf` that
/// Rust's and Python's float parsers accept, is an error for the caller to count.
pub fn parse_rating(cell: &str) -> Result<Option<f64>, InvalidRating> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(None);
    }
    let b = cell.as_bytes();
    let mut i = usize::from(matches!(b[0], b'+' | b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return Err(InvalidRating);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        i += usize::from(matches!(b.get(i), Some(b'+' | b'-')));
        if digits(&mut i) == 0 {
            return Err(InvalidRating);
        }
    }
    if i != b.len() {
        return Err(InvalidRating);
    }
    match cell.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(Some(x + 0.0)),
        _ => Err(InvalidRating),
    }
}

/// Mean compound of the items with one rating value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RatingMean {
    pub rating: f64,
    pub count: u64,
    /// 4 decimals.
    pub mean_compound: f64,
}

/// Agreement of compound scores with human ratings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Agreement {
    /// Items with a rating.
    pub pairs: u64,
    /// Pearson's r, 4 decimals; none below 2 pairs or when ratings or compounds are all equal.
    pub pearson: Option<f64>,
    /// Spearman's ρ with average ranks for ties, 4 decimals; none as for Pearson, and when the
    /// input had more than 250,000 distinct (rating, compound) pairs.
    pub spearman: Option<f64>,
    /// Why `spearman` is none, in words for a person.
    pub spearman_note: Option<String>,
    /// Mean compound per rating value, ascending by rating.
    pub by_rating: Vec<RatingMean>,
    /// True when there were more than 1,000 distinct ratings: `by_rating` then holds the first
    /// 1,000 seen, and items with other ratings count only in the correlations.
    pub by_rating_truncated: bool,
}

/// Streams (rating, compound) pairs into an [`Agreement`].
#[derive(Default)]
pub struct RatingAggregator {
    n: u64,
    mean_x: f64,
    mean_y: f64,
    m2_x: f64,
    m2_y: f64,
    c_xy: f64,
    /// Items per (rating bits, compound ticks); cleared when it overflows.
    pairs: HashMap<(u64, i32), u64>,
    overflowed: bool,
    /// (count, Σ compound · 2⁶⁶) per rating bits.
    by_rating: HashMap<u64, (u64, i128)>,
    by_rating_truncated: bool,
}

impl RatingAggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one rated item. A non-finite rating is ignored: [`parse_rating`] never gives one.
    pub fn push(&mut self, rating: f64, compound: f64) {
        if !rating.is_finite() {
            return;
        }
        // -0.0 and 0.0 are one rating, and must be one key.
        let (x, y) = (rating + 0.0, compound);
        self.n += 1;
        let n = self.n as f64;
        let dx = x - self.mean_x;
        let dy = y - self.mean_y;
        self.mean_x += dx / n;
        self.mean_y += dy / n;
        let dy_new = y - self.mean_y;
        self.m2_x += dx * (x - self.mean_x);
        self.m2_y += dy * dy_new;
        self.c_xy += dx * dy_new;

        let ticks = ((compound * 1e4).round() as i32).clamp(-10_000, 10_000);
        let key = (x.to_bits(), ticks);
        if !self.overflowed {
            if let Some(count) = self.pairs.get_mut(&key) {
                *count += 1;
            } else if self.pairs.len() < MAX_PAIRS {
                self.pairs.insert(key, 1);
            } else {
                self.overflowed = true;
                self.pairs = HashMap::new();
            }
        }

        let fixed = fixed(compound);
        let len = self.by_rating.len();
        match self.by_rating.get_mut(&key.0) {
            Some((count, sum)) => {
                *count += 1;
                *sum += fixed;
            }
            None if len < MAX_RATINGS => {
                self.by_rating.insert(key.0, (1, fixed));
            }
            None => self.by_rating_truncated = true,
        }
    }

    pub fn finish(self) -> Agreement {
        let constant = self.m2_x == 0.0 || self.m2_y == 0.0;
        let pearson = (self.n >= 2 && !constant)
            .then(|| pytext::round(self.c_xy / (self.m2_x * self.m2_y).sqrt(), 4));
        let (spearman, spearman_note) = if self.n < 2 {
            (None, Some("fewer than 2 rated items".to_owned()))
        } else if self.m2_x == 0.0 {
            (None, Some("every item has the same rating".to_owned()))
        } else if self.m2_y == 0.0 {
            (
                None,
                Some("every item has the same compound score".to_owned()),
            )
        } else if self.overflowed {
            let note = format!(
                "more than {MAX_PAIRS} distinct (rating, compound) pairs: exact ranks would need \
                 memory that grows with the input, and an approximate ρ is not given"
            );
            (None, Some(note))
        } else {
            (Some(pytext::round(spearman(&self.pairs, self.n), 4)), None)
        };

        let mut by_rating: Vec<RatingMean> = self
            .by_rating
            .iter()
            .map(|(&bits, &(count, sum))| RatingMean {
                rating: f64::from_bits(bits),
                count,
                mean_compound: pytext::round(fixed_mean(sum, count), 4),
            })
            .collect();
        by_rating.sort_unstable_by(|a, b| a.rating.total_cmp(&b.rating));

        Agreement {
            pairs: self.n,
            pearson,
            spearman,
            spearman_note,
            by_rating,
            by_rating_truncated: self.by_rating_truncated,
        }
    }
}

/// Spearman's ρ from counts per (rating bits, compound ticks), ties at their average rank.
///
/// Twice an average rank, centred on the mean rank (n + 1) / 2, is the integer
/// `2·before + count − n` (`before` items rank lower), so the co-moment and both variances are
/// exact sums of integers: no cancellation however large n is. Callers make sure neither side is
/// constant.
fn spearman(pairs: &HashMap<(u64, i32), u64>, n: u64) -> f64 {
    let n = n as i128;
    let mut ratings: HashMap<u64, u64> = HashMap::new();
    let mut ticks: HashMap<i32, u64> = HashMap::new();
    for (&(r, t), &count) in pairs {
        *ratings.entry(r).or_default() += count;
        *ticks.entry(t).or_default() += count;
    }

    // Centred doubled rank of each value, and Σ count · rank² for the variance.
    fn ranks<K: Copy + Eq + std::hash::Hash>(
        counts: HashMap<K, u64>,
        order: impl Fn(&K, &K) -> std::cmp::Ordering,
        n: i128,
    ) -> (HashMap<K, i128>, i128) {
        let mut sorted: Vec<(K, u64)> = counts.into_iter().collect();
        sorted.sort_unstable_by(|a, b| order(&a.0, &b.0));
        let mut before = 0i128;
        let mut sum_sq = 0i128;
        let mut rank = HashMap::with_capacity(sorted.len());
        for (key, count) in sorted {
            let count = count as i128;
            let r = 2 * before + count - n;
            sum_sq += count * r * r;
            rank.insert(key, r);
            before += count;
        }
        (rank, sum_sq)
    }

    let (rank_x, var_x) = ranks(
        ratings,
        |a, b| f64::from_bits(*a).total_cmp(&f64::from_bits(*b)),
        n,
    );
    let (rank_y, var_y) = ranks(ticks, |a, b| a.cmp(b), n);
    let cov: i128 = pairs
        .iter()
        .map(|(&(r, t), &count)| count as i128 * rank_x[&r] * rank_y[&t])
        .sum();
    cov as f64 / ((var_x as f64).sqrt() * (var_y as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::exact::{FIXED_EXP, pow2};

    fn agree(items: &[(f64, f64)]) -> Agreement {
        let mut a = RatingAggregator::new();
        for &(r, c) in items {
            a.push(r, c);
        }
        a.finish()
    }

    #[test]
    fn ratings_parse_as_finite_decimal_numbers_only() {
        assert_eq!(parse_rating(" 4 "), Ok(Some(4.0)));
        assert_eq!(parse_rating("-0.9"), Ok(Some(-0.9)));
        assert_eq!(parse_rating("2.726315789"), Ok(Some(2.726315789)));
        assert_eq!(parse_rating("+.5"), Ok(Some(0.5)));
        assert_eq!(parse_rating("5."), Ok(Some(5.0)));
        assert_eq!(parse_rating("1.5e-1"), Ok(Some(0.15)));
        assert_eq!(parse_rating("2E+2"), Ok(Some(200.0)));
        assert!(parse_rating("-0").unwrap().unwrap().is_sign_positive());
        assert_eq!(parse_rating(""), Ok(None));
        assert_eq!(parse_rating(" \t"), Ok(None));
        for bad in [
            "NaN",
            "nan",
            "inf",
            "-Infinity",
            "1e999",
            "five",
            "4 stars",
            "1,5",
            "1.2.3",
            ".",
            "-",
            "e5",
            "1e",
            "1e+",
            "0x10",
            "1_000",
            "++1",
        ] {
            assert_eq!(parse_rating(bad), Err(InvalidRating), "{bad:?}");
        }
    }

    #[test]
    fn both_coefficients_match_a_hand_checked_example_with_ties() {
        // ratings  1     2     2     3    4     5
        // compound 0.1  -0.2   0.3   0.3  0.3   0.9
        // rating ranks:   1, 2.5, 2.5, 4, 5, 6
        // compound ranks: 2, 1, 4, 4, 4, 6 (three 0.3s share ranks 3..5)
        // centred (mean 3.5): x = -2.5 -1 -1 .5 1.5 2.5, y = -1.5 -2.5 .5 .5 .5 2.5
        // Σxy = 3.75 + 2.5 - .5 + .25 + .75 + 6.25 = 13; Σx² = 17; Σy² = 15.5
        // ρ = 13 / √(17 · 15.5) = 0.80085 (scipy.stats.spearmanr: 0.8008534)
        // Pearson: Sxy = 6.9 − 17 · 1.7 / 6 = 2.08333, Sxx = 59 − 17² / 6 = 10.83333,
        // Syy = 1.13 − 1.7² / 6 = 0.64833, r = 2.08333 / √(10.83333 · 0.64833) = 0.78610
        let a = agree(&[
            (1.0, 0.1),
            (2.0, -0.2),
            (2.0, 0.3),
            (3.0, 0.3),
            (4.0, 0.3),
            (5.0, 0.9),
        ]);
        assert_eq!(a.pairs, 6);
        assert_eq!(a.spearman, Some(0.8009));
        assert_eq!(a.pearson, Some(0.7861));
        assert_eq!(a.spearman_note, None);
    }

    #[test]
    fn the_mean_per_rating_is_listed_in_ascending_rating_order() {
        let a = agree(&[
            (5.0, 0.5),
            (-1.0, -0.25),
            (5.0, 0.2),
            (0.0, 0.0),
            (-0.0, 0.1),
        ]);
        let got: Vec<(f64, u64, f64)> = a
            .by_rating
            .iter()
            .map(|m| (m.rating, m.count, m.mean_compound))
            .collect();
        assert_eq!(got, [(-1.0, 1, -0.25), (0.0, 2, 0.05), (5.0, 2, 0.35)]);
        assert!(!a.by_rating_truncated);
    }

    #[test]
    fn a_mean_on_a_half_of_the_fourth_decimal_rounds_as_python_does() {
        // Pairs from the VADER tweets set. Each mean is exactly x.xxxx5 in decimal; Python's
        // round(statistics.mean(...), 4) goes by the f64 values: -0.7421, 0.9138, 0.943.
        let a = agree(&[
            (-2.9, -0.7717),
            (-2.9, -0.7124),
            (2.5, 0.9367),
            (2.5, 0.8908),
            (3.15, 0.9379),
            (3.15, 0.9482),
        ]);
        let means: Vec<f64> = a.by_rating.iter().map(|m| m.mean_compound).collect();
        assert_eq!(means, [-0.7421, 0.9138, 0.943]);
    }

    #[test]
    fn exact_means_are_rounded_once() {
        assert_eq!(fixed_mean(0, 3), 0.0);
        for values in [
            &[0.1, 0.2, 0.3][..],
            &[-1.0, 1.0, 0.0001],
            &[0.0001; 7],
            &[-0.9999, -0.0001, -0.5, 0.25],
        ] {
            let sum: i128 = values.iter().map(|v| (v * pow2(FIXED_EXP)) as i128).sum();
            let exact: f64 = values.iter().sum::<f64>() / values.len() as f64;
            let got = fixed_mean(sum, values.len() as u64);
            assert!((got - exact).abs() <= exact.abs() * 1e-15, "{values:?}");
        }
        // 0.1 + 0.2 + 0.3 in f64 sums to 0.6000000000000001; the exact mean of the three f64
        // values is nearest to 0.2.
        let sum: i128 = [0.1f64, 0.2, 0.3]
            .iter()
            .map(|v| (v * pow2(FIXED_EXP)) as i128)
            .sum();
        assert_eq!(fixed_mean(sum, 3), 0.2);
    }

    #[test]
    fn a_constant_side_or_a_single_pair_has_no_correlation_and_says_why() {
        let a = agree(&[(3.0, 0.5)]);
        assert_eq!((a.pearson, a.spearman), (None, None));
        assert_eq!(a.spearman_note.as_deref(), Some("fewer than 2 rated items"));
        let a = agree(&[(3.0, 0.5), (3.0, -0.5)]);
        assert_eq!((a.pearson, a.spearman), (None, None));
        assert_eq!(
            a.spearman_note.as_deref(),
            Some("every item has the same rating")
        );
        let a = agree(&[(1.0, 0.5), (2.0, 0.5)]);
        assert_eq!((a.pearson, a.spearman), (None, None));
        assert!(a.spearman_note.unwrap().contains("compound"));
        let a = agree(&[]);
        assert_eq!((a.pairs, a.pearson, a.by_rating.len()), (0, None, 0));
    }

    #[test]
    fn pearson_survives_ratings_far_from_zero() {
        // Naive sums of x² at 1e9 lose the 0.1 steps entirely; the co-moment update does not.
        let items: Vec<(f64, f64)> = (0..1000)
            .map(|i| (1e9 + (i % 10) as f64 * 0.1, (i % 10) as f64 / 10.0 - 0.5))
            .collect();
        assert_eq!(agree(&items).pearson, Some(1.0));
        let shifted: Vec<(f64, f64)> = items.iter().map(|&(r, c)| (-r, c)).collect();
        assert_eq!(agree(&shifted).pearson, Some(-1.0));
    }

    #[test]
    fn many_repeats_of_few_pairs_rank_exactly() {
        // Stars 1..=5 with compound rising with the stars, repeated: ρ = 1 whatever n is.
        let mut a = RatingAggregator::new();
        for i in 0..200_000u64 {
            let stars = (i % 5 + 1) as f64;
            a.push(stars, stars / 5.0 - 0.5);
        }
        let a = a.finish();
        assert_eq!(
            (a.pairs, a.spearman, a.pearson),
            (200_000, Some(1.0), Some(1.0))
        );
        assert_eq!(a.by_rating.len(), 5);
        assert_eq!(a.by_rating[4].count, 40_000);
    }

    #[test]
    fn spearman_is_withheld_when_the_pair_table_overflows() {
        let mut a = RatingAggregator::new();
        for i in 0..=MAX_PAIRS {
            a.push(i as f64, (i % 20_001) as f64 / 10_000.0 - 1.0);
        }
        let a = a.finish();
        assert_eq!(a.pairs, MAX_PAIRS as u64 + 1);
        assert!(a.pearson.is_some());
        assert_eq!(a.spearman, None);
        assert!(a.spearman_note.unwrap().contains("250000 distinct"));
        assert!(a.by_rating_truncated);
        assert_eq!(a.by_rating.len(), MAX_RATINGS);
        assert_eq!(a.by_rating.last().unwrap().rating, (MAX_RATINGS - 1) as f64);
    }

    #[test]
    fn an_agreement_round_trips_through_json() {
        let a = agree(&[(1.0, -0.5), (5.0, 0.5)]);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["spearman"], 1.0);
        assert_eq!(json["by_rating"][1]["rating"], 5.0);
        assert_eq!(serde_json::from_value::<Agreement>(json).unwrap(), a);
    }
}
