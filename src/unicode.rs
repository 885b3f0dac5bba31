//! Character classes shared by the tokenizer's pre-tokenizers and the quality signals, with
//! ASCII fast paths. Definitions follow Unicode general categories (as `\p{L}` / `\p{N}` in
//! Oniguruma and Python's `str.isalpha`) and the `White_Space` property (as `\s`).

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// `\p{L}`: general category Lu, Ll, Lt, Lm or Lo (Python's `str.isalpha`).
#[inline]
pub fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
    )
}

/// `\p{N}`: general category Nd, Nl or No.
#[inline]
pub fn is_number(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    matches!(
        get_general_category(c),
        G::DecimalNumber | G::LetterNumber | G::OtherNumber
    )
}

/// `\s`: the Unicode `White_Space` property.
#[inline]
pub fn is_space(c: char) -> bool {
    if c.is_ascii() {
        return matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
    }
    c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_letter('a') && is_letter('é') && is_letter('中'));
        assert!(!is_letter('1') && !is_letter('_') && !is_letter('\u{0301}'));
        assert!(is_number('7') && is_number('٣') && is_number('½') && is_number('Ⅻ'));
        assert!(is_space(' ') && is_space('\u{3000}') && is_space('\u{85}'));
        assert!(!is_space('\u{200b}') && !is_space('\u{1c}'));
    }
}

/// What ingest needs of a file's bytes: whether they are UTF-8, and its length in code points
/// and lines, in one call (no decoded string is made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Stats {
    /// `None` for valid UTF-8; else the length of the longest valid prefix (Python's
    /// `UnicodeDecodeError.start`).
    pub invalid_at: Option<usize>,
    /// Code points (Python's `len(str)`), of the valid text.
    pub chars: usize,
    /// `\n` bytes.
    pub newlines: usize,
}

/// The [`Utf8Stats`] of `data`.
pub fn utf8_stats(data: &[u8]) -> Utf8Stats {
    let newlines = memchr::memchr_iter(b'\n', data).count();
    match std::str::from_utf8(data) {
        // A code point starts at every byte that is not a continuation byte (0b10xx_xxxx).
        Ok(_) => Utf8Stats {
            invalid_at: None,
            chars: data.iter().filter(|&&b| (b as i8) >= -0x40).count(),
            newlines,
        },
        Err(e) => Utf8Stats {
            invalid_at: Some(e.valid_up_to()),
            chars: 0,
            newlines,
        },
    }
}

#[cfg(test)]
mod utf8_stats_tests {
    use super::*;

    #[test]
    fn counts_code_points_and_newlines_or_finds_the_bad_byte() {
        let s = "naïve\ncafé — 数学 🎉\n";
        let got = utf8_stats(s.as_bytes());
        assert_eq!(got.invalid_at, None);
        assert_eq!(got.chars, s.chars().count());
        assert_eq!(got.newlines, 2);
        assert_eq!(utf8_stats(b"").chars, 0);
        let bad = utf8_stats(b"ok\n\xff rest");
        assert_eq!((bad.invalid_at, bad.newlines), (Some(3), 1));
        // A code point cut at the end is invalid from its first byte.
        assert_eq!(
            utf8_stats("ab€".as_bytes()[..4].as_ref()).invalid_at,
            Some(2)
        );
    }
}
