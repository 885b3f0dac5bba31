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
//! contiguous range of the normalized buffer (what [`shingles`] returns). MinHash hashes each
//! word's range once and combines the word hashes of a shingle (see [`super::minhash`]).
//!
//! ASCII text runs through a branch-free byte loop, or 64 bytes at a time with AVX-512 VBMI2
//! where the CPU has it (tested against the byte loop and a pure-Python reference).

use crate::unicode::{is_letter, is_number};
use unicode_general_category::{get_general_category, GeneralCategory as G};

/// What the normalization writes for one ASCII byte: the lowercased byte for letters and
/// digits, a space for separators, 0 for a deleted byte (the apostrophe).
static ASCII: [u8; 128] = {
    let mut t = [b' '; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        t[i] = match b {
            b'a'..=b'z' | b'0'..=b'9' => b,
            b'A'..=b'Z' => b + 32,
            b'\'' => 0,
            _ => b' ',
        };
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
    normalize_impl(text, out, words, simd_available());
}

/// Whether the 64-byte AVX-512 (VBMI2) path can run on this CPU.
#[inline]
fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn normalize_impl(text: &str, out: &mut String, words: &mut Vec<(u32, u32)>, simd: bool) {
    out.clear();
    words.clear();
    let bytes = text.as_bytes();
    // SAFETY: only ASCII bytes are written byte-wise, other characters with `String::push`, so
    // the first `pos` bytes are always valid UTF-8 and `out` is valid when the length is set.
    let buf = unsafe { out.as_mut_vec() };
    buf.reserve(bytes.len() + 1);
    let mut pos = 0usize;
    // Whether the last byte written is a separator (or nothing is written yet): a separator
    // is then not written again, which collapses runs and trims the start.
    let mut after_space = 1u32;
    let mut i = 0usize;
    // Hoisted so the loop does not reload it after every byte store (which might alias `buf`).
    let mut ptr = buf.as_mut_ptr();
    // Bytes before this index go through the scalar path (a 64-byte block with non-ASCII).
    let mut scalar_until = 0usize;
    while i < bytes.len() {
        #[cfg(target_arch = "x86_64")]
        if simd && i >= scalar_until && i + 64 <= bytes.len() {
            // SAFETY: the CPU has the features (`simd`); 64 bytes are readable at `i`, and
            // `capacity - pos > bytes.len() - i >= 64` bytes are writable at `pos`.
            match unsafe {
                ascii_block_avx512(bytes.as_ptr().add(i), ptr.add(pos), &mut after_space)
            } {
                Ok(written) => {
                    pos += written;
                    i += 64;
                }
                Err(first_non_ascii) => scalar_until = i + first_non_ascii + 1,
            }
            continue;
        }
        let b = bytes[i];
        if b < 128 {
            // Branch-free: write the byte's image, then advance past it unless it is deleted or
            // a repeated separator. `capacity - pos > bytes.len() - i` holds here (see below).
            let t = ASCII[b as usize];
            // 0/1 flags in integers, so the compiler keeps this free of unpredictable branches.
            let keep = u32::from(t > b' ');
            let sep = u32::from(t == b' ');
            let del = u32::from(t == 0);
            // SAFETY: pos < capacity by the invariant above.
            unsafe { ptr.add(pos).write(t) };
            let advance = keep | (sep & (after_space ^ 1));
            pos += advance as usize;
            after_space = sep | (del & after_space);
            i += 1;
            continue;
        }
        // Non-ASCII: decode one char (`text` is valid UTF-8 and `i` is a char boundary).
        let c = text[i..].chars().next().unwrap_or('\u{fffd}');
        i += c.len_utf8();
        // SAFETY: the first `pos` bytes are initialized, valid UTF-8 (see above).
        unsafe { buf.set_len(pos) };
        if c == '\u{2019}' {
        } else if is_letter(c) || is_number(c) || is_mark(c) {
            for l in c.to_lowercase() {
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(l.encode_utf8(&mut tmp).as_bytes());
            }
            after_space = 0;
        } else if after_space == 0 {
            buf.push(b' ');
            after_space = 1;
        }
        pos = buf.len();
        // Restore the invariant of the ASCII path: room for one byte per remaining input byte.
        buf.reserve(bytes.len() - i + 1);
        ptr = buf.as_mut_ptr();
    }
    if pos > 0 && after_space == 1 {
        pos -= 1;
    }
    // SAFETY: the first `pos` bytes are initialized and valid UTF-8 (see above).
    unsafe { buf.set_len(pos) };
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has the features (`simd` implies AVX-512 BW).
        unsafe { word_ranges_avx512(buf, words) };
        return;
    }
    word_ranges(buf, words);
}

