//! The VADER scorer: one text in, `{neg, neu, pos, compound}` out, exactly as
//! `vaderSentiment==3.3.2`'s `polarity_scores` computes them.
//!
//! The rules and their order follow the reference step by step, quirks included (see
//! `../shared/notes/vader-3.3.2.md` in the workplace and the hard-case corpus in `tests/data/vader/`):
//! emoji are replaced one code point at a time, tokens are whitespace-split and punctuation-stripped,
//! each lexicon word's valence is adjusted by the up-to-three preceding words, "but" rescales by
//! value lookup, and the sums are rounded with Python's `round`. Where the reference does something
//! surprising the code does the same and says so in a comment.
//!
//! What differs is only the mechanics: every token is looked up once in a merged word table
//! ([`super::lexicon`]) instead of lower-casing and searching lists again for each rule, and a
//! [`Scorer`] reuses its buffers, so scoring a sentence allocates nothing in the common case.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::lexicon::{self, BOOSTER_PHRASES, Kw, Lexicon, SPECIAL_CASES, lexicon};
use super::pytext;

/// Mean rating increase for a word in ALL CAPS amid mixed-case text.
const C_INCR: f64 = 0.733;
/// Factor applied to a negated valence.
const N_SCALAR: f64 = -0.74;
/// Normalisation constant of the compound score.
const ALPHA: f64 = 15.0;

/// The four numbers of one scored text, rounded as the reference rounds them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Scores {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    pub compound: f64,
}

/// Per-token facts, computed once from the token and its lower-cased form.
#[derive(Clone, Copy, Debug)]
struct Tok {
    valence: Option<f64>,
    booster: Option<f64>,
    /// `negated([token])` of the reference: in NEGATE, or contains "n't".
    negated: bool,
    kw: Kw,
    /// `token.isupper()` of the original (not lower-cased) token.
    upper: bool,
}

/// A reusable scorer. Cheap to create; keep one per thread to avoid re-allocating its buffers.
pub struct Scorer {
    lex: &'static Lexicon,
    text: String,
    lower: String,
    toks: Vec<Tok>,
    sentiments: Vec<f64>,
}

impl Default for Scorer {
    fn default() -> Self {
        Self::new()
    }
}

/// Score one text with a per-thread [`Scorer`].
pub fn polarity_scores(text: &str) -> Scores {
    thread_local! {
        static SCORER: RefCell<Scorer> = RefCell::new(Scorer::new());
    }
    SCORER.with(|s| s.borrow_mut().score(text))
}

impl Scorer {
    pub fn new() -> Self {
        Scorer {
            lex: lexicon(),
            text: String::new(),
            lower: String::new(),
            toks: Vec::new(),
            sentiments: Vec::new(),
        }
    }

    pub fn score(&mut self, text: &str) -> Scores {
        let mut buf = std::mem::take(&mut self.text);
        let (exclamations, questions) = {
            self.toks.clear();
            let text = if text.is_ascii() {
                // No emoji key is ASCII, so ASCII text needs no replacement pass.
                text
            } else {
                replace_emoji(self.lex, text, &mut buf);
                &buf
            };
            if text.is_ascii() {
                self.tokenize_ascii(text.as_bytes())
            } else {
                for raw in pytext::split_whitespace(pytext::strip(text)) {
                    let tok = self.token(raw);
                    self.toks.push(tok);
                }
                // Stripping whitespace first would not change these counts.
                count_marks(text.as_bytes())
            }
        };
        self.text = buf;

        let n = self.toks.len();
        let upper = self.toks.iter().filter(|t| t.upper).count();
        let cap_diff = n - upper > 0 && n - upper < n;

        self.sentiments.clear();
        for i in 0..n {
            let t = self.toks[i];
            let v = if t.booster.is_some()
                || (i + 1 < n && t.kw == Kw::Kind && self.toks[i + 1].kw == Kw::Of)
            {
                // Modifiers carry no valence of their own.
                0.0
            } else {
                self.valence(i, cap_diff)
            };
            self.sentiments.push(v);
        }

        if let Some(bi) = self.toks.iter().position(|t| t.kw == Kw::But) {
            but_check(&mut self.sentiments, bi);
        }
        score_valence(&self.sentiments, exclamations, questions)
    }

