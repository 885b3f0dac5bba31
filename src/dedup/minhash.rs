//! MinHash signatures over word n-gram shingles.
//!
//! Shingle hashes (64 bits) are built from word hashes, so each word is hashed once rather
//! than once per shingle it is in:
//!
//! - a word (at most 16 bytes, nearly all of them) is read as two little-endian u64 `lo`, `hi`
//!   zero-padded, and hashed as `fmix64(len + swap(x) + y + fold(x·y))` with `x = lo ⊕ s_1`,
//!   `y = hi ⊕ s_2` (keys derived from `seed`), `swap` the byte swap and `fold` the xor of the
//!   two halves of the 128-bit product (xxh3's mixing of 9 to 16 bytes, here without its length
//!   classes, whose branches mispredict on words of varying length); longer words are hashed
//!   with xxh3 seeded by `seed`;
//! - a shingle of `k` words with hashes `w_0..w_{k-1}` (`k = ngram`, or fewer for a document
//!   shorter than `ngram` words; the words of a normalized text, see [`super::normalize`])
//!   hashes to `fmix64(k·L ⊕ w_0 ⊕ rotl(w_1, 13) ⊕ … ⊕ rotl(w_{k-1}, 13·(k-1) mod 64))` with
//!   murmur3's `fmix64` finalizer and a fixed odd `L`. Equal word sequences get equal hashes;
//!   word order matters (distinct sequences of random word hashes collide with probability at
//!   most about 2^-60, as the rotations of distinct positions differ by amounts of low 2-adic
//!   valuation).
//!
//! The `num_perm` hash functions are multiply-add-shift
//! hashes `h_i(x) = ((a_i·x + b_i) mod 2^52) >> 20` (Dietzfelbinger's multiply-add-shift scheme
//! onto 32 bits, with 52-bit rather than wider parameters: universal in practice, not proven
//! 2-independent; only the low 52 bits of `x` matter), with odd `a_i < 2^52` and `b_i < 2^52`
//! taken as the low 52 bits of a splitmix64 stream started at `seed`. The modulus 2^52 is the
//! width of the AVX-512 IFMA multiplier. The tests check the estimator's bias and variance
//! against exact Jaccard. Slot `i` of a signature is the minimum of `h_i` over the document's
//! shingles; a document without shingles gets `u32::MAX` in every slot.
//!
//! The kernel loops over the permutations in fixed blocks of [`LANES`] with every shingle hash
//! of the document inner, so the block's minima stay in vector registers. It is hand-written
//! with AVX-512 IFMA (`vpmadd52luq`, ~8 ns per shingle for 128 permutations on an Intel
//! Sapphire Rapids-class core) or AVX-512 DQ (`vpmullq`, ~13 ns), auto-vectorized for AVX2
//! (~37 ns) and baseline (~85 ns), and picked at run time; all compute the same values. The
//! kernels with 64-bit products use the parameters shifted left by 12 bits, so the value is the
//! high half of `(a << 12)·x + (b << 12) mod 2^64`, minimized before the final shift.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::normalize::normalize_into;
use crate::error::{Error, Result};

/// Permutations per kernel block.
pub const LANES: usize = 16;

/// The signature of a document without any shingle (an empty or all-punctuation text).
pub const EMPTY_SLOT: u32 = u32::MAX;

/// One step of the splitmix64 generator (Steele, Lea, Flood 2014).
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per-thread buffers reused from one document to the next.
#[derive(Default)]
pub struct Scratch {
    text: String,
    words: Vec<(u32, u32)>,
    word_hashes: Vec<u64>,
    hashes: Vec<u64>,
}

/// The murmur3 64-bit finalizer (`fmix64`): a bijection with full avalanche.
#[inline(always)]
fn fmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    z = (z ^ (z >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    z ^ (z >> 33)
}

/// The masks that keep the first `len` bytes of 16 read as two little-endian u64.
static WORD_MASKS: [(u64, u64); 17] = {
    let mut t = [(0u64, 0u64); 17];
    let mut len = 0;
    while len <= 16 {
        let lo = if len >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * len)) - 1
        };
        let hi = if len >= 16 {
            u64::MAX
        } else if len <= 8 {
            0
        } else {
            (1u64 << (8 * (len - 8))) - 1
        };
        t[len] = (lo, hi);
        len += 1;
    }
    t
};

