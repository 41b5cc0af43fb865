//! The language of an item, because VADER scores English only: a Spanish or Korean review comes
//! out "neutral" without a word of warning unless someone counts what is not English.
//!
//! `whichlang` was chosen by measurement (BENCHMARKS.md, "Language detection"): 16 languages,
//! the best accuracy of the candidates on short sentences and a few percent of the cost of
//! scoring, where `whatlang` labelled 23 % of English tweets as other languages and `lingua` was
//! hundreds of times slower. It always names a language, even for "lol" or "12345", so an item
//! with fewer than [`MIN_LETTERS`] letters is undetermined rather than guessed, and only the
//! first [`SAMPLE_BYTES`] of an item are read: enough to tell, and a long item costs no more
//! than a short one.

/// Fewest letters an item needs before its language is told (fewer: undetermined). Ten keeps
/// English false alarms near 2 % of tweets while leaving under 5 % of short Russian, Korean,
/// Japanese or Chinese sentences undetermined; twenty would leave 11-18 % of those.
pub const MIN_LETTERS: usize = 10;

/// Bytes of an item read to tell its language.
pub const SAMPLE_BYTES: usize = 128;

/// The codes [`detect`] gives: stored items name their language with one of them.
pub const CODES: [&str; 16] = [
    "ar", "zh", "de", "en", "fr", "hi", "it", "ja", "ko", "nl", "pt", "ru", "es", "sv", "tr", "vi",
];

/// `code` as one of [`CODES`], or None when it is none of them.
pub fn known(code: &str) -> Option<&'static str> {
    CODES.iter().find(|c| **c == code).copied()
}

/// The ISO 639-1 code of the language `text` is in, or None when it has too few letters to tell.
pub fn detect(text: &str) -> Option<&'static str> {
    let sample = &text[..text.floor_char_boundary(SAMPLE_BYTES)];
    // Letters: ASCII letters, and every non-ASCII character (scripts without case, accents).
    let letters = sample
        .bytes()
        .filter(|&b| b.is_ascii_alphabetic() || b >= 0xC0)
        .count();
    if letters < MIN_LETTERS {
        return None;
    }
    if looks_english(sample) {
        return Some("en");
    }
    use whichlang::Lang;
    Some(match whichlang::detect_language(sample) {
        Lang::Ara => "ar",
        Lang::Cmn => "zh",
        Lang::Deu => "de",
        Lang::Eng => "en",
        Lang::Fra => "fr",
        Lang::Hin => "hi",
        Lang::Ita => "it",
        Lang::Jpn => "ja",
        Lang::Kor => "ko",
        Lang::Nld => "nl",
        Lang::Por => "pt",
        Lang::Rus => "ru",
        Lang::Spa => "es",
        Lang::Swe => "sv",
        Lang::Tur => "tr",
        Lang::Vie => "vi",
    })
}

/// English words that are not words of the other Latin-script languages `whichlang` knows
/// (German, Dutch, Swedish, French, Spanish, Portuguese, Italian, Turkish, Vietnamese): "was",
/// "is", "of", "for", "in", "to", "we", "had", "will" and "but" are left out for that reason.
fn is_english_marker(word: &[u8]) -> bool {
    matches!(
        word,
        b"the"
            | b"and"
            | b"this"
            | b"that"
            | b"with"
            | b"you"
            | b"your"
            | b"are"
            | b"have"
            | b"has"
            | b"they"
            | b"would"
            | b"very"
            | b"my"
            | b"it"
            | b"its"
            | b"what"
            | b"when"
            | b"which"
            | b"there"
            | b"their"
            | b"just"
            | b"were"
            | b"our"
            | b"about"
            | b"not"
            | b"from"
    )
}

/// English without asking `whichlang`: two English marker words, or one in text of ASCII letters
/// only (the other Latin-script languages write most sentences with an accent somewhere). Most
/// items of most inputs are English, and this costs a fraction of a detection (BENCHMARKS.md).
fn looks_english(sample: &str) -> bool {
    let mut hits = 0;
    let mut word = [0u8; 8];
    for token in sample.as_bytes().split(|b| !b.is_ascii_alphabetic()) {
        if token.is_empty() || token.len() > word.len() {
            continue;
        }
        let word = &mut word[..token.len()];
        word.copy_from_slice(token);
        word.make_ascii_lowercase();
        if is_english_marker(word) {
            hits += 1;
            if hits == 2 {
                return true;
            }
        }
    }
    hits == 1 && sample.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_languages_are_told_apart_and_short_items_are_undetermined() {
        let cases = [
            ("The service was slow but the food was wonderful.", "en"),
            (
                "El servicio fue lento pero la comida estuvo deliciosa.",
                "es",
            ),
            ("서비스는 느렸지만 음식은 정말 훌륭했습니다.", "ko"),
            (
                "Der Service war langsam, aber das Essen war wunderbar.",
                "de",
            ),
            (
                "Le service était lent mais la nourriture était excellente.",
                "fr",
            ),
            ("サービスは遅かったが、料理は素晴らしかった。", "ja"),
        ];
        for (text, lang) in cases {
            assert_eq!(detect(text), Some(lang), "{text}");
        }
        for short in ["lol", "12345 678", "@user :)", "", "ok ok"] {
            assert_eq!(detect(short), None, "{short:?}");
        }
    }

    #[test]
    fn only_the_start_of_a_long_item_is_read() {
        let english = "This review is written in plain English, nothing else. ".repeat(3);
        let long = format!("{english}{}", "ñ".repeat(100_000));
        assert_eq!(detect(&long), Some("en"));
        // A cut inside a multi-byte character is moved back to its start.
        let wide = "é".repeat(200);
        assert!(detect(&wide).is_some());
    }
}
