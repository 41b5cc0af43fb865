//! VADER's word knowledge, built into the binary: the valence lexicon, the emoji descriptions and
//! the reference's fixed word lists (negations, boosters, special-case idioms).
//!
//! Everything a token can be looked up for is merged into one table keyed by the lower-cased token,
//! so the scorer does a single hash lookup per token. The files are the unchanged copies shipped by
//! `vaderSentiment==3.3.2` (MIT, see `data/vader/README.md`) and are parsed once, on first use, with
//! the reference's own reading rules (a token listed twice keeps the last value).

use std::sync::LazyLock;

use rustc_hash::FxHashMap;

use super::pytext;

const VADER_LEXICON: &str = include_str!("../../data/vader/vader_lexicon.txt");
const EMOJI_LEXICON: &str = include_str!("../../data/vader/emoji_utf8_lexicon.txt");
/// The MIT notice that must travel with the lexicons.
pub const LICENSE: &str = include_str!("../../data/vader/LICENSE");

/// Mean rating increase of a booster word (B_INCR / B_DECR in the reference).
pub const B_INCR: f64 = 0.293;
pub const B_DECR: f64 = -0.293;

/// Words the rules test for by name. `Other` is every word without a rule of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kw {
    #[default]
    Other,
    No,
    But,
    Kind,
    Of,
    Least,
    At,
    Very,
    Never,
    So,
    This,
    Without,
    Doubt,
    Or,
    Nor,
    // Words of the special-case idioms and the two-word boosters.
    The,
    Shit,
    Bomb,
    Bad,
    Ass,
    Bus,
    Stop,
    Yeah,
    Right,
    Kiss,
    Death,
    To,
    Die,
    For,
    Beating,
    Heart,
    Just,
    Enough,
    Sort,
}

const KEYWORDS: &[(&str, Kw)] = &[
    ("no", Kw::No),
    ("but", Kw::But),
    ("kind", Kw::Kind),
    ("of", Kw::Of),
    ("least", Kw::Least),
    ("at", Kw::At),
    ("very", Kw::Very),
    ("never", Kw::Never),
    ("so", Kw::So),
    ("this", Kw::This),
    ("without", Kw::Without),
    ("doubt", Kw::Doubt),
    ("or", Kw::Or),
    ("nor", Kw::Nor),
    ("the", Kw::The),
    ("shit", Kw::Shit),
    ("bomb", Kw::Bomb),
    ("bad", Kw::Bad),
    ("ass", Kw::Ass),
    ("bus", Kw::Bus),
    ("stop", Kw::Stop),
    ("yeah", Kw::Yeah),
    ("right", Kw::Right),
    ("kiss", Kw::Kiss),
    ("death", Kw::Death),
    ("to", Kw::To),
    ("die", Kw::Die),
    ("for", Kw::For),
    ("beating", Kw::Beating),
    ("heart", Kw::Heart),
    ("just", Kw::Just),
    ("enough", Kw::Enough),
    ("sort", Kw::Sort),
];

/// SPECIAL_CASES of the reference, as word sequences. The one-word entry "badass" is left out on
/// purpose: the reference only ever looks up sequences of two or three words, so it never matches.
pub const SPECIAL_CASES: &[(&[Kw], f64)] = &[
    (&[Kw::The, Kw::Shit], 3.0),
    (&[Kw::The, Kw::Bomb], 3.0),
    (&[Kw::Bad, Kw::Ass], 1.5),
    (&[Kw::Bus, Kw::Stop], 0.0),
    (&[Kw::Yeah, Kw::Right], -2.0),
    (&[Kw::Kiss, Kw::Of, Kw::Death], -1.5),
    (&[Kw::To, Kw::Die, Kw::For], 3.0),
    (&[Kw::Beating, Kw::Heart], 3.5),
];

/// The multi-word entries of BOOSTER_DICT; single-word boosters live in the word table.
pub const BOOSTER_PHRASES: &[(&[Kw], f64)] = &[
    (&[Kw::Just, Kw::Enough], B_DECR),
    (&[Kw::Kind, Kw::Of], B_DECR),
    (&[Kw::Sort, Kw::Of], B_DECR),
];

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTERS_UP: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOSTERS_DOWN: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sorta",
    "sortof",
    "sort-of",
];

/// Everything the rules need to know about one lower-cased word.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordInfo {
    /// Valence from the lexicon, if the word is in it.
    pub valence: Option<f64>,
    /// Booster/dampener increment, if the word is a single-word booster.
    pub booster: Option<f64>,
    /// In the reference's NEGATE list (the "n't" rule is checked per token, not here).
    pub negation: bool,
    pub kw: Kw,
}

