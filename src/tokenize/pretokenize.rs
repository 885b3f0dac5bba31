//! Pre-tokenizers: split a text segment into the pieces BPE encodes one by one.
//!
//! The GPT-2 and Llama-3 (cl100k) patterns have hand-written scanners that give exactly the
//! matches of the regex (as Oniguruma runs it in `tokenizers`) without a regex engine; any other
//! `Split` pattern runs through `fancy-regex`.

use crate::unicode::{is_letter, is_number, is_space};

/// The GPT-2 pattern, as `tokenizers` writes it in `ByteLevel(use_regex=true)` / `Split`.
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// The Llama-3 / cl100k pattern.
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a segment is cut into pieces.
#[derive(Debug)]
pub enum Splitter {
    /// The whole segment is one piece (`ByteLevel(use_regex=false)` alone).
    Whole,
    /// The GPT-2 pattern.
    Gpt2,
    /// The Llama-3 / cl100k pattern.
    Llama3,
    /// Any other pattern, with `Isolated` behaviour: matches and the gaps between them are pieces.
    Regex(Box<fancy_regex::Regex>),
}

impl Splitter {
    /// The splitter for a `Split` regex pattern: a scanner when the pattern is a known one.
    pub fn from_pattern(pattern: &str) -> Result<Self, String> {
        if pattern == GPT2_PATTERN {
            return Ok(Self::Gpt2);
        }
        if pattern == LLAMA3_PATTERN {
            return Ok(Self::Llama3);
        }
        fancy_regex::Regex::new(pattern)
            .map(|re| Self::Regex(Box::new(re)))
            .map_err(|e| format!("Split regex {pattern:?} does not compile: {e}"))
    }

    /// Call `emit.emit(start, end)` on the byte range of each piece of `s`, in order.
    #[inline(always)]
    pub(crate) fn split_ranges(
        &self,
        s: &str,
        simd: super::scan::Simd,
        mut emit: impl super::scan::Emit,
    ) {
        match self {
            Self::Gpt2 => super::scan::block_pieces(
                super::scan::Pattern::Gpt2,
                simd,
                s.as_bytes(),
                |i| gpt2_end(s, i),
                emit,
            ),
            Self::Llama3 => super::scan::block_pieces(
                super::scan::Pattern::Llama3,
                simd,
                s.as_bytes(),
                |i| llama3_end(s, i),
                emit,
            ),
            _ => {
                let base = s.as_ptr() as usize;
                self.split(s, |p| {
                    let a = p.as_ptr() as usize - base;
                    emit.emit(a, a + p.len())
                });
            }
        }
    }

    /// Call `emit` on each piece of `s`, in order; the pieces cover `s` exactly.
    #[inline]
    pub fn split<'a>(&self, s: &'a str, emit: impl FnMut(&'a str)) {
        match self {
            Self::Whole => {
                let mut emit = emit;
                if !s.is_empty() {
                    emit(s);
                }
            }
            Self::Gpt2 => {
                let mut emit = emit;
                super::scan::block_pieces(
                    super::scan::Pattern::Gpt2,
                    super::scan::Simd::Base,
                    s.as_bytes(),
                    |i| gpt2_end(s, i),
                    // SAFETY: the block scanner cuts only before ASCII bytes, at the end, or
                    // where `gpt2_end` (which works on chars) did.
                    |a, b| emit(unsafe { s.get_unchecked(a..b) }),
                )
            }
            Self::Llama3 => {
                let mut emit = emit;
                super::scan::block_pieces(
                    super::scan::Pattern::Llama3,
                    super::scan::Simd::Base,
                    s.as_bytes(),
                    |i| llama3_end(s, i),
                    // SAFETY: as for GPT-2.
                    |a, b| emit(unsafe { s.get_unchecked(a..b) }),
                )
            }
            Self::Regex(re) => split_regex(re, s, emit),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

const fn ascii_classes() -> [Class; 128] {
    let mut t = [Class::Other; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        t[i] = if b.is_ascii_alphabetic() {
            Class::Letter
        } else if b.is_ascii_digit() {
            Class::Number
        } else if matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            Class::Space
        } else {
            Class::Other
        };
        i += 1;
    }
    t
}

static ASCII_CLASS: [Class; 128] = ascii_classes();

#[inline(always)]
fn class_of(c: char) -> Class {
    if (c as u32) < 128 {
        return ASCII_CLASS[c as usize];
    }
    if is_letter(c) {
        Class::Letter
    } else if is_number(c) {
        Class::Number
    } else if is_space(c) {
        Class::Space
    } else {
        Class::Other
    }
}

/// The char starting at byte `i` of `s` (which must be a char boundary) and its length.
#[inline(always)]
fn char_at(s: &str, i: usize) -> (char, usize) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        return (b as char, 1);
    }
    // SAFETY-free slow path: `i` is a char boundary by construction of every caller.
    let c = s[i..].chars().next().unwrap_or('\u{fffd}');
    (c, c.len_utf8())
}

