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
