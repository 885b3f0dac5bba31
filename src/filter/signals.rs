//! The quality signals of one document, computed in one pass over its lines and words.
//!
//! The column reference (what each signal counts) is the docstring of the Python module
//! `phicorpus.filter.signals`; the splitting rules are in [`super::text`]. Ratios whose
//! denominator is zero are 0. `tests/filter/reference.py` is a literal Python transcription.

use rustc_hash::FxHashSet;

use super::ngrams::NgramScratch;
use super::text::{
    char_len, count_sentences, for_each_word, line_runs, lines, lstrip, paragraphs,
    remove_citations, rstrip, strip,
};
use crate::unicode::is_letter;

/// Word n-gram sizes of the "top n-gram" signals.
pub const TOP_NGRAMS: std::ops::RangeInclusive<usize> = 2..=4;
/// Word n-gram sizes of the "duplicated n-gram" signals.
pub const DUP_NGRAMS: std::ops::RangeInclusive<usize> = 5..=10;

/// Signals of one document (see [`SIGNAL_NAMES`] for the column order and meaning).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    // Gopher repetition
    pub dup_para_frac: f64,
    pub dup_para_char_frac: f64,
    pub dup_line_frac: f64,
    pub dup_line_char_frac: f64,
    /// Indexed by n - 2.
    pub top_ngram_char_frac: [f64; 3],
    /// Indexed by n - 5.
    pub dup_ngram_char_frac: [f64; 6],
    // Gopher quality
    pub n_chars: u64,
    pub n_words: u64,
    pub n_non_symbol_words: u64,
    pub mean_word_length: f64,
    pub hash_word_ratio: f64,
    pub ellipsis_word_ratio: f64,
    pub bullet_line_frac: f64,
    pub ellipsis_line_frac: f64,
    pub alpha_word_frac: f64,
    pub stop_word_count: u64,
    // C4
    pub c4_lines_kept_frac: f64,
    pub c4_sentences: u64,
    pub c4_lorem_ipsum: bool,
    pub c4_curly_bracket: bool,
    pub c4_too_long_word_lines: u64,
    // FineWeb
    pub fineweb_lines: u64,
    pub fineweb_line_punct_ratio: f64,
    pub fineweb_short_line_ratio: f64,
    pub fineweb_char_dup_ratio: f64,
    pub fineweb_newline_word_ratio: f64,
}

/// Column names, in the order the bindings return them.
pub const SIGNAL_NAMES: [&str; 33] = [
    "dup_para_frac",
    "dup_para_char_frac",
    "dup_line_frac",
    "dup_line_char_frac",
    "top_2_gram_char_frac",
    "top_3_gram_char_frac",
    "top_4_gram_char_frac",
    "dup_5_gram_char_frac",
    "dup_6_gram_char_frac",
    "dup_7_gram_char_frac",
    "dup_8_gram_char_frac",
    "dup_9_gram_char_frac",
    "dup_10_gram_char_frac",
    "n_chars",
    "n_words",
    "n_non_symbol_words",
    "mean_word_length",
    "hash_word_ratio",
    "ellipsis_word_ratio",
    "bullet_line_frac",
    "ellipsis_line_frac",
    "alpha_word_frac",
    "stop_word_count",
    "c4_lines_kept_frac",
    "c4_sentences",
    "c4_lorem_ipsum",
    "c4_curly_bracket",
    "c4_too_long_word_lines",
    "fineweb_lines",
    "fineweb_line_punct_ratio",
    "fineweb_short_line_ratio",
    "fineweb_char_dup_ratio",
    "fineweb_newline_word_ratio",
];

/// Gopher's stop words (matched case-sensitively against whole words).
pub const STOP_WORDS: [&str; 8] = ["the", "be", "to", "of", "and", "that", "have", "with"];

/// C4: lines with a word longer than this (in characters) are dropped.
pub const C4_MAX_WORD_CHARS: usize = 1000;
/// C4: lines with fewer words are dropped.
pub const C4_MIN_WORDS_PER_LINE: usize = 3;
/// C4: lines containing one of these (lowercased) are dropped.
pub const C4_POLICY: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];
/// FineWeb: lines of at most this many characters are short.
pub const FINEWEB_SHORT_LINE_CHARS: usize = 30;

#[inline]
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Duplicate elements and the characters in them (datatrove's `find_duplicates`).
#[inline(never)]
fn find_duplicates<'a>(items: impl Iterator<Item = &'a str>) -> (u64, u64, u64) {
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let (mut total, mut dup, mut dup_chars) = (0u64, 0u64, 0u64);
    for item in items {
        total += 1;
        if !seen.insert(item) {
            dup += 1;
            dup_chars += char_len(item) as u64;
        }
    }
    (total, dup, dup_chars)
}

