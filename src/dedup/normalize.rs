//! Text normalization and word n-gram shingles shared by MinHash and exact hashes.
//!
//! The normalization (the one definition; `phicorpus.dedup.normalize_text` documents it too):
//!
//! 1. Every character is lowercased on its own with Unicode's default case mapping
//!    (`char::to_lowercase`, so `İ` becomes `i̇`; no context-sensitive final sigma).
//! 2. Letters (`L*`), numbers (`N*`) and combining marks (`M*`) are kept.
//! 3. Apostrophes (`'` U+0027 and `’` U+2019) are deleted, so `don't` and `dont` are one word.
//! 4. Every other character (punctuation, symbols, whitespace, controls, ...) is a word
//!    separator: runs of separators become one ASCII space, and the text is trimmed.
//!
//! The result is words joined by single spaces, so the bytes of the words `i..i+n` are one
//! contiguous range of the normalized buffer: a shingle is hashed straight from that range.

use crate::unicode::{is_letter, is_number};
use unicode_general_category::{get_general_category, GeneralCategory as G};

/// What the normalization does with one ASCII byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ascii {
    Keep(u8),
    Delete,
    Separator,
}

const fn ascii_class(b: u8) -> Ascii {
    match b {
        b'a'..=b'z' | b'0'..=b'9' => Ascii::Keep(b),
        b'A'..=b'Z' => Ascii::Keep(b + 32),
        b'\'' => Ascii::Delete,
        _ => Ascii::Separator,
    }
}

static ASCII: [Ascii; 128] = {
    let mut t = [Ascii::Separator; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = ascii_class(i as u8);
        i += 1;
    }
    t
};

#[inline]
fn is_mark(c: char) -> bool {
    matches!(
        get_general_category(c),
        G::NonspacingMark | G::SpacingMark | G::EnclosingMark
    )
}

/// Normalize `text` into `out` (cleared first) and record each word's byte range in `words`
/// (cleared first). See the module documentation for the scheme.
pub fn normalize_into(text: &str, out: &mut String, words: &mut Vec<(u32, u32)>) {
    out.clear();
    words.clear();
    out.reserve(text.len());
    // Safety of the byte pushes below: only ASCII bytes are pushed byte-wise, the rest as chars.
    let mut in_word = false;
    let mut start = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 128 {
            i += 1;
            match ASCII[b as usize] {
                Ascii::Keep(k) => {
                    if !in_word {
                        if !out.is_empty() {
                            out.push(' ');
                        }
                        start = out.len();
                        in_word = true;
                    }
                    out.push(k as char);
                }
                Ascii::Delete => {}
                Ascii::Separator => {
                    if in_word {
                        words.push((start as u32, out.len() as u32));
                        in_word = false;
                    }
                }
            }
            continue;
        }
        // Non-ASCII: decode one char (text is valid UTF-8, so this cannot fail).
        let c = text[i..].chars().next().unwrap_or('\u{fffd}');
        i += c.len_utf8();
        if c == '\u{2019}' {
            continue;
        }
        if is_letter(c) || is_number(c) || is_mark(c) {
            if !in_word {
                if !out.is_empty() {
                    out.push(' ');
                }
                start = out.len();
                in_word = true;
            }
            out.extend(c.to_lowercase());
        } else if in_word {
            words.push((start as u32, out.len() as u32));
            in_word = false;
        }
    }
    if in_word {
        words.push((start as u32, out.len() as u32));
    }
}

/// The normalized form of `text` (see the module documentation).
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    let mut words = Vec::new();
    normalize_into(text, &mut out, &mut words);
    out
}

/// Byte ranges of the word `ngram`-shingles of a normalized buffer whose words are `words`.
///
/// A document with at least one but fewer than `ngram` words is one shingle of all its words;
/// a document without words has no shingles. `ngram` must be at least 1.
#[inline]
pub fn shingle_ranges(
    words: &[(u32, u32)],
    ngram: usize,
) -> impl Iterator<Item = (usize, usize)> + '_ {
    let n = ngram.max(1);
    let count = if words.is_empty() {
        0
    } else if words.len() < n {
        1
    } else {
        words.len() - n + 1
    };
    let last = words.len().saturating_sub(1);
    (0..count).map(move |i| {
        let end = (i + n - 1).min(last);
        (words[i].0 as usize, words[end].1 as usize)
    })
}

/// The shingle strings of `text` (normalized first), in document order, duplicates kept.
/// For tests and debugging; the hot path hashes the byte ranges without building strings.
pub fn shingles(text: &str, ngram: usize) -> Vec<String> {
    let mut buf = String::new();
    let mut words = Vec::new();
    normalize_into(text, &mut buf, &mut words);
    shingle_ranges(&words, ngram)
        .map(|(s, e)| buf[s..e].to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_cases() {
        assert_eq!(normalize("Hello, World!"), "hello world");
        assert_eq!(normalize("  a\t\nb  "), "a b");
        assert_eq!(normalize("Don't stop"), "dont stop");
        assert_eq!(normalize("it\u{2019}s"), "its");
        assert_eq!(normalize("x=1+2; y_3"), "x 1 2 y 3");
        assert_eq!(normalize("state-of-the-art"), "state of the art");
        assert_eq!(normalize("ÉCOLE Straße"), "école straße");
        assert_eq!(normalize("e\u{0301}t\u{00e9}"), "e\u{0301}t\u{00e9}");
        assert_eq!(normalize("中文，测试。"), "中文 测试");
        assert_eq!(normalize("İ"), "i\u{0307}");
        assert_eq!(normalize("½ ٣"), "½ ٣");
        assert_eq!(normalize("!!! ... ???"), "");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn word_ranges_match_split() {
        let mut out = String::new();
        let mut words = Vec::new();
        normalize_into("The QUICK, brown fox's jump.", &mut out, &mut words);
        let got: Vec<&str> = words
            .iter()
            .map(|&(s, e)| &out[s as usize..e as usize])
            .collect();
        assert_eq!(got, out.split(' ').collect::<Vec<_>>());
        assert_eq!(got, ["the", "quick", "brown", "foxs", "jump"]);
    }

    #[test]
    fn shingling() {
        assert_eq!(shingles("a b c d", 2), ["a b", "b c", "c d"]);
        assert_eq!(shingles("A, b. C", 3), ["a b c"]);
        // Short documents are one shingle of all their words.
        assert_eq!(shingles("one two", 5), ["one two"]);
        assert_eq!(shingles("one", 5), ["one"]);
        assert!(shingles("  ,, ", 5).is_empty());
        assert_eq!(shingles("x x x", 1), ["x", "x", "x"]);
        assert_eq!(shingles("a b c d e f", 5), ["a b c d e", "b c d e f"]);
    }
}