/// Word `j` of a shingle is rotated left by `ROT * j` bits (mod 64).
const ROT: u32 = 13;

/// Added once per word of a shingle, so shingles of different lengths differ.
const LENGTH_STEP: u64 = 0x2545_F491_4F6C_DD1D;

/// The hash functions of one `(num_perm, ngram, seed)` configuration.
#[derive(Debug, Clone)]
pub struct MinHasher {
    num_perm: usize,
    ngram: usize,
    seed: u64,
    /// Multipliers, odd, padded with copies to a multiple of [`LANES`].
    a: Vec<u64>,
    /// Offsets, padded like `a`.
    b: Vec<u64>,
    /// `a << 12` and `b << 12`: `(a·x + b mod 2^52) << 12 = (a << 12)·x + (b << 12) mod 2^64`,
    /// so kernels with 64-bit products take bits 32..64 of that, with no masking.
    a_hi: Vec<u64>,
    b_hi: Vec<u64>,
    /// Keys of the short-word hash, from the seed.
    word_keys: (u64, u64),
}

impl MinHasher {
    /// Hash functions for `num_perm` permutations over word `ngram`-shingles.
    pub fn new(num_perm: usize, ngram: usize, seed: u64) -> Result<Self> {
        if num_perm == 0 {
            return Err(Error::InvalidArgument("num_perm must be at least 1".into()));
        }
        if ngram == 0 {
            return Err(Error::InvalidArgument("ngram must be at least 1".into()));
        }
        let padded = num_perm.div_ceil(LANES) * LANES;
        let mut state = seed;
        let mut a = Vec::with_capacity(padded);
        let mut b = Vec::with_capacity(padded);
        for _ in 0..num_perm {
            a.push((splitmix64(&mut state) & MASK) | 1);
            b.push(splitmix64(&mut state) & MASK);
        }
        a.resize(padded, 1);
        b.resize(padded, 0);
        Ok(Self {
            num_perm,
            ngram,
            seed,
            a_hi: a.iter().map(|v| v << (64 - BITS)).collect(),
            b_hi: b.iter().map(|v| v << (64 - BITS)).collect(),
            a,
            b,
            word_keys: (
                fmix64(seed ^ 0x9FB2_1C65_1E98_DF25),
                fmix64(seed ^ 0x1656_67B1_9E37_79F9).wrapping_add(0x27D4_EB2F_1656_67C5),
            ),
        })
    }

    pub fn num_perm(&self) -> usize {
        self.num_perm
    }

    /// The `(a_i, b_i)` of the first `num_perm` hash functions.
    pub fn params(&self) -> (&[u64], &[u64]) {
        (&self.a[..self.num_perm], &self.b[..self.num_perm])
    }

    /// The 64-bit hash of one word (the bytes of a normalized word).
    pub fn word_hash(&self, word: &[u8]) -> u64 {
        self.hash_word(word, 0, word.len())
    }