/// Longest word the packed table holds, in bytes (the lexicon's longest is 19).
pub const MAX_PACKED: usize = 24;

/// A word of up to [`MAX_PACKED`] bytes as three little-endian words, zero padded.
pub type Packed = [u64; 3];

/// Pack `word` (at most [`MAX_PACKED`] bytes).
#[inline]
pub fn pack(word: &[u8]) -> Packed {
    // Whole-word loads straight from the token: copying the bytes into a zeroed buffer first
    // and reading it back as words stalls on store forwarding, which cost more than the lookup.
    debug_assert!(word.len() <= MAX_PACKED);
    let mut out = [0u64; 3];
    for (w, chunk) in out.iter_mut().zip(word.chunks(8)) {
        *w = load_le(chunk);
    }
    out
}

/// Up to 8 bytes as a little-endian word, zero-extended, with at most two (overlapping) loads.
#[inline(always)]
fn load_le(c: &[u8]) -> u64 {
    let k = c.len();
    let u32_at = |i: usize| u64::from(u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]));
    match k {
        8.. => u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        4..=7 => u32_at(0) | (u32_at(k - 4) << ((k - 4) * 8)),
        1..=3 => {
            u64::from(c[0])
                | (u64::from(c[k / 2]) << (8 * (k / 2)))
                | (u64::from(c[k - 1]) << (8 * (k - 1)))
        }
        0 => 0,
    }
}

/// Open-addressed table from packed short words to their [`WordInfo`]: the scorer's one lookup
/// per token is a multiply and a probe of a compact slot array, with no hashing of byte strings.
///
/// The probed array holds only 32-bit slots (a 16-bit hash tag and a 16-bit entry index), so it
/// stays cache-resident (128 KiB); the words themselves are compared only when the tag matches.
struct PackedTable {
    /// 0 = empty; else `tag << 16 | (index into entries + 1)`.
    slots: Vec<u32>,
    entries: Vec<(Packed, usize, WordInfo)>,
    shift: u32,
}

impl PackedTable {
    fn build(words: &FxHashMap<&'static [u8], WordInfo>) -> PackedTable {
        let bits = (words.len() * 4).next_power_of_two().trailing_zeros();
        let mut table = PackedTable {
            slots: vec![0; 1 << bits],
            entries: Vec::with_capacity(words.len()),
            shift: 64 - bits,
        };
        assert!(
            words.len() < 0xFFFF,
            "the packed table indexes entries with 16 bits"
        );
        for (word, info) in words {
            assert!(
                word.len() <= MAX_PACKED,
                "lexicon word longer than {MAX_PACKED} bytes"
            );
            let key = pack(word);
            table.entries.push((key, word.len(), *info));
            let (mut at, tag) = table.slot(&key, word.len());
            while table.slots[at] != 0 {
                at = (at + 1) & (table.slots.len() - 1);
            }
            table.slots[at] = (tag << 16) | table.entries.len() as u32;
        }
        table
    }

    /// Start slot and 16-bit tag of a word.
    #[inline]
    fn slot(&self, key: &Packed, len: usize) -> (usize, u32) {
        let h = (key[0] ^ key[1].rotate_left(21) ^ key[2].rotate_left(42) ^ len as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> self.shift) as usize, (h & 0xFFFF) as u32)
    }

    #[inline]
    fn get(&self, key: &Packed, len: usize) -> Option<&WordInfo> {
        let mask = self.slots.len() - 1;
        let (mut at, tag) = self.slot(key, len);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return None;
            }
            if slot >> 16 == tag {
                let (k, l, info) = &self.entries[(slot & 0xFFFF) as usize - 1];
                if *l == len && k == key {
                    return Some(info);
                }
            }
            at = (at + 1) & mask;
        }
    }
}

pub struct Lexicon {
    packed: PackedTable,
    emoji: FxHashMap<char, &'static str>,
}

impl Lexicon {
    #[inline]
    pub fn word(&self, lower: &[u8]) -> Option<&WordInfo> {
        if lower.len() > MAX_PACKED {
            return None;
        }
        self.packed.get(&pack(lower), lower.len())
    }

    /// Look up a word already packed with [`pack`]; `len` is its length in bytes.
    #[inline]
    pub fn packed_word(&self, key: &Packed, len: usize) -> Option<&WordInfo> {
        self.packed.get(key, len)
    }