/// C4's phrases, matched in the lowercased line: bit 0 "lorem ipsum", bit 1 "javascript",
/// bits 2.. the policy phrases.
fn c4_phrases(line: &str) -> u32 {
    static AUTOMATON: std::sync::LazyLock<aho_corasick::AhoCorasick> =
        std::sync::LazyLock::new(|| {
            let patterns = ["lorem ipsum", "javascript"].into_iter().chain(C4_POLICY);
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(patterns)
                .expect("C4 phrases compile")
        });
    // ASCII case-insensitivity is Python's `str.lower()` on ASCII text; other text is lowercased
    // first (the Kelvin sign lowercases to "k", for one).
    let lowered;
    let hay = if line.is_ascii() {
        line
    } else {
        lowered = line.to_lowercase();
        &lowered
    };
    AUTOMATON
        .find_overlapping_iter(hay)
        .fold(0, |bits, m| bits | (1 << m.pattern().as_u32()))
}

#[inline]
fn word_is_alpha(w: &str) -> bool {
    if w.is_ascii() {
        w.bytes().any(|b| b.is_ascii_alphabetic())
    } else {
        w.chars().any(is_letter)
    }
}

#[inline]
fn word_is_non_symbol(w: &str) -> bool {
    if w.is_ascii() {
        w.bytes().any(|b| b.is_ascii_alphanumeric())
    } else {
        w.chars().any(|c| !super::text::is_symbol_char(c))
    }
}

#[inline]
fn stop_word_bit(w: &str) -> u8 {
    match w {
        "the" => 1,
        "be" => 2,
        "to" => 4,
        "of" => 8,
        "and" => 16,
        "that" => 32,
        "have" => 64,
        "with" => 128,
        _ => 0,
    }
}