    /// `str.split()` over ASCII text, one token at a time; counts "!" and "?" on the way.
    fn tokenize_ascii(&mut self, text: &[u8]) -> (usize, usize) {
        let mut i = 0;
        let n = text.len();
        loop {
            while i < n && class(text[i]) & SPACE != 0 {
                i += 1;
            }
            if i == n {
                break;
            }
            let start = i;
            while i < n && class(text[i]) & SPACE == 0 {
                i += 1;
            }
            let tok = self.ascii_token(&text[start..i]);
            self.toks.push(tok);
        }
        count_marks(text)
    }

    /// One ASCII token: strip, case checks, lower-casing and lookup in a single pass.
    #[inline(always)]
    fn ascii_token(&self, raw: &[u8]) -> Tok {
        let (mut a, mut b) = (0, raw.len());
        while a < b && class(raw[a]) & PUNCT != 0 {
            a += 1;
        }
        while b > a && class(raw[b - 1]) & PUNCT != 0 {
            b -= 1;
        }
        let t = if b - a <= 2 { raw } else { &raw[a..b] };
        let (info, upper) = if t.len() <= lexicon::MAX_PACKED {
            // Case checks and lower-casing eight bytes at a time.
            let mut key = lexicon::pack(t);
            let (mut any_upper, mut any_lower) = (0u64, 0u64);
            for w in &mut key {
                let (up, low) = (swar_upper(*w), swar_lower(*w));
                any_upper |= up;
                any_lower |= low;
                *w |= up >> 2;
            }
            let info = self.lex.packed_word(&key, t.len()).copied();
            (info, any_upper != 0 && any_lower == 0)
        } else {
            let upper =
                t.iter().any(u8::is_ascii_uppercase) && !t.iter().any(u8::is_ascii_lowercase);
            (None, upper)
        };
        let info = info.unwrap_or_default();
        Tok {
            valence: info.valence,
            booster: info.booster,
            negated: info.negation || contains_nt_ascii(t),
            kw: info.kw,
            upper,
        }
    }

    fn token(&mut self, raw: &str) -> Tok {
        if raw.is_ascii() {
            return self.ascii_token(raw.as_bytes());
        }
        let t = strip_punc_if_word(raw);
        self.lower = t.to_lowercase();
        let lower = self.lower.as_str();
        let info = self.lex.word(lower.as_bytes()).copied().unwrap_or_default();
        Tok {
            valence: info.valence,
            booster: info.booster,
            negated: info.negation || lower.contains("n't"),
            kw: info.kw,
            upper: pytext::is_upper(t),
        }
    }

    /// `sentiment_valence` of the reference for the token at `i`.
    fn valence(&self, i: usize, cap_diff: bool) -> f64 {
        let toks = &self.toks;
        let n = toks.len();
        let t = toks[i];
        let Some(lex_valence) = t.valence else {
            return 0.0;
        };
        let mut v = lex_valence;
        // "no" right before a lexicon word negates that word instead of counting itself.
        if t.kw == Kw::No && i != n - 1 && toks[i + 1].valence.is_some() {
            v = 0.0;
        }
        if (i > 0 && toks[i - 1].kw == Kw::No)
            || (i > 1 && toks[i - 2].kw == Kw::No)
            || (i > 2 && toks[i - 3].kw == Kw::No && matches!(toks[i - 1].kw, Kw::Or | Kw::Nor))
        {
            // Note this also undoes the 0.0 above for a "no" after a "no" ("No no no").
            v = lex_valence * N_SCALAR;
        }
        if t.upper && cap_diff {
            // A zero valence (a "NO" before a lexicon word) goes down: the reference's else-branch.
            if v > 0.0 {
                v += C_INCR;
            } else {
                v -= C_INCR;
            }
        }
        for start_i in 0..3 {
            if i > start_i && toks[i - (start_i + 1)].valence.is_none() {
                let mut s = scalar_inc_dec(&toks[i - (start_i + 1)], v, cap_diff);
                if start_i == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start_i == 2 && s != 0.0 {
                    s *= 0.9;
                }
                v += s;
                v = self.negation_check(v, start_i, i);
                if start_i == 2 {
                    v = self.special_idioms_check(v, i);
                }
            }
        }
        self.least_check(v, i)
    }