/// The class of the char at `i`, or `None` at the end of `s`.
#[inline(always)]
fn class_at(s: &str, i: usize) -> Option<(Class, usize)> {
    if i >= s.len() {
        return None;
    }
    let (c, l) = char_at(s, i);
    Some((class_of(c), l))
}

/// End of the run of chars of class `class` starting at `i`.
#[inline(always)]
fn run_end(s: &str, mut i: usize, class: Class) -> usize {
    let b = s.as_bytes();
    while i < b.len() {
        if b[i] < 0x80 {
            if ASCII_CLASS[b[i] as usize] != class {
                break;
            }
            i += 1;
        } else {
            let (c, l) = char_at(s, i);
            if class_of(c) != class {
                break;
            }
            i += l;
        }
    }
    i
}

/// The scalar scanners' loop (the reference the block scanner is tested against).
#[cfg(test)]
fn scan<'a>(s: &'a str, end_of: impl Fn(&str, usize) -> usize, mut emit: impl FnMut(&'a str)) {
    let mut i = 0;
    while i < s.len() {
        let j = end_of(s, i);
        debug_assert!(j > i);
        emit(&s[i..j]);
        i = j;
    }
}

/// Whitespace run at `i` for `\s+(?!\S)|\s+`: the whole run when it ends the text or is one
/// char long, else the run less its last char (which then leads the next piece).
#[inline(always)]
fn space_run_end(s: &str, i: usize) -> usize {
    let b = s.as_bytes();
    let mut j = i;
    let mut last = i;
    while j < b.len() {
        let (c, l) = char_at(s, j);
        if !is_space(c) {
            break;
        }
        last = j;
        j += l;
    }
    if j == b.len() || last == i {
        j
    } else {
        last
    }
}

/// Length of a case-sensitive contraction (`s t re ve m ll d`) at the start of `rest`.
#[inline(always)]
fn contraction(rest: &[u8]) -> usize {
    match rest {
        [b's' | b't' | b'm' | b'd', ..] => 1,
        [b'r', b'e', ..] | [b'v', b'e', ..] | [b'l', b'l', ..] => 2,
        _ => 0,
    }
}

/// Length in bytes of a case-insensitive contraction at `i` (Unicode simple case folding:
/// `ſ` U+017F folds to `s`).
#[inline(always)]
fn contraction_ci(s: &str, i: usize) -> usize {
    let b = s.as_bytes();
    let lower = |k: usize| b.get(k).map(|x| x.to_ascii_lowercase());
    match lower(i) {
        Some(b's' | b't' | b'm' | b'd') => 1,
        Some(b'r') if lower(i + 1) == Some(b'e') => 2,
        Some(b'v') if lower(i + 1) == Some(b'e') => 2,
        Some(b'l') if lower(i + 1) == Some(b'l') => 2,
        Some(0xC5) if b.get(i + 1) == Some(&0xBF) => 2,
        _ => 0,
    }
}

/// End of the GPT-2 pattern's match at `i`:
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
#[inline]
fn gpt2_end(s: &str, i: usize) -> usize {
    let b = s.as_bytes();
    let (c, l) = char_at(s, i);
    if c == '\'' {
        let n = contraction(&b[i + 1..]);
        if n > 0 {
            return i + 1 + n;
        }
    }
    let mut class = class_of(c);
    let mut start = i + l;
    if c == ' ' {
        match class_at(s, i + 1) {
            Some((next, nl)) if next != Class::Space => {
                class = next;
                start = i + 1 + nl;
            }
            _ => {}
        }
    }
    match class {
        Class::Space => space_run_end(s, i),
        class => run_end(s, start, class),
    }
}

