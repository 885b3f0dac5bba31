//! Text splitting for the quality signals: lines, paragraphs, words, sentences, citations.
//!
//! Definitions (the Python reference in `tests/filter/reference.py` follows them literally):
//! - *whitespace* is the Unicode `White_Space` property ([`crate::unicode::is_space`]); `strip`
//!   removes it from both ends (Python's `str.strip()` also strips `\x1c`–`\x1f`, which are not
//!   `White_Space`).
//! - *words* are maximal runs of non-whitespace characters (the Gopher paper's definition).
//! - *lines* are the pieces of `text.split("\n")`, each without one trailing `"\r"`, and without
//!   the empty piece after a final `"\n"`: `str.splitlines()` for text whose only breaks are
//!   `"\n"` and `"\r\n"`.

use crate::unicode::is_space;
use unicode_general_category::{get_general_category, GeneralCategory as G};

/// `s` without leading and trailing whitespace.
#[inline]
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `s` without leading whitespace.
#[inline]
pub fn lstrip(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

/// `s` without trailing whitespace.
#[inline]
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Number of code points (Python's `len`).
#[inline]
pub fn char_len(s: &str) -> usize {
    s.as_bytes().iter().filter(|&&b| (b as i8) >= -0x40).count()
}

#[inline]
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Call `f` on every word (maximal run of non-`White_Space` characters) of `s`, in order.
#[inline]
pub fn for_each_word<'a>(s: &'a str, mut f: impl FnMut(&'a str)) {
    let bytes = s.as_bytes();
    if s.is_ascii() {
        let mut start: Option<usize> = None;
        for (i, &b) in bytes.iter().enumerate() {
            if is_ascii_space(b) {
                if let Some(st) = start.take() {
                    f(&s[st..i]);
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(st) = start {
            f(&s[st..]);
        }
        return;
    }
    let mut start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        if is_space(c) {
            if let Some(st) = start.take() {
                f(&s[st..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        f(&s[st..]);
    }
}

/// The lines of `text` (see the module docs): split on `"\n"`, one trailing `"\r"` removed from
/// each, no final empty piece after a trailing `"\n"`; `""` has no lines.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    body.split('\n')
        .filter(move |_| !empty)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Gopher repetition lines: `re.split("\n+", text)` (raw, `"\r"` kept, empty first/last pieces
/// kept).
pub fn line_runs(text: &str) -> impl Iterator<Item = &str> {
    split_on_newline_runs(text, 1)
}

/// Gopher repetition paragraphs: `re.split("\n{2,}", strip(text))`.
pub fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    split_on_newline_runs(strip(text), 2)
}

/// Pieces of `s` between runs of at least `min_run` consecutive `"\n"`.
fn split_on_newline_runs(s: &str, min_run: usize) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut pos = 0usize; // start of the current piece
    let mut search = 0usize; // where to look for the next "\n"
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        loop {
            match memchr::memchr(b'\n', &bytes[search..]) {
                None => {
                    done = true;
                    return Some(&s[pos..]);
                }
                Some(off) => {
                    let run_start = search + off;
                    let mut run_end = run_start;
                    while run_end < bytes.len() && bytes[run_end] == b'\n' {
                        run_end += 1;
                    }
                    search = run_end;
                    if run_end - run_start >= min_run {
                        let piece = &s[pos..run_start];
                        pos = run_end;
                        return Some(piece);
                    }
                }
            }
        }
    })
}

/// Unicode `Sentence_Terminal` (Unicode 15.1; the 159 code points of datatrove's
/// `TERMINAL_PUNCTUATION`), sorted.
const SENTENCE_TERMINAL: [u32; 159] = [
    0x0021, 0x002E, 0x003F, 0x0589, 0x061D, 0x061E, 0x061F, 0x06D4, 0x0700, 0x0701, 0x0702, 0x07F9,
    0x0837, 0x0839, 0x083D, 0x083E, 0x0964, 0x0965, 0x104A, 0x104B, 0x1362, 0x1367, 0x1368, 0x166E,
    0x1735, 0x1736, 0x17D4, 0x17D5, 0x17D6, 0x17D9, 0x17DA, 0x1803, 0x1809, 0x1944, 0x1945, 0x1AA8,
    0x1AA9, 0x1AAA, 0x1AAB, 0x1B5A, 0x1B5B, 0x1B5E, 0x1B5F, 0x1B7D, 0x1B7E, 0x1C3B, 0x1C3C, 0x1C7E,
    0x1C7F, 0x203C, 0x203D, 0x2047, 0x2048, 0x2049, 0x2E2E, 0x2E3C, 0x2E53, 0x2E54, 0x3002, 0xA4FF,
    0xA60E, 0xA60F, 0xA6F3, 0xA6F7, 0xA876, 0xA877, 0xA8CE, 0xA8CF, 0xA92F, 0xA9C8, 0xA9C9, 0xAA5D,
    0xAA5E, 0xAA5F, 0xAAF0, 0xAAF1, 0xABEB, 0xFE52, 0xFE56, 0xFE57, 0xFF01, 0xFF0E, 0xFF1F, 0xFF61,
    0x10A56, 0x10A57, 0x10F55, 0x10F56, 0x10F57, 0x10F58, 0x10F59, 0x10F86, 0x10F87, 0x10F88,
    0x10F89, 0x11047, 0x11048, 0x110BE, 0x110BF, 0x110C0, 0x110C1, 0x11141, 0x11142, 0x11143,
    0x111C5, 0x111C6, 0x111CD, 0x111DE, 0x111DF, 0x11238, 0x11239, 0x1123B, 0x1123C, 0x112A9,
    0x1144B, 0x1144C, 0x115C2, 0x115C3, 0x115C9, 0x115CA, 0x115CB, 0x115CC, 0x115CD, 0x115CE,
    0x115CF, 0x115D0, 0x115D1, 0x115D2, 0x115D3, 0x115D4, 0x115D5, 0x115D6, 0x115D7, 0x11641,
    0x11642, 0x1173C, 0x1173D, 0x1173E, 0x11944, 0x11946, 0x11A42, 0x11A43, 0x11A9B, 0x11A9C,
    0x11C41, 0x11C42, 0x11EF7, 0x11EF8, 0x11F43, 0x11F44, 0x16A6E, 0x16A6F, 0x16AF5, 0x16B37,
    0x16B38, 0x16B44, 0x16E98, 0x1BC9F, 0x1DA88,
];

/// Whether `c` is a sentence terminal (FineWeb's line-punctuation rule).
#[inline]
pub fn is_sentence_terminal(c: char) -> bool {
    if c.is_ascii() {
        return matches!(c, '.' | '!' | '?');
    }
    SENTENCE_TERMINAL.binary_search(&(c as u32)).is_ok()
}

/// Whether `c` is a "symbol" character for Gopher's non-symbol words: general category
/// punctuation (P*), symbol (S*) or control (Cc).
#[inline]
pub fn is_symbol_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() || c.is_ascii_control();
    }
    matches!(
        get_general_category(c),
        G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
            | G::MathSymbol
            | G::CurrencySymbol
            | G::ModifierSymbol
            | G::OtherSymbol
            | G::Control
    )
}

#[inline]
fn is_decimal_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == G::DecimalNumber
}

/// Length in bytes of a C4 citation starting at `s[0] == '['`: `\[\d*]`, `[edit]` or
/// `[citation needed]` (`\d` = general category Nd, as Python's `re`).
fn citation_len(s: &str) -> Option<usize> {
    for lit in ["[edit]", "[citation needed]"] {
        if s.starts_with(lit) {
            return Some(lit.len());
        }
    }
    for (i, c) in s.char_indices().skip(1) {
        if c == ']' {
            return Some(i + 1);
        }
        if !is_decimal_digit(c) {
            return None;
        }
    }
    None
}

/// `s` with C4's Wikipedia-style citations removed (`re.sub(r"\[\d*]|\[edit]|\[citation
/// needed]", "", s)`); borrows when there is none.
pub fn remove_citations(s: &str) -> std::borrow::Cow<'_, str> {
    let Some(first) = memchr::memchr(b'[', s.as_bytes()) else {
        return std::borrow::Cow::Borrowed(s);
    };
    let mut out = String::new();
    let mut copied = 0usize;
    let mut i = first;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'[' {
            if let Some(len) = citation_len(&s[i..]) {
                out.push_str(&s[copied..i]);
                i += len;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(s);
    }
    out.push_str(&s[copied..]);
    std::borrow::Cow::Owned(out)
}

/// Sentences in a line, by a simple splitter (C4 used NLTK's punkt; datatrove a spaCy
/// sentencizer): a word ends a sentence when, after removing trailing closing quotes and brackets
/// (`" ' ” ’ ) ]`), it ends with `.`, `!` or `?`; text after the last such word is one more
/// sentence. `"Dr. Smith left. Ok"` counts 3.
pub fn count_sentences(line: &str) -> usize {
    let mut n = 0usize;
    let mut open = false;
    for_each_word(line, |w| {
        let core = w.trim_end_matches(['"', '\'', '\u{201d}', '\u{2019}', ')', ']']);
        if core.ends_with(['.', '!', '?']) {
            n += 1;
            open = false;
        } else {
            open = true;
        }
    });
    n + usize::from(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        for_each_word(s, |w| v.push(w));
        v
    }

    #[test]
    fn words_split_on_white_space_only() {
        assert_eq!(words("  a b\tc\r\nd  "), ["a", "b", "c", "d"]);
        assert_eq!(words("é\u{3000}x\u{1c}y\u{85}z"), ["é", "x\u{1c}y", "z"]);
        assert!(words(" \n ").is_empty());
    }

    #[test]
    fn lines_like_splitlines() {
        assert_eq!(lines("a\nb\n").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(lines("a\r\n\nb").collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!(lines("\n").collect::<Vec<_>>(), [""]);
        assert_eq!(lines("").count(), 0);
    }

    #[test]
    fn newline_runs_like_re_split() {
        assert_eq!(
            line_runs("\na\n\n\nb\n").collect::<Vec<_>>(),
            ["", "a", "b", ""]
        );
        assert_eq!(line_runs("").collect::<Vec<_>>(), [""]);
        assert_eq!(
            paragraphs(" a\nb\n\nc\n\n\n").collect::<Vec<_>>(),
            ["a\nb", "c"]
        );
        assert_eq!(paragraphs("a\n\n\n\nb").collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn citations() {
        assert_eq!(
            remove_citations("a[1] b[] c[edit][citation needed]."),
            "a b c."
        );
        assert_eq!(remove_citations("x[a] [٣]y [12"), "x[a] y [12");
        assert!(matches!(
            remove_citations("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn sentences() {
        assert_eq!(count_sentences("Dr. Smith left. Ok"), 3);
        assert_eq!(count_sentences("He said \"Hi.\" Then left."), 2);
        assert_eq!(count_sentences("Wait... what?!"), 2);
        assert_eq!(count_sentences("   "), 0);
    }

    #[test]
    fn classes() {
        assert!(
            is_sentence_terminal('。') && is_sentence_terminal('?') && !is_sentence_terminal(',')
        );
        assert!(SENTENCE_TERMINAL.windows(2).all(|w| w[0] < w[1]));
        assert!(is_symbol_char('#') && is_symbol_char('…') && is_symbol_char('€'));
        assert!(!is_symbol_char('a') && !is_symbol_char('٣') && !is_symbol_char('中'));
        assert_eq!(char_len("héllo中"), 6);
        assert_eq!(strip("\u{3000} a \r\n"), "a");
    }
}