    fn negation_check(&self, v: f64, start_i: usize, i: usize) -> f64 {
        let w = |k: usize| self.toks[i - k];
        let so_or_this = |k: usize| matches!(w(k).kw, Kw::So | Kw::This);
        match start_i {
            0 => {
                if w(1).negated {
                    return v * N_SCALAR;
                }
            }
            1 => {
                if w(2).kw == Kw::Never && so_or_this(1) {
                    return v * 1.25;
                } else if w(2).kw == Kw::Without && w(1).kw == Kw::Doubt {
                    return v;
                } else if w(2).negated {
                    return v * N_SCALAR;
                }
            }
            _ => {
                // The reference reads `a and (b or c) or (d or e)`: a "so" or "this" right before
                // the word scales it whenever this branch runs, "never" or not.
                if (w(3).kw == Kw::Never && so_or_this(2)) || so_or_this(1) {
                    return v * 1.25;
                } else if w(3).kw == Kw::Without && (w(2).kw == Kw::Doubt || w(1).kw == Kw::Doubt) {
                    return v;
                } else if w(3).negated {
                    return v * N_SCALAR;
                }
            }
        }
        v
    }

    fn matches(&self, start: usize, pattern: &[Kw]) -> bool {
        self.toks[start..start + pattern.len()]
            .iter()
            .zip(pattern)
            .all(|(t, k)| t.kw == *k)
    }

    fn special_case(&self, start: usize, len: usize) -> Option<f64> {
        SPECIAL_CASES
            .iter()
            .find(|(p, _)| p.len() == len && self.matches(start, p))
            .map(|&(_, v)| v)
    }

    /// `_special_idioms_check`; only called with `i >= 3`.
    fn special_idioms_check(&self, mut v: f64, i: usize) -> f64 {
        let n = self.toks.len();
        // onezero, twoonezero, twoone, threetwoone, threetwo: the first that matches wins.
        let before = [(i - 1, 2), (i - 2, 3), (i - 2, 2), (i - 3, 3), (i - 3, 2)];
        if let Some(x) = before.iter().find_map(|&(s, l)| self.special_case(s, l)) {
            v = x;
        }
        if n - 1 > i
            && let Some(x) = self.special_case(i, 2)
        {
            v = x;
        }
        if n - 1 > i + 1
            && let Some(x) = self.special_case(i, 3)
        {
            v = x;
        }
        // Two-word boosters add without regard to the valence's sign (threetwoone has three
        // words and can never be one of them).
        for (s, l) in [(i - 3, 2), (i - 2, 2)] {
            if let Some(&(_, b)) = BOOSTER_PHRASES
                .iter()
                .find(|(p, _)| p.len() == l && self.matches(s, p))
            {
                v += b;
            }
        }
        v
    }

    fn least_check(&self, v: f64, i: usize) -> f64 {
        let toks = &self.toks;
        let is_least = |k: usize| toks[k].valence.is_none() && toks[k].kw == Kw::Least;
        if i > 1 && is_least(i - 1) {
            if !matches!(toks[i - 2].kw, Kw::At | Kw::Very) {
                return v * N_SCALAR;
            }
        } else if i > 0 && is_least(i - 1) {
            return v * N_SCALAR;
        }
        v
    }
}

// Byte classes for the ASCII fast path (letter case is checked eight bytes at a time instead).
const SPACE: u8 = 0x01;
const PUNCT: u8 = 0x02;

static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if pytext::is_space_byte(c) {
            SPACE
        } else if c.is_ascii_punctuation() {
            PUNCT
        } else {
            0
        };
        b += 1;
    }
    t
};

#[inline(always)]
fn class(b: u8) -> u8 {
    CLASSES[b as usize]
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// 0x80 in each byte of `w` (ASCII bytes only) that is in `lo..=hi`.
#[inline(always)]
fn swar_range(w: u64, lo: u8, hi: u8) -> u64 {
    // Adding 0x80 - lo sets a byte's high bit exactly when the byte is >= lo; no byte below 0x80
    // carries into its neighbour.
    let ge_lo = w.wrapping_add(ONES * u64::from(0x80 - lo));
    let gt_hi = w.wrapping_add(ONES * u64::from(0x80 - hi - 1));
    ge_lo & !gt_hi & HIGH
}

/// 0x80 in each byte of `w` equal to `c`.
#[inline(always)]
fn swar_eq(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    !(((x & !HIGH).wrapping_add(!HIGH)) | x) & HIGH
}

/// Number of "!" and of "?" in `text`, eight bytes at a time.
fn count_marks(text: &[u8]) -> (usize, usize) {
    let (mut e, mut q) = (0, 0);
    let mut words = text.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        e += swar_eq(w, b'!').count_ones() as usize;
        q += swar_eq(w, b'?').count_ones() as usize;
    }
    for &b in words.remainder() {
        e += usize::from(b == b'!');
        q += usize::from(b == b'?');
    }
    (e, q)
}