#[inline(always)]
fn crlf_run_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// End of the Llama-3 pattern's match at `i`:
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
#[inline]
fn llama3_end(s: &str, i: usize) -> usize {
    let b = s.as_bytes();
    let (c, l) = char_at(s, i);
    if c == '\'' {
        let n = contraction_ci(s, i + 1);
        if n > 0 {
            return i + 1 + n;
        }
    }
    let class = class_of(c);
    match class {
        Class::Letter => return run_end(s, i + l, Class::Letter),
        Class::Number => {
            let mut j = i + l;
            for _ in 0..2 {
                match class_at(s, j) {
                    Some((Class::Number, nl)) => j += nl,
                    _ => break,
                }
            }
            return j;
        }
        _ => {}
    }
    // `c` is whitespace or other: one such char (not \r \n) may lead a run of letters.
    let next = class_at(s, i + l);
    if c != '\r' && c != '\n' {
        if let Some((Class::Letter, nl)) = next {
            return run_end(s, i + l + nl, Class::Letter);
        }
    }
    if class == Class::Other {
        return crlf_run_end(b, run_end(s, i + l, Class::Other));
    }
    if c == ' ' {
        if let Some((Class::Other, nl)) = next {
            return crlf_run_end(b, run_end(s, i + 1 + nl, Class::Other));
        }
    }
    // Whitespace: `\s*[\r\n]+` ends after the run's last \r or \n, if it has one.
    let mut j = i;
    let mut last = i;
    let mut after_crlf = None;
    while j < b.len() {
        let (c, l) = char_at(s, j);
        if !is_space(c) {
            break;
        }
        if c == '\r' || c == '\n' {
            after_crlf = Some(j + 1);
        }
        last = j;
        j += l;
    }
    if let Some(end) = after_crlf {
        return end;
    }
    if j == b.len() || last == i {
        j
    } else {
        last
    }
}

