//! Gopher's word n-gram repetition signals over a document's word list.
//!
//! Each n-gram is hashed in O(1) from prefix polynomial hashes of the concatenated word bytes
//! (`"".join(words[i..i + n])`, which also identifies `" ".join(...)`, since words hold no
//! whitespace), and looked up in an open-addressing table that is reused across n and documents.
//! Equality is always checked on the text, so hash collisions cost time, never correctness.

/// Polynomial hash base (odd, so its powers are invertible mod 2^64).
const BASE: u64 = 0x100_0000_01b3;
/// `BASE^-1 mod 2^64`.
const BASE_INV: u64 = inverse(BASE);

const fn inverse(b: u64) -> u64 {
    // Newton's iteration doubles the number of correct low bits each step (3 -> 96).
    let mut x = b;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(b.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// A strong 64-bit finaliser (a polynomial's low bits are weak).
#[inline]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A table slot: 8 bytes, so that big documents' tables stay small.
#[derive(Clone, Copy)]
struct Slot {
    /// The high 32 bits of the n-gram's hash (its low bits pick the slot).
    tag: u32,
    /// First word of the n-gram; `u32::MAX` when the slot is empty.
    first: u32,
}

const EMPTY: Slot = Slot {
    tag: 0,
    first: u32::MAX,
};

/// Reusable buffers for the n-gram signals of one document at a time (of fewer than 2^32 - 1
/// words: word indices are stored as `u32`).
#[derive(Default)]
pub struct NgramScratch {
    /// `prefix[i]`: polynomial hash of the bytes of `words[..i]`.
    prefix: Vec<u64>,
    /// `pow[i]` = `BASE^bytes[i]`, `inv[i]` = `BASE^-bytes[i]`.
    pow: Vec<u64>,
    inv: Vec<u64>,
    /// `chars[i]`, `bytes[i]`: characters and bytes of `words[..i]`.
    chars: Vec<u64>,
    bytes: Vec<usize>,
    table: Vec<Slot>,
    /// `counts[first]`: occurrences of the n-gram first seen at word `first` (top n-grams).
    counts: Vec<u32>,
}

impl NgramScratch {
    /// Prepare the prefix arrays for `words` (with `word_chars[i]` = characters of `words[i]`).
    #[inline(never)]
    pub fn load(&mut self, words: &[&str], word_chars: &[u32]) {
        let len = words.len() + 1;
        for v in [
            &mut self.prefix,
            &mut self.pow,
            &mut self.inv,
            &mut self.chars,
        ] {
            v.clear();
            v.reserve(len);
        }
        self.bytes.clear();
        self.bytes.reserve(len);
        let (mut h, mut p, mut q, mut c, mut b) = (0u64, 1u64, 1u64, 0u64, 0usize);
        self.prefix.push(h);
        self.pow.push(p);
        self.inv.push(q);
        self.chars.push(c);
        self.bytes.push(b);
        for (w, &wc) in words.iter().zip(word_chars) {
            for &byte in w.as_bytes() {
                h = h.wrapping_mul(BASE).wrapping_add(u64::from(byte) + 1);
                p = p.wrapping_mul(BASE);
                q = q.wrapping_mul(BASE_INV);
            }
            c += u64::from(wc);
            b += w.len();
            self.prefix.push(h);
            self.pow.push(p);
            self.inv.push(q);
            self.chars.push(c);
            self.bytes.push(b);
        }
    }

    /// Hash of `"".join(words[i..i + n])`.
    #[inline]
    fn hash(&self, i: usize, n: usize) -> u64 {
        let j = i + n;
        let shift = self.pow[j].wrapping_mul(self.inv[i]);
        fmix(self.prefix[j].wrapping_sub(self.prefix[i].wrapping_mul(shift)))
    }

    /// Characters of `"".join(words[i..i + n])`.
    #[inline]
    fn chars(&self, i: usize, n: usize) -> u64 {
        self.chars[i + n] - self.chars[i]
    }

    fn reset_table(&mut self, entries: usize) {
        let cap = (entries * 2).next_power_of_two().max(16);
        if self.table.len() == cap {
            self.table.fill(EMPTY);
        } else {
            self.table.clear();
            self.table.resize(cap, EMPTY);
        }
    }

    /// The first word of the n-gram equal to the one at `i` (hash `hash`), claiming a slot for
    /// it (and returning `i`) when it is new; `eq(a, b)` tells whether the n-grams starting at
    /// words `a` and `b` are equal.
    #[inline]
    fn first_of(&mut self, hash: u64, i: u32, eq: impl Fn(usize, usize) -> bool) -> u32 {
        let mask = self.table.len() - 1;
        let tag = (hash >> 32) as u32;
        let mut pos = (hash as usize) & mask;
        loop {
            let s = self.table[pos];
            if s.first == u32::MAX {
                self.table[pos] = Slot { tag, first: i };
                return i;
            }
            if s.tag == tag && eq(s.first as usize, i as usize) {
                return s.first;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Gopher's top n-gram: characters of the most frequent `" ".join` n-gram (the first seen
    /// among equally frequent ones, as `Counter.most_common(1)`) times its count; 0 when there
    /// are fewer than `n` words.
    #[inline(never)]
    pub fn top_ngram_chars(&mut self, words: &[&str], n: usize) -> u64 {
        let len = words.len();
        if len < n {
            return 0;
        }
        self.reset_table(len - n + 1);
        self.counts.clear();
        self.counts.resize(len - n + 1, 0);
        let (mut best_count, mut best_first) = (0u32, 0u32);
        for i in 0..=len - n {
            let hash = self.hash(i, n);
            let first = self.first_of(hash, i as u32, |a, b| words[a..a + n] == words[b..b + n]);
            self.counts[first as usize] += 1;
            let count = self.counts[first as usize];
            if count > best_count || (count == best_count && first < best_first) {
                best_count = count;
                best_first = first;
            }
        }
        (self.chars(best_first as usize, n) + n as u64 - 1) * u64::from(best_count)
    }

    /// datatrove's `find_all_duplicate`: walk the n-grams; a `"".join` n-gram seen before adds
    /// its characters and jumps `n` words ahead, a new one is remembered and the walk moves on by
    /// one word.
    #[inline(never)]
    pub fn dup_ngram_chars(&mut self, words: &[&str], n: usize) -> u64 {
        let len = words.len();
        if len < n {
            return 0;
        }
        self.reset_table(len - n + 1);
        let bytes = std::mem::take(&mut self.bytes);
        let concat_eq = |a: usize, b: usize| {
            a == b
                || (bytes[a + n] - bytes[a] == bytes[b + n] - bytes[b]
                    && (words[a..a + n] == words[b..b + n]
                        || words[a..a + n]
                            .iter()
                            .flat_map(|w| w.bytes())
                            .eq(words[b..b + n].iter().flat_map(|w| w.bytes()))))
        };
        let mut repeated = 0u64;
        let mut i = 0usize;
        while i + n <= len {
            let hash = self.hash(i, n);
            if self.first_of(hash, i as u32, concat_eq) as usize != i {
                repeated += self.chars(i, n);
                i += n;
            } else {
                i += 1;
            }
        }
        self.bytes = bytes;
        repeated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::text::{char_len, for_each_word};

    fn scratch(text: &str) -> (Vec<&str>, NgramScratch) {
        let mut ws = Vec::new();
        for_each_word(text, |w| ws.push(w));
        let cs: Vec<u32> = ws.iter().map(|w| char_len(w) as u32).collect();
        let mut s = NgramScratch::default();
        s.load(&ws, &cs);
        (ws, s)
    }

    #[test]
    fn base_inverse() {
        assert_eq!(BASE.wrapping_mul(BASE_INV), 1);
    }

    #[test]
    fn hash_is_of_the_concatenation() {
        let (_, s) = scratch("ab c x a bc ab c");
        assert_eq!(s.hash(0, 2), s.hash(3, 2));
        assert_eq!(s.hash(0, 2), s.hash(5, 2));
        assert_ne!(s.hash(0, 2), s.hash(1, 2));
    }

    #[test]
    fn dup_ngram_walk_matches_datatrove() {
        // n = 3 sees abc, bca, cab, then abc again (+3, jump), abc again (+3).
        let (ws, mut s) = scratch("a b c a b c a b c");
        assert_eq!(s.dup_ngram_chars(&ws, 3), 6);
        assert_eq!(s.dup_ngram_chars(&ws, 10), 0);
        // "".join makes ("ab", "c") equal to ("a", "bc").
        let (ws, mut s) = scratch("ab c x a bc");
        assert_eq!(s.dup_ngram_chars(&ws, 2), 3);
    }

    #[test]
    fn top_ngram_first_among_ties() {
        // "a b", "b cc", "cc d" once each: the first, 3 chars x 1.
        let (ws, mut s) = scratch("a b cc d");
        assert_eq!(s.top_ngram_chars(&ws, 2), 3);
        let (ws, mut s) = scratch("x y x y x");
        assert_eq!(s.top_ngram_chars(&ws, 2), 6);
        assert_eq!(s.top_ngram_chars(&ws, 5), 9);
        assert_eq!(s.top_ngram_chars(&ws, 6), 0);
        // " ".join keeps ("ab", "c") apart from ("a", "bc").
        let (ws, mut s) = scratch("ab c a bc");
        assert_eq!(s.top_ngram_chars(&ws, 2), 4);
    }
}