    /// The 64-bit hash of the word `bytes[s..e]`. Words of up to 16 bytes (nearly all) are read
    /// as two little-endian u64 `lo`, `hi`, zero-padded, and mixed as xxh3 mixes 9 to 16 bytes:
    /// `fmix64(k + swap(lo ^ s1) + (hi ^ s2) + fold(lo ^ s1, hi ^ s2))` with `k` the length and
    /// `fold` the xor of the halves of the 128-bit product, `s1`, `s2` derived from the seed.
    /// Branch-free in the length, where xxh3's length classes mispredict on words. Longer
    /// words: xxh3 with the seed.
    #[inline(always)]
    pub fn hash_word(&self, bytes: &[u8], s: usize, e: usize) -> u64 {
        let len = e - s;
        if len > 16 {
            return xxh3_64_with_seed(&bytes[s..e], self.seed);
        }
        let (lo, hi) = if s + 16 <= bytes.len() {
            let lo = u64::from_le_bytes(bytes[s..s + 8].try_into().expect("8 bytes"));
            let hi = u64::from_le_bytes(bytes[s + 8..s + 16].try_into().expect("8 bytes"));
            let (mlo, mhi) = WORD_MASKS[len];
            (lo & mlo, hi & mhi)
        } else {
            let mut tmp = [0u8; 16];
            tmp[..len].copy_from_slice(&bytes[s..e]);
            (
                u64::from_le_bytes(tmp[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(tmp[8..].try_into().expect("8 bytes")),
            )
        };
        let (x, y) = (lo ^ self.word_keys.0, hi ^ self.word_keys.1);
        let p = u128::from(x) * u128::from(y);
        let fold = (p as u64) ^ ((p >> 64) as u64);
        fmix64(
            (len as u64)
                .wrapping_add(x.swap_bytes())
                .wrapping_add(y)
                .wrapping_add(fold),
        )
    }

    /// The 64-bit hash of a shingle from the hashes `w_0..w_{k-1}` of its `k` words, in order:
    /// `fmix64(k·L mod 2^64 ⊕ rotl(w_0, 0) ⊕ rotl(w_1, 13) ⊕ … ⊕ rotl(w_j, 13·j mod 64))`.
    #[inline(always)]
    fn combine(&self, word_hashes: &[u64]) -> u64 {
        let mut acc = (word_hashes.len() as u64).wrapping_mul(LENGTH_STEP);
        for (j, w) in word_hashes.iter().enumerate() {
            acc ^= w.rotate_left(ROT.wrapping_mul(j as u32));
        }
        fmix64(acc)
    }

    /// The 64-bit hash of one shingle given as its normalized text (words joined by single
    /// spaces, at most `ngram` of them), as [`Self::signature_into`] computes it.
    pub fn shingle_hash(&self, shingle: &[u8]) -> u64 {
        let words: Vec<u64> = shingle
            .split(|&b| b == b' ')
            .map(|w| self.word_hash(w))
            .collect();
        self.combine(&words)
    }

    /// The shingle hashes of a document from its word hashes, in document order.
    fn shingle_hashes(&self, words: &[u64], out: &mut Vec<u64>) {
        let n = self.ngram;
        if words.is_empty() {
        } else if words.len() < n {
            out.push(self.combine(words));
        } else {
            // Rolling: drop the first word's term, rotate the rest one position down, add the
            // new last word.
            let init = (n as u64).wrapping_mul(LENGTH_STEP);
            let last = ROT.wrapping_mul(n as u32 - 1);
            let mut acc = 0u64;
            for (j, w) in words[..n].iter().enumerate() {
                acc ^= w.rotate_left(ROT.wrapping_mul(j as u32));
            }
            out.reserve(words.len() - n + 1);
            out.push(fmix64(acc ^ init));
            for (old, new) in words.iter().zip(&words[n..]) {
                acc = (acc ^ old).rotate_right(ROT) ^ new.rotate_left(last);
                out.push(fmix64(acc ^ init));
            }
        }
    }

    /// The shingle hashes of `text` in document order, duplicates kept (in `scratch`).
    pub fn shingle_hashes_of<'s>(&self, text: &str, scratch: &'s mut Scratch) -> &'s [u64] {
        normalize_into(text, &mut scratch.text, &mut scratch.words);
        let bytes = scratch.text.as_bytes();
        scratch.word_hashes.clear();
        scratch.word_hashes.extend(
            scratch
                .words
                .iter()
                .map(|&(s, e)| self.hash_word(bytes, s as usize, e as usize)),
        );
        scratch.hashes.clear();
        self.shingle_hashes(&scratch.word_hashes, &mut scratch.hashes);
        &scratch.hashes
    }