/// Compute every signal of `text` in one pass over its lines and words.
pub fn compute(text: &str) -> Signals {
    let mut s = Signals::default();
    let n_chars = char_len(text) as u64;
    s.n_chars = n_chars;

    // Gopher repetition: paragraphs and newline-run lines.
    let (paras, dup_paras, dup_para_chars) = find_duplicates(paragraphs(text));
    s.dup_para_frac = ratio(dup_paras, paras);
    s.dup_para_char_frac = ratio(dup_para_chars, n_chars);
    let (runs, dup_runs, dup_run_chars) = find_duplicates(line_runs(text));
    s.dup_line_frac = ratio(dup_runs, runs);
    s.dup_line_char_frac = ratio(dup_run_chars, n_chars);

    // One pass over the lines: words, Gopher line rules, C4 line filter, FineWeb lines.
    let mut words: Vec<&str> = Vec::with_capacity(text.len() / 6 + 1);
    let mut word_chars: Vec<u32> = Vec::with_capacity(text.len() / 6 + 1);
    let (mut non_symbol, mut non_symbol_chars, mut alpha) = (0u64, 0u64, 0u64);
    let mut stop_bits = 0u8;
    let (mut n_lines, mut bullets, mut ellipsis_lines) = (0u64, 0u64, 0u64);
    let (mut c4_kept, mut c4_sentences, mut c4_long) = (0u64, 0u64, 0u64);
    let (mut fw_lines, mut fw_punct, mut fw_short, mut fw_dup_chars) = (0u64, 0u64, 0u64, 0u64);
    let mut fw_seen: FxHashSet<&str> = FxHashSet::default();

    for line in lines(text) {
        n_lines += 1;
        let first_word = words.len();
        let mut longest = 0u32;
        let ascii = line.is_ascii();
        for_each_word(line, |w| {
            let wc = if ascii { w.len() } else { char_len(w) } as u32;
            longest = longest.max(wc);
            if word_is_non_symbol(w) {
                non_symbol += 1;
                non_symbol_chars += u64::from(wc);
            }
            alpha += u64::from(word_is_alpha(w));
            if w.len() <= 4 {
                stop_bits |= stop_word_bit(w);
            }
            words.push(w);
            word_chars.push(wc);
        });
        let line_words = words.len() - first_word;

        // Gopher quality line rules.
        let left = lstrip(line);
        bullets += u64::from(left.starts_with('•') || left.starts_with('-'));
        let right = rstrip(line);
        ellipsis_lines += u64::from(right.ends_with("...") || right.ends_with('…'));

        // FineWeb: non-empty lines.
        let stripped = strip(line);
        if !stripped.is_empty() {
            fw_lines += 1;
            fw_punct += u64::from(
                line.chars()
                    .next_back()
                    .is_some_and(super::text::is_sentence_terminal),
            );
            let chars = if ascii { line.len() } else { char_len(line) };
            fw_short += u64::from(chars <= FINEWEB_SHORT_LINE_CHARS);
            if !fw_seen.insert(line) {
                fw_dup_chars += chars as u64;
            }
        }

        // C4 line filter (datatrove's C4QualityFilter with split_paragraph=True).
        if longest as usize > C4_MAX_WORD_CHARS {
            c4_long += 1;
            continue;
        }
        let cleaned = remove_citations(stripped);
        if !cleaned.ends_with(['.', '?', '!', '"', '\'']) || cleaned.ends_with("...") {
            continue;
        }
        if line_words < C4_MIN_WORDS_PER_LINE {
            continue;
        }
        let phrases = c4_phrases(&cleaned);
        if phrases & 1 != 0 {
            s.c4_lorem_ipsum = true;
        }
        if phrases & 2 != 0 {
            continue;
        }
        if cleaned.contains('{') {
            s.c4_curly_bracket = true;
        }
        if phrases >> 2 != 0 {
            continue;
        }
        c4_kept += 1;
        c4_sentences += count_sentences(&cleaned) as u64;
    }

    let n_words = words.len() as u64;
    s.n_words = n_words;
    s.n_non_symbol_words = non_symbol;
    s.mean_word_length = ratio(non_symbol_chars, non_symbol);
    let hashes = memchr::memchr_iter(b'#', text.as_bytes()).count() as u64;
    s.hash_word_ratio = ratio(hashes, n_words);
    let ellipses = (memchr::memmem::find_iter(text.as_bytes(), "...").count()
        + memchr::memmem::find_iter(text.as_bytes(), "…").count()) as u64;
    s.ellipsis_word_ratio = ratio(ellipses, n_words);
    s.bullet_line_frac = ratio(bullets, n_lines);
    s.ellipsis_line_frac = ratio(ellipsis_lines, n_lines);
    s.alpha_word_frac = ratio(alpha, n_words);
    s.stop_word_count = u64::from(stop_bits.count_ones());

    s.c4_lines_kept_frac = ratio(c4_kept, n_lines);
    s.c4_sentences = c4_sentences;
    s.c4_too_long_word_lines = c4_long;

    let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count() as u64;
    s.fineweb_lines = fw_lines;
    s.fineweb_line_punct_ratio = ratio(fw_punct, fw_lines);
    s.fineweb_short_line_ratio = ratio(fw_short, fw_lines);
    s.fineweb_char_dup_ratio = ratio(fw_dup_chars, n_chars - newlines);
    s.fineweb_newline_word_ratio = ratio(newlines, n_words);

    // Word n-grams.
    NGRAM_SCRATCH.with_borrow_mut(|scratch| {
        scratch.load(&words, &word_chars);
        for (k, n) in TOP_NGRAMS.enumerate() {
            s.top_ngram_char_frac[k] = ratio(scratch.top_ngram_chars(&words, n), n_chars);
        }
        for (k, n) in DUP_NGRAMS.enumerate() {
            s.dup_ngram_char_frac[k] = ratio(scratch.dup_ngram_chars(&words, n), n_chars);
        }
        // Buffers are kept for the next document, but not the tens of MB of a huge one.
        if words.len() > SCRATCH_KEEP_WORDS {
            *scratch = NgramScratch::default();
        }
    });
    s
}

/// Documents with more words than this release the n-gram buffers after use.
const SCRATCH_KEEP_WORDS: usize = 1 << 18;

thread_local! {
    static NGRAM_SCRATCH: std::cell::RefCell<NgramScratch> = std::cell::RefCell::new(NgramScratch::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_signals() {
        let s = compute("a\n\nb\n\na\n\na");
        assert_eq!(s.dup_para_frac, 0.5);
        assert_eq!(s.dup_para_char_frac, 2.0 / 10.0);
        assert_eq!(s.n_words, 4);
        let s = compute("");
        assert_eq!(s, Signals::default());
        let s = compute("- one two three.\n- x\n");
        assert_eq!(s.bullet_line_frac, 1.0);
        assert_eq!(s.c4_sentences, 1);
        assert_eq!(s.fineweb_newline_word_ratio, 2.0 / 6.0);
    }

    #[test]
    fn c4_flags() {
        let s = compute("Lorem Ipsum dolor sit.\nfunction x() { return 1; }.\n");
        assert!(s.c4_lorem_ipsum && s.c4_curly_bracket);
        let s = compute("Enable JavaScript { now }.");
        assert!(!s.c4_curly_bracket);
        assert_eq!(s.c4_lines_kept_frac, 0.0);
    }
}