    /// The description of a one-code-point emoji. Longer emoji keys exist in the file but the
    /// reference looks up one code point at a time, so they can never match and are not kept.
    #[inline]
    pub fn emoji(&self, c: char) -> Option<&'static str> {
        self.emoji.get(&c).copied()
    }

    /// Number of distinct lexicon entries (for diagnostics and tests).
    pub fn valence_count(&self) -> usize {
        self.packed
            .entries
            .iter()
            .filter(|(_, _, w)| w.valence.is_some())
            .count()
    }

    fn build() -> Lexicon {
        let words = word_map();
        let mut emoji = FxHashMap::default();
        for line in lines(EMOJI_LEXICON) {
            let Some((key, description)) = first_two_fields(pytext::strip(line)) else {
                panic!("malformed line in the built-in emoji lexicon: {line:?}");
            };
            let mut chars = key.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emoji.insert(c, description);
            }
        }
        Lexicon {
            packed: PackedTable::build(&words),
            emoji,
        }
    }
}

/// Everything known about each word, merged from the lexicon file and the fixed word lists;
/// only needed while the packed table is built.
fn word_map() -> FxHashMap<&'static [u8], WordInfo> {
    let mut words: FxHashMap<&'static [u8], WordInfo> =
        FxHashMap::with_capacity_and_hasher(8192, Default::default());
    // make_lex_dict: rstrip("\n"), split on "\n", skip empty lines, strip() each line, take the
    // first two tab-separated fields, later lines overwrite earlier ones.
    for line in lines(VADER_LEXICON) {
        if line.is_empty() {
            continue;
        }
        let Some((word, measure)) = first_two_fields(pytext::strip(line)) else {
            panic!("malformed line in the built-in VADER lexicon: {line:?}");
        };
        let valence: f64 = measure
            .parse()
            .unwrap_or_else(|_| panic!("bad valence in the built-in VADER lexicon: {line:?}"));
        words.entry(word.as_bytes()).or_default().valence = Some(valence);
    }
    for &w in BOOSTERS_UP {
        words.entry(w.as_bytes()).or_default().booster = Some(B_INCR);
    }
    for &w in BOOSTERS_DOWN {
        words.entry(w.as_bytes()).or_default().booster = Some(B_DECR);
    }
    for &w in NEGATE {
        words.entry(w.as_bytes()).or_default().negation = true;
    }
    for &(w, kw) in KEYWORDS {
        words.entry(w.as_bytes()).or_default().kw = kw;
    }
    words
}

/// The lines of a lexicon file as the reference reads them: `rstrip("\n").split("\n")`.
fn lines(file: &'static str) -> impl Iterator<Item = &'static str> {
    let body = file.trim_end_matches('\n');
    let mut start = 0;
    memchr::memchr_iter(b'\n', body.as_bytes())
        .chain([body.len()])
        .map(move |end| {
            let line = &body[start..end];
            start = end + 1;
            line
        })
}

/// `line.split("\t")[0:2]`, when there are at least two fields.
fn first_two_fields(line: &str) -> Option<(&str, &str)> {
    let first = memchr::memchr(b'\t', line.as_bytes())?;
    let rest = &line[first + 1..];
    let second = memchr::memchr(b'\t', rest.as_bytes()).unwrap_or(rest.len());
    Some((&line[..first], &rest[..second]))
}

/// The lexicon, parsed on first use (about a millisecond) and shared by every thread.
pub fn lexicon() -> &'static Lexicon {
    static LEXICON: LazyLock<Lexicon> = LazyLock::new(Lexicon::build);
    &LEXICON
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_listed_twice_keeps_its_last_value() {
        let lex = lexicon();
        // "lol" appears twice in vader_lexicon.txt (2.9, then 1.8).
        assert_eq!(lex.word(b"lol").unwrap().valence, Some(1.8));
        assert_eq!(lex.valence_count(), 7506);
    }

    #[test]
    fn the_packed_table_finds_every_word_and_nothing_else() {
        let lex = lexicon();
        for (word, info) in &word_map() {
            let found = lex
                .packed_word(&pack(word), word.len())
                .expect("every word is packed");
            assert_eq!(found.valence, info.valence);
            assert_eq!(found.kw, info.kw);
        }
        assert!(lex.packed_word(&pack(b"good\0"), 5).is_none());
        assert!(lex.packed_word(&pack(b"goo"), 3).is_none());
    }

    #[test]
    fn packing_keeps_every_byte_in_place() {
        let word: Vec<u8> = (1..=24).collect();
        for len in 0..=24 {
            let mut bytes = [0u8; 24];
            bytes[..len].copy_from_slice(&word[..len]);
            let want: Vec<u64> = bytes
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(pack(&word[..len]).to_vec(), want, "length {len}");
        }
    }

    #[test]
    fn only_single_code_point_emoji_are_kept() {
        let lex = lexicon();
        assert_eq!(lex.emoji('😀'), Some("grinning face"));
        assert!(lex.emoji('a').is_none());
    }
}