    /// Write the signature of `text` into `out` (`out.len() == num_perm`).
    pub fn signature_into(&self, text: &str, scratch: &mut Scratch, out: &mut [u32]) {
        assert_eq!(
            out.len(),
            self.num_perm,
            "signature buffer has the wrong length"
        );
        let hashes = self.shingle_hashes_of(text, scratch);
        self.dispatch(hashes, out);
    }

    /// The signature of a set of shingle hashes (`u32::MAX` everywhere when it is empty).
    pub fn signature_of_hashes(&self, hashes: &[u64], out: &mut [u32]) {
        self.dispatch(hashes, out);
    }

    /// The signature of `text` as a new vector.
    pub fn signature(&self, text: &str) -> Vec<u32> {
        let mut out = vec![0; self.num_perm];
        self.signature_into(text, &mut Scratch::default(), &mut out);
        out
    }
}

/// Bits of the permutations' modulus: `h_i(x) = ((a_i·x + b_i) mod 2^52) >> 20`, the width
/// of the AVX-512 IFMA multiplier.
const BITS: u32 = 52;
const MASK: u64 = (1 << BITS) - 1;

/// The permutation with shifted parameters `(a << 12, b << 12)` applied to the shingle hash
/// `x`: bits 32..64 of `(a << 12)·x + (b << 12) mod 2^64`, i.e. `((a·x + b) mod 2^52) >> 20`.
#[inline(always)]
fn permute(a_hi: u64, b_hi: u64, x: u64) -> u32 {
    (a_hi.wrapping_mul(x).wrapping_add(b_hi) >> 32) as u32
}