fn split_regex<'a>(re: &fancy_regex::Regex, s: &'a str, mut emit: impl FnMut(&'a str)) {
    let mut last = 0;
    for m in re.find_iter(s) {
        let Ok(m) = m else {
            // Backtracking limit hit: the rest of the segment stays one piece.
            break;
        };
        if m.start() == m.end() {
            continue;
        }
        if m.start() > last {
            emit(&s[last..m.start()]);
        }
        emit(m.as_str());
        last = m.end();
    }
    if last < s.len() {
        emit(&s[last..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(splitter: &Splitter, s: &str) -> Vec<String> {
        let mut out = Vec::new();
        splitter.split(s, |p| out.push(p.to_string()));
        out
    }

    fn check_against_regex(pattern: &str, fast: &Splitter, s: &str) {
        let slow = Splitter::Regex(Box::new(fancy_regex::Regex::new(pattern).unwrap()));
        assert_eq!(pieces(fast, s), pieces(&slow, s), "on {s:?}");
    }

    const TRICKY: &[&str] = &[
        "",
        "Hello world",
        "  leading and trailing  ",
        "a  b   c\t\td\n\ne \n f",
        "x \u{3000}y\u{a0}z\u{2028}w",
        "I'm he's they'll we'd 'S 'LL 'Re can't",
        "''s ''' '",
        "12345 67 8 1234567",
        "def f(x):\n    return x**2  # comment\r\n\r\n\tpass\n",
        "naïve café Ωmega 中文字符 العربية é\u{301}",
        "👍🏽 👨‍👩‍👧 !!! ... ?!",
        "   \n  \n\n   x",
        "\r\n\r\n",
        "a\u{85}b",
        "foo.bar(baz)[0]",
        "$100,000.00 ½ Ⅻ ٣٤٥",
    ];

    #[test]
    fn gpt2_matches_regex() {
        for s in TRICKY {
            check_against_regex(GPT2_PATTERN, &Splitter::Gpt2, s);
        }
    }

    #[test]
    fn llama3_matches_regex() {
        for s in TRICKY {
            check_against_regex(LLAMA3_PATTERN, &Splitter::Llama3, s);
        }
    }

    /// Random strings over an alphabet heavy in the characters whose rules interact
    /// (`PHICORPUS_FUZZ_SCALE` multiplies `count`, for longer runs by hand).
    fn random_texts(seed: u64, count: usize) -> Vec<String> {
        let scale: usize = std::env::var("PHICORPUS_FUZZ_SCALE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let count = count * scale;
        const ALPHABET: &[&str] = &[
            "a", "Z", "q", "0", "7", " ", " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "'", "'s",
            "'ll", "'S", "'re", ".", "(", "_", "é", "中", "\u{3000}", "\u{a0}", "\u{85}", "1",
            "ab", "  x", "\n\n", "😀", "½",
        ];
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        (0..count)
            .map(|_| {
                let len = next() % 200;
                let ascii_only = next() % 3 == 0;
                (0..len)
                    .map(|_| loop {
                        let t = ALPHABET[next() % ALPHABET.len()];
                        if !ascii_only || t.is_ascii() {
                            break t;
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The pieces of `s` by `split_ranges` with each classifier the CPU has.
    fn pieces_each_simd(splitter: &Splitter, s: &str) -> Vec<Vec<String>> {
        let mut simds = vec![super::super::scan::Simd::Base];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
            simds.push(super::super::scan::Simd::Avx512);
        }
        simds
            .into_iter()
            .map(|simd| {
                let mut out = Vec::new();
                splitter.split_ranges(s, simd, |a: usize, b: usize| out.push(s[a..b].to_string()));
                out
            })
            .collect()
    }

    #[test]
    fn block_scanners_agree_on_each_simd() {
        for splitter in [Splitter::Gpt2, Splitter::Llama3] {
            for s in random_texts(23, 2000)
                .iter()
                .map(String::as_str)
                .chain(TRICKY.iter().copied())
            {
                let want = pieces(&splitter, s);
                for got in pieces_each_simd(&splitter, s) {
                    assert_eq!(got, want, "{splitter:?} on {s:?}");
                }
            }
        }
    }

    #[test]
    fn gpt2_block_scanner_matches_scalar() {
        for s in random_texts(7, 3000)
            .iter()
            .map(String::as_str)
            .chain(TRICKY.iter().copied())
        {
            let mut scalar = Vec::new();
            scan(s, gpt2_end, |p| scalar.push(p.to_string()));
            assert_eq!(pieces(&Splitter::Gpt2, s), scalar, "on {s:?}");
        }
        let slow = Splitter::Regex(Box::new(fancy_regex::Regex::new(GPT2_PATTERN).unwrap()));
        for s in random_texts(11, 300) {
            assert_eq!(pieces(&Splitter::Gpt2, &s), pieces(&slow, &s), "on {s:?}");
        }
    }

    #[test]
    fn llama3_block_scanner_matches_scalar() {
        for s in random_texts(5, 4000)
            .iter()
            .map(String::as_str)
            .chain(TRICKY.iter().copied())
        {
            let mut scalar = Vec::new();
            scan(s, llama3_end, |p| scalar.push(p.to_string()));
            assert_eq!(pieces(&Splitter::Llama3, s), scalar, "on {s:?}");
        }
        let slow = Splitter::Regex(Box::new(fancy_regex::Regex::new(LLAMA3_PATTERN).unwrap()));
        for s in random_texts(13, 300) {
            assert_eq!(pieces(&Splitter::Llama3, &s), pieces(&slow, &s), "on {s:?}");
        }
    }

    #[test]
    fn known_splits() {
        assert_eq!(pieces(&Splitter::Gpt2, "a  b"), ["a", " ", " b"]);
        assert_eq!(pieces(&Splitter::Gpt2, "x  "), ["x", "  "]);
        assert_eq!(pieces(&Splitter::Gpt2, "it's"), ["it", "'s"]);
        assert_eq!(pieces(&Splitter::Gpt2, "IT'S"), ["IT", "'", "S"]);
        assert_eq!(pieces(&Splitter::Llama3, "IT'S"), ["IT", "'S"]);
        assert_eq!(pieces(&Splitter::Llama3, "1234567"), ["123", "456", "7"]);
        assert_eq!(
            pieces(&Splitter::Llama3, "x  \n\n  y"),
            ["x", "  \n\n", " ", " y"]
        );
        assert_eq!(pieces(&Splitter::Llama3, "(hello"), ["(hello"]);
        assert_eq!(pieces(&Splitter::Llama3, " {\n\n"), [" {\n\n"]);
    }
}