#[inline(always)]
fn swar_upper(w: u64) -> u64 {
    swar_range(w, b'A', b'Z')
}

#[inline(always)]
fn swar_lower(w: u64) -> u64 {
    swar_range(w, b'a', b'z')
}

/// Whether the lower-cased form of an ASCII token contains "n't".
fn contains_nt_ascii(t: &[u8]) -> bool {
    t.windows(3)
        .any(|w| w[1] == b'\'' && w[0] | 0x20 == b'n' && w[2] | 0x20 == b't')
}

/// `scalar_inc_dec`: the push a preceding booster word gives to `valence`.
fn scalar_inc_dec(word: &Tok, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = word.booster else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar *= -1.0;
    }
    if word.upper && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

/// `_strip_punc_if_word`: strip ASCII punctuation from both ends, unless that leaves two
/// characters or fewer (emoticons such as ":)" and short words such as "ok!" stay whole).
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(pytext::is_ascii_punctuation);
    let short = if stripped.is_ascii() {
        stripped.len() <= 2
    } else {
        stripped.chars().nth(2).is_none()
    };
    if short { token } else { stripped }
}

/// The emoji pass of `polarity_scores`: each one-code-point emoji becomes its description, with a
/// space before it unless the previous character was a plain space, and none after it.
fn replace_emoji(lex: &Lexicon, text: &str, out: &mut String) {
    out.clear();
    out.reserve(text.len());
    let mut prev_space = true;
    for c in text.chars() {
        if let Some(description) = lex.emoji(c) {
            if !prev_space {
                out.push(' ');
            }
            out.push_str(description);
            prev_space = false;
        } else {
            out.push(c);
            prev_space = c == ' ';
        }
    }
}

/// `_but_check`, reproduced with its flaw: for each position the reference looks the value up
/// with `list.index`, so with repeated values it rescales the FIRST element holding that value
/// (possibly again), not the element at that position.
fn but_check(sentiments: &mut [f64], bi: usize) {
    let scale = |si: usize, v: f64| match si.cmp(&bi) {
        std::cmp::Ordering::Less => Some(v * 0.5),
        std::cmp::Ordering::Greater => Some(v * 1.5),
        std::cmp::Ordering::Equal => None,
    };
    if sentiments.len() <= 64 {
        for k in 0..sentiments.len() {
            let v = sentiments[k];
            let si = sentiments.iter().position(|&x| x == v).unwrap_or(k);
            if let Some(nv) = scale(si, v) {
                sentiments[si] = nv;
            }
        }
        return;
    }
    // Long token lists: the same walk with an index from each value to the positions holding it,
    // so a huge single "sentence" stays O(n log n). The position rescaled is always the first one
    // holding its value, i.e. the minimum of its set, so a min-heap per value is enough. 0.0 and
    // -0.0 compare equal in Python, so they share a key.
    let key = |v: f64| if v == 0.0 { 0u64 } else { v.to_bits() };
    let mut positions: FxHashMap<u64, Vec<Reverse<usize>>> = FxHashMap::default();
    for (j, &v) in sentiments.iter().enumerate() {
        positions.entry(key(v)).or_default().push(Reverse(j));
    }
    // Pushed in increasing order, each list is already a valid min-heap.
    let mut positions: FxHashMap<u64, BinaryHeap<Reverse<usize>>> = positions
        .into_iter()
        .map(|(k, v)| (k, BinaryHeap::from(v)))
        .collect();
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        let Some(heap) = positions.get_mut(&key(v)) else {
            continue;
        };
        let Some(&Reverse(si)) = heap.peek() else {
            continue;
        };
        if let Some(nv) = scale(si, v)
            && key(nv) != key(v)
        {
            heap.pop();
            positions.entry(key(nv)).or_default().push(Reverse(si));
            sentiments[si] = nv;
        }
    }
}

