//! The few pieces of CPython 3.11 string and float behaviour that VADER's results depend on.
//!
//! The reference analyzer is Python code, and several of its outcomes hinge on what Python's `str`
//! methods consider whitespace, upper case or punctuation, and on how `round()` rounds. Rust's
//! standard library is close but not identical (Python's `isspace` also accepts U+001C..U+001F;
//! Python has no ties-away rounding), so the exact rules live here, each named after the Python
//! method it stands for.

/// `str.isspace()` for one character: Unicode White_Space plus the four ASCII information
/// separators U+001C..U+001F, which CPython counts as whitespace because of their bidi class.
#[inline]
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `is_space` for one ASCII byte.
#[inline]
pub const fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f)
}

/// `str.strip()` with no argument.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `str.split()` with no argument: runs of whitespace separate, no empty pieces.
pub fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|t| !t.is_empty())
}

/// `string.punctuation`: the 32 ASCII punctuation characters.
#[inline]
pub fn is_ascii_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// Titlecase letters (general category Lt), which make `isupper()` false.
#[inline]
fn is_titlecase(c: char) -> bool {
    matches!(c,
        '\u{01C5}' | '\u{01C8}' | '\u{01CB}' | '\u{01F2}'
        | '\u{1F88}'..='\u{1F8F}' | '\u{1F98}'..='\u{1F9F}' | '\u{1FA8}'..='\u{1FAF}'
        | '\u{1FBC}' | '\u{1FCC}' | '\u{1FFC}')
}

/// `str.isupper()`: at least one cased character, and no lower-case or title-case one.
pub fn is_upper(s: &str) -> bool {
    if s.is_ascii() {
        let b = s.as_bytes();
        return !b.iter().any(u8::is_ascii_lowercase) && b.iter().any(u8::is_ascii_uppercase);
    }
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// `round(x, digits)` for a float: the decimal with `digits` places nearest to the exact binary
/// value of `x`, exact ties to even, returned as the nearest `f64`.
///
/// `(x * 10^d).round() / 10^d` is wrong twice: the product is itself rounded (so a value just below
/// a half can land on it), and `round` breaks ties away from zero. The product's rounding error is
/// recovered exactly with a fused multiply-add, and it is only needed when the product is a tie.
#[inline]
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = match digits {
        3 => 1e3,
        4 => 1e4,
        _ => 10f64.powi(digits),
    };
    let p = x * scale;
    if !p.is_finite() {
        return x;
    }
    let floor = p.floor();
    let r = if p - floor == 0.5 {
        // `p` sits exactly on a half: the sign of the lost low part decides, and only a true tie
        // goes to the even neighbour.
        let err = x.mul_add(scale, -p);
        let up = err > 0.0 || (err == 0.0 && floor % 2.0 != 0.0);
        if up { floor + 1.0 } else { floor }
    } else {
        p.round()
    };
    // Keep the sign of zero as Python does (round(-0.00001, 4) == -0.0).
    (r / scale).copysign(if r == 0.0 { x } else { r })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_includes_information_separators() {
        assert!(is_space('\u{1c}') && is_space('\u{1f}') && is_space('\u{3000}'));
        assert!(!is_space('\u{200b}'));
        assert_eq!(
            split_whitespace(" a\u{1d}b\u{a0}\u{a0}c ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn isupper_follows_python() {
        assert!(is_upper("I") && is_upper(":D") && is_upper("ΟΔΟΣ") && is_upper("GOOD!"));
        assert!(!is_upper(":-)") && !is_upper("Good") && !is_upper("ǅ") && !is_upper(""));
    }

    #[test]
    fn round_breaks_exact_ties_to_even_and_respects_the_binary_value() {
        assert_eq!(round(0.125, 2), 0.12);
        assert_eq!(round(0.375, 2), 0.38);
        // 2.675 is stored as 2.67499999..., so Python gives 2.67.
        assert_eq!(round(2.675, 2), 2.67);
        assert_eq!(round(0.00005, 4), 0.0001); // 0.00005 is stored slightly above the half
        assert!(round(-0.00001, 4).is_sign_negative());
        assert_eq!(round(0.61234, 4), 0.6123);
        // Values Python 3.11 gives: the stored binary value decides, not the decimal text.
        assert_eq!(round(-0.61235, 4), -0.6123);
        assert_eq!(round(-0.375, 2), -0.38);
        assert_eq!(round(0.49999999999999994, 0), 0.0);
        assert_eq!(round(-2.5, 0), -2.0);
    }
}