/// The byte ranges of the space-separated words of a normalized buffer.
fn word_ranges(buf: &[u8], words: &mut Vec<(u32, u32)>) {
    let mut start = 0u32;
    for space in memchr::memchr_iter(b' ', buf) {
        words.push((start, space as u32));
        start = space as u32 + 1;
    }
    if !buf.is_empty() {
        words.push((start, buf.len() as u32));
    }
}

/// [`word_ranges`] from 64-byte space masks: spaces come every few bytes, where `memchr`'s
/// per-match cost dominates.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn word_ranges_avx512(buf: &[u8], words: &mut Vec<(u32, u32)>) {
    use std::arch::x86_64::*;
    let mut start = 0u32;
    let blocks = buf.chunks_exact(64);
    let tail = blocks.remainder();
    let mut base = 0u32;
    for block in blocks {
        // SAFETY: `block` holds 64 bytes; unaligned load.
        let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
        let mut spaces = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b' ' as i8));
        while spaces != 0 {
            let at = base + spaces.trailing_zeros();
            words.push((start, at));
            start = at + 1;
            spaces &= spaces - 1;
        }
        base += 64;
    }
    for (k, &b) in tail.iter().enumerate() {
        if b == b' ' {
            let at = base + k as u32;
            words.push((start, at));
            start = at + 1;
        }
    }
    if !buf.is_empty() {
        words.push((start, buf.len() as u32));
    }
}

/// Normalize the 64 ASCII bytes at `src` into `dst` as the scalar loop does, given and updating
/// `after_space`; returns the bytes written (up to 64 are stored), or the offset of the first
/// non-ASCII byte (nothing written). Apostrophes are removed first (compress), then runs of
/// separators collapse: a separator is written only if the byte before it is not one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2")]
unsafe fn ascii_block_avx512(
    src: *const u8,
    dst: *mut u8,
    after_space: &mut u32,
) -> Result<usize, usize> {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees 64 readable bytes.
    let v = unsafe { _mm512_loadu_si512(src.cast()) };
    let high = _mm512_movepi8_mask(v);
    if high != 0 {
        return Err(high.trailing_zeros() as usize);
    }
    let del = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'\'' as i8));
    let count = 64 - del.count_ones();
    let v = _mm512_maskz_compress_epi8(!del, v);
    let valid: u64 = if count == 64 { !0 } else { (1u64 << count) - 1 };
    let in_range = |lo: u8, span: u8| {
        _mm512_cmple_epu8_mask(
            _mm512_sub_epi8(v, _mm512_set1_epi8(lo as i8)),
            _mm512_set1_epi8(span as i8),
        )
    };
    let upper = in_range(b'A', 25);
    let keep = (upper | in_range(b'a', 25) | in_range(b'0', 9)) & valid;
    let sep = !keep & valid;
    let lowered = _mm512_mask_add_epi8(v, upper, v, _mm512_set1_epi8(32));
    let image = _mm512_mask_blend_epi8(keep, _mm512_set1_epi8(b' ' as i8), lowered);
    let prev_sep = (sep << 1) | u64::from(*after_space);
    let emit = keep | (sep & !prev_sep);
    let packed = _mm512_maskz_compress_epi8(emit, image);
    // SAFETY: the caller guarantees 64 writable bytes.
    unsafe { _mm512_storeu_si512(dst.cast(), packed) };
    if count > 0 {
        *after_space = ((sep >> (count - 1)) & 1) as u32;
    }
    Ok(emit.count_ones() as usize)
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
    fn simd_matches_scalar() {
        // Long texts so the 64-byte blocks run, with separator runs, apostrophes (alone and in
        // runs) at block edges, capitals, digits and non-ASCII characters in some blocks.
        let pieces = [
            "Word", "x", "  ", "'", "''", ", ", "--", "ABC", "don't", "42", "\n\t", "é", "中文",
            "’", "İ", "a'b", " '", "' ", "...", "z9",
        ];
        let mut state = 7u64;
        for len in [60, 64, 65, 127, 128, 200, 1000, 5000] {
            for _ in 0..50 {
                let mut text = String::new();
                while text.len() < len {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    text.push_str(pieces[(state >> 33) as usize % pieces.len()]);
                }
                let (mut a, mut b) = (String::new(), String::new());
                let (mut wa, mut wb) = (Vec::new(), Vec::new());
                normalize_impl(&text, &mut a, &mut wa, false);
                normalize_impl(&text, &mut b, &mut wb, simd_available());
                assert_eq!(a, b, "{text:?}");
                assert_eq!(wa, wb);
            }
        }
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