#[inline(always)]
fn kernel(a: &[u64], b: &[u64], hashes: &[u64], out: &mut [u32]) {
    for ((ac, bc), oc) in a
        .chunks_exact(LANES)
        .zip(b.chunks_exact(LANES))
        .zip(out.chunks_mut(LANES))
    {
        let ac: &[u64; LANES] = ac.try_into().expect("block");
        let bc: &[u64; LANES] = bc.try_into().expect("block");
        let mut m = [u32::MAX; LANES];
        for &h in hashes {
            for j in 0..LANES {
                m[j] = m[j].min(permute(ac[j], bc[j], h));
            }
        }
        oc.copy_from_slice(&m[..oc.len()]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn kernel_avx2(a: &[u64], b: &[u64], hashes: &[u64], out: &mut [u32]) {
    kernel(a, b, hashes, out)
}

/// AVX-512 kernel, hand-written: left to itself the compiler vectorizes across the hashes (16
/// min-reductions spilled to the stack) rather than across the permutations. Minima are kept
/// as 64-bit lanes (`vpminuq`), which saves a narrowing per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn kernel_avx512(a: &[u64], b: &[u64], hashes: &[u64], out: &mut [u32]) {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 16);
    for ((ac, bc), oc) in a
        .chunks_exact(LANES)
        .zip(b.chunks_exact(LANES))
        .zip(out.chunks_mut(LANES))
    {
        // SAFETY: each chunk holds 16 u64 (two 512-bit vectors); unaligned loads.
        let (a0, a1, b0, b1) = unsafe {
            (
                _mm512_loadu_si512(ac.as_ptr().cast()),
                _mm512_loadu_si512(ac.as_ptr().add(8).cast()),
                _mm512_loadu_si512(bc.as_ptr().cast()),
                _mm512_loadu_si512(bc.as_ptr().add(8).cast()),
            )
        };
        // Bits 32..64 are the value; `>> 32` is monotone, so it is taken after the minimum.
        let mut m0 = _mm512_set1_epi64(-1);
        let mut m1 = _mm512_set1_epi64(-1);
        for &h in hashes {
            let x = _mm512_set1_epi64(h as i64);
            let v0 = _mm512_add_epi64(_mm512_mullo_epi64(a0, x), b0);
            let v1 = _mm512_add_epi64(_mm512_mullo_epi64(a1, x), b1);
            m0 = _mm512_min_epu64(m0, v0);
            m1 = _mm512_min_epu64(m1, v1);
        }
        let mut lanes = [0u64; LANES];
        // SAFETY: `lanes` holds 16 u64; unaligned stores.
        unsafe {
            _mm512_storeu_si512(lanes.as_mut_ptr().cast(), m0);
            _mm512_storeu_si512(lanes.as_mut_ptr().add(8).cast(), m1);
        }
        for (o, &l) in oc.iter_mut().zip(&lanes) {
            *o = (l >> 32) as u32;
        }
    }
}

/// AVX-512 IFMA kernel: `vpmadd52luq` computes `b + (a·x mod 2^52)` in one instruction (where
/// `vpmullq` is three on Intel cores), leaving the reduction mod 2^52 and the minimum.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512ifma")]
fn kernel_ifma(a: &[u64], b: &[u64], hashes: &[u64], out: &mut [u32]) {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 16);
    for ((ac, bc), oc) in a
        .chunks_exact(LANES)
        .zip(b.chunks_exact(LANES))
        .zip(out.chunks_mut(LANES))
    {
        // SAFETY: each chunk holds 16 u64 (two 512-bit vectors); unaligned loads.
        let (a0, a1, b0, b1) = unsafe {
            (
                _mm512_loadu_si512(ac.as_ptr().cast()),
                _mm512_loadu_si512(ac.as_ptr().add(8).cast()),
                _mm512_loadu_si512(bc.as_ptr().cast()),
                _mm512_loadu_si512(bc.as_ptr().add(8).cast()),
            )
        };
        let mask = _mm512_set1_epi64(MASK as i64);
        let mut m0 = mask;
        let mut m1 = mask;
        for &h in hashes {
            let x = _mm512_set1_epi64(h as i64);
            let v0 = _mm512_and_si512(_mm512_madd52lo_epu64(b0, a0, x), mask);
            let v1 = _mm512_and_si512(_mm512_madd52lo_epu64(b1, a1, x), mask);
            m0 = _mm512_min_epu64(m0, v0);
            m1 = _mm512_min_epu64(m1, v1);
        }
        let mut lanes = [0u64; LANES];
        // SAFETY: `lanes` holds 16 u64; unaligned stores.
        unsafe {
            _mm512_storeu_si512(lanes.as_mut_ptr().cast(), m0);
            _mm512_storeu_si512(lanes.as_mut_ptr().add(8).cast(), m1);
        }
        for (o, &l) in oc.iter_mut().zip(&lanes) {
            *o = (l >> (BITS - 32)) as u32;
        }
    }
}

impl MinHasher {
    /// Run the best kernel this CPU has (IFMA takes the 52-bit parameters, the others the
    /// shifted ones).
    fn dispatch(&self, hashes: &[u64], out: &mut [u32]) {
        let (a, b, a_hi, b_hi) = (&self.a, &self.b, &self.a_hi, &self.b_hi);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512ifma")
            {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { kernel_ifma(a, b, hashes, out) };
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                // SAFETY: as above.
                return unsafe { kernel_avx512(a_hi, b_hi, hashes, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { kernel_avx2(a_hi, b_hi, hashes, out) };
            }
        }
        let _ = (a, b);
        kernel(a_hi, b_hi, hashes, out)
    }
}

/// Estimated Jaccard similarity of two signatures: the fraction of equal slots.
pub fn jaccard_estimate(x: &[u32], y: &[u32]) -> f64 {
    let equal = x.iter().zip(y).filter(|(p, q)| p == q).count();
    equal as f64 / x.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn scalar_signature(h: &MinHasher, text: &str) -> Vec<u32> {
        let (a, b) = h.params();
        let (a, b): (Vec<u128>, Vec<u128>) = (
            a.iter().map(|&v| v.into()).collect(),
            b.iter().map(|&v| v.into()).collect(),
        );
        let set: HashSet<u64> = super::super::normalize::shingles(text, h.ngram)
            .iter()
            .map(|s| h.shingle_hash(s.as_bytes()))
            .collect();
        (0..h.num_perm)
            .map(|i| {
                set.iter()
                    .map(|&x| (((a[i] * u128::from(x) + b[i]) % (1 << 52)) >> 20) as u32)
                    .min()
                    .unwrap_or(EMPTY_SLOT)
            })
            .collect()
    }

    #[test]
    fn permutations_deterministic_by_seed() {
        let p = MinHasher::new(128, 5, 1).unwrap();
        let q = MinHasher::new(128, 5, 1).unwrap();
        let r = MinHasher::new(128, 5, 2).unwrap();
        assert_eq!(p.params(), q.params());
        assert_ne!(p.params().0, r.params().0);
        assert!(p.params().0.iter().all(|a| a & 1 == 1 && *a < 1 << 52));
        assert!(p.params().1.iter().all(|b| *b < 1 << 52));
        let text = "the quick brown fox jumps over the lazy dog again and again";
        assert_eq!(p.signature(text), q.signature(text));
        assert_ne!(p.signature(text), r.signature(text));
    }

    #[test]
    fn kernel_matches_scalar_reference() {
        let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
                    tempor incididunt ut labore et dolore magna aliqua ut enim ad minim";
        for num_perm in [1, 7, 16, 33, 128] {
            let h = MinHasher::new(num_perm, 3, 42).unwrap();
            assert_eq!(
                h.signature(text),
                scalar_signature(&h, text),
                "num_perm {num_perm}"
            );
            let (a, b) = (&h.a_hi, &h.b_hi);
            let hashes = [1u64, 99, u64::MAX, 12345];
            let mut fast = vec![0; num_perm];
            let mut base = vec![0; num_perm];
            h.signature_of_hashes(&hashes, &mut fast);
            kernel(a, b, &hashes, &mut base);
            assert_eq!(fast, base);
            #[cfg(target_arch = "x86_64")]
            for (name, ok, f, a, b) in [
                (
                    "avx2",
                    is_x86_feature_detected!("avx2"),
                    kernel_avx2 as unsafe fn(&[u64], &[u64], &[u64], &mut [u32]),
                    a,
                    b,
                ),
                (
                    "avx512",
                    is_x86_feature_detected!("avx512dq"),
                    kernel_avx512,
                    a,
                    b,
                ),
                (
                    "ifma",
                    is_x86_feature_detected!("avx512ifma"),
                    kernel_ifma,
                    &h.a,
                    &h.b,
                ),
            ] {
                if ok {
                    fast.fill(0);
                    // SAFETY: the CPU has the kernel's features.
                    unsafe { f(a, b, &hashes, &mut fast) };
                    assert_eq!(fast, base, "{name}");
                }
            }
        }
    }

    #[test]
    fn rolling_shingle_hashes_match_reference() {
        // Rotation amounts past 64 (ngram 9: 13·8 = 104) and short documents.
        let text: String = (0..40).map(|i| format!("w{} ", i % 17)).collect();
        for ngram in [1, 2, 5, 9, 39, 40, 41, 60] {
            let h = MinHasher::new(16, ngram, 3).unwrap();
            let expected: Vec<u64> = super::super::normalize::shingles(&text, ngram)
                .iter()
                .map(|s| h.shingle_hash(s.as_bytes()))
                .collect();
            let mut scratch = Scratch::default();
            assert_eq!(
                h.shingle_hashes_of(&text, &mut scratch),
                expected,
                "ngram {ngram}"
            );
            assert_eq!(
                h.signature(&text),
                scalar_signature(&h, &text),
                "ngram {ngram}"
            );
        }
    }

    #[test]
    fn word_and_shingle_hashes() {
        let h = MinHasher::new(8, 3, 5).unwrap();
        // A word inside a longer buffer (the masked 16-byte read) hashes as the word alone.
        let text = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz";
        for s in 0..8 {
            for len in 0..=40 {
                let word = &text.as_bytes()[s..s + len];
                assert_eq!(h.hash_word(text.as_bytes(), s, s + len), h.word_hash(word));
            }
        }
        // Zero padding does not make a word equal to a shorter one, nor to its seed's neighbor.
        assert_ne!(h.word_hash(b"a"), h.word_hash(b"a\0"));
        let other = MinHasher::new(8, 3, 6).unwrap();
        assert_ne!(h.word_hash(b"word"), other.word_hash(b"word"));
        // Order and length matter; no collisions among many distinct shingles.
        assert_ne!(h.shingle_hash(b"a b c"), h.shingle_hash(b"b a c"));
        assert_ne!(h.shingle_hash(b"a b c"), h.shingle_hash(b"c b a"));
        assert_ne!(h.shingle_hash(b"a b"), h.shingle_hash(b"a b a"));
        assert_ne!(h.shingle_hash(b"x x"), h.shingle_hash(b"x x x"));
        let mut seen = HashSet::new();
        for i in 0..60 {
            for j in 0..60 {
                for k in 0..60 {
                    let s = format!("w{i} w{j} w{k}");
                    assert!(seen.insert(h.shingle_hash(s.as_bytes())), "{s}");
                }
            }
        }
    }

    #[test]
    fn empty_and_short_documents() {
        let h = MinHasher::new(64, 5, 1).unwrap();
        assert!(h.signature("").iter().all(|&v| v == EMPTY_SLOT));
        assert!(h.signature(" ?! ").iter().all(|&v| v == EMPTY_SLOT));
        // Fewer than n words: one shingle of all the words, punctuation and case ignored.
        assert_eq!(h.signature("Hello, world"), h.signature("hello world!"));
        assert_ne!(h.signature("hello world"), h.signature("world hello"));
    }

    #[test]
    fn estimate_tracks_jaccard() {
        let h = MinHasher::new(256, 1, 7).unwrap();
        let x: String = (0..200).map(|i| format!("w{i} ")).collect();
        let y: String = (100..300).map(|i| format!("w{i} ")).collect();
        // 100 shared of 300 distinct words: J = 1/3.
        let est = jaccard_estimate(&h.signature(&x), &h.signature(&y));
        assert!((est - 1.0 / 3.0).abs() < 0.12, "estimate {est}");
    }

    #[test]
    fn invalid_arguments() {
        assert!(MinHasher::new(0, 5, 1).is_err());
        assert!(MinHasher::new(8, 0, 1).is_err());
    }
}

/// Kernel timings on synthetic hashes:
/// `cargo test --release --lib dedup::minhash::perf -- --ignored --nocapture`.
#[cfg(test)]
mod perf {
    use super::*;
    use std::time::Instant;

    #[test]
    #[ignore]
    fn kernels() {
        let h = MinHasher::new(128, 5, 1).unwrap();
        let mut state = 1u64;
        let hashes: Vec<u64> = (0..2000).map(|_| splitmix64(&mut state)).collect();
        let mut out = vec![0u32; 128];
        let reps = 500;
        let mut run = |name: &str, f: &dyn Fn(&[u64], &mut [u32])| {
            let t = Instant::now();
            for _ in 0..reps {
                out.fill(u32::MAX);
                f(std::hint::black_box(&hashes), &mut out);
            }
            let ns = t.elapsed().as_secs_f64() * 1e9 / (reps * hashes.len()) as f64;
            println!("{name:<8} {ns:6.2} ns per shingle (128 permutations)");
        };
        run("generic", &|x, o| kernel(&h.a_hi, &h.b_hi, x, o));
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                run("avx2", &|x, o| unsafe {
                    kernel_avx2(&h.a_hi, &h.b_hi, x, o)
                });
            }
            if std::arch::is_x86_feature_detected!("avx512dq") {
                run("avx512", &|x, o| unsafe {
                    kernel_avx512(&h.a_hi, &h.b_hi, x, o)
                });
            }
            if std::arch::is_x86_feature_detected!("avx512ifma") {
                run("ifma", &|x, o| unsafe { kernel_ifma(&h.a, &h.b, x, o) });
            }
        }
    }
}