/// `score_valence` and `_sift_sentiment_scores`, then the reference's rounding.
fn score_valence(sentiments: &[f64], exclamations: usize, questions: usize) -> Scores {
    if sentiments.is_empty() {
        return Scores::default();
    }
    // Left-to-right summation, as CPython 3.11's sum() does (3.12 changed it).
    let mut sum_s = 0.0;
    for &s in sentiments {
        sum_s += s;
    }
    let ep = exclamations.min(4) as f64 * 0.292;
    let qm = match questions {
        0 | 1 => 0.0,
        2 | 3 => questions as f64 * 0.18,
        _ => 0.96,
    };
    let amplifier = ep + qm;
    if sum_s > 0.0 {
        sum_s += amplifier;
    } else if sum_s < 0.0 {
        sum_s -= amplifier;
    }
    let compound = (sum_s / (sum_s * sum_s + ALPHA).sqrt()).clamp(-1.0, 1.0);

    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0f64, 0.0f64, 0usize);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amplifier;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amplifier;
    }
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    Scores {
        neg: pytext::round((neg_sum / total).abs(), 3),
        neu: pytext::round((neu_count as f64 / total).abs(), 3),
        pos: pytext::round((pos_sum / total).abs(), 3),
        compound: pytext::round(compound, 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> f64 {
        polarity_scores(text).compound
    }

    #[test]
    fn the_reference_examples_score_as_in_python() {
        // Values printed by vaderSentiment 3.3.2's own demo.
        assert_eq!(
            polarity_scores("VADER is smart, handsome, and funny."),
            Scores {
                neg: 0.0,
                neu: 0.254,
                pos: 0.746,
                compound: 0.8316
            }
        );
        assert_eq!(
            c("VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!"),
            0.9469
        );
        assert_eq!(c("At least it isn't a horrible book."), 0.431);
        assert_eq!(c("Make sure you :) or :D today!"), 0.8633);
        assert_eq!(c("Not bad at all"), 0.431);
    }

    #[test]
    fn swar_case_checks_agree_with_the_byte_checks() {
        for b in 0u8..0x80 {
            let w = u64::from(b) << 24 | 0x61;
            assert_eq!(swar_upper(w) != 0, b.is_ascii_uppercase(), "{b}");
            assert_eq!(swar_lower(w) & !0x80 != 0, b.is_ascii_lowercase(), "{b}");
        }
    }

    #[test]
    fn marks_are_counted_in_any_byte_position() {
        let text = "a!?b!!c??d\u{e9}!x?!".as_bytes();
        let want = (
            text.iter().filter(|&&b| b == b'!').count(),
            text.iter().filter(|&&b| b == b'?').count(),
        );
        for start in 0..text.len() {
            let part = &text[start..];
            let want_part = (
                part.iter().filter(|&&b| b == b'!').count(),
                part.iter().filter(|&&b| b == b'?').count(),
            );
            assert_eq!(count_marks(part), want_part);
        }
        assert_eq!(count_marks(text), want);
    }

    #[test]
    fn repeated_no_counts_as_the_reference_does() {
        assert_eq!(c("No no no"), 0.4168);
    }

    #[test]
    fn empty_and_blank_text_score_zero() {
        assert_eq!(polarity_scores(""), Scores::default());
        assert_eq!(polarity_scores(" \t\u{3000} "), Scores::default());
    }

    #[test]
    fn the_long_but_walk_agrees_with_the_naive_walk_on_colliding_values() {
        // Values chosen so that rescaling produces values already present (1.5 * 0.5 = 0.75...).
        let pool = [
            0.0, -0.0, 0.75, 1.5, 3.0, -0.7, -1.4, 2.25, 1.125, -0.35, 4.5,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let n = 65 + (next() % 300) as usize;
            let values: Vec<f64> = (0..n).map(|_| pool[(next() % 11) as usize]).collect();
            let bi = (next() as usize) % n;
            let mut naive = values.clone();
            for k in 0..naive.len() {
                let v = naive[k];
                let si = naive.iter().position(|&x| x == v).unwrap();
                if si < bi {
                    naive[si] = v * 0.5;
                } else if si > bi {
                    naive[si] = v * 1.5;
                }
            }
            let mut fast = values.clone();
            but_check(&mut fast, bi);
            assert_eq!(naive, fast, "n={n} but at {bi}");
        }
    }

    #[test]
    fn the_long_but_walk_agrees_with_the_short_one() {
        let values: Vec<f64> = (0..200).map(|j| [0.0, 1.5, -0.7, 2.0][j % 4]).collect();
        for bi in [0, 3, 57, 199] {
            let mut short = values.clone();
            for k in 0..short.len() {
                let v = short[k];
                let si = short.iter().position(|&x| x == v).unwrap();
                if si < bi {
                    short[si] = v * 0.5;
                } else if si > bi {
                    short[si] = v * 1.5;
                }
            }
            let mut long = values.clone();
            but_check(&mut long, bi);
            assert_eq!(short, long, "but at {bi}");
        }
    }
}
