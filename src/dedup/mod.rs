//! Deduplication primitives: text normalization, word n-gram shingles, MinHash signatures,
//! LSH parameters and clustering, exact hashes.

pub mod lsh;
pub mod minhash;
pub mod normalize;
pub mod unionfind;

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

pub use lsh::{lsh_clusters, optimal_params};
pub use minhash::{MinHasher, Scratch, EMPTY_SLOT};
pub use normalize::{normalize, normalize_into, shingles};

/// Fill `out` (row-major, `texts.len() * hasher.num_perm()` slots) with the signatures of
/// `texts`, in parallel over documents on the current rayon pool.
pub fn signatures_into(hasher: &MinHasher, texts: &[&str], out: &mut [u32]) {
    let k = hasher.num_perm();
    assert_eq!(
        out.len(),
        texts.len() * k,
        "signature buffer has the wrong length"
    );
    out.par_chunks_mut(k)
        .zip(texts.par_iter())
        .with_min_len(16)
        .for_each_init(Scratch::default, |scratch, (row, text)| {
            hasher.signature_into(text, scratch, row)
        });
}

/// xxh3-64 (seed 0) of the normalized text: equal for texts that differ only in case,
/// punctuation and whitespace.
pub fn exact_hash(text: &str, buf: &mut String, words: &mut Vec<(u32, u32)>) -> u64 {
    normalize_into(text, buf, words);
    xxh3_64(buf.as_bytes())
}

/// [`exact_hash`] of every text, in parallel on the current rayon pool.
pub fn exact_hashes(texts: &[&str]) -> Vec<u64> {
    texts
        .par_iter()
        .with_min_len(16)
        .map_init(
            || (String::new(), Vec::new()),
            |(buf, words), t| exact_hash(t, buf, words),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_hash_ignores_case_punctuation_whitespace() {
        let h = exact_hashes(&["Hello,  World!", "hello world", "hello world again", ""]);
        assert_eq!(h[0], h[1]);
        assert_ne!(h[1], h[2]);
        assert_eq!(h[3], xxh3_64(b""));
    }

    #[test]
    fn batch_matches_single() {
        let hasher = MinHasher::new(20, 2, 3).unwrap();
        let texts = ["a b c", "", "x y z w", "a b c"];
        let mut out = vec![0; texts.len() * 20];
        signatures_into(&hasher, &texts, &mut out);
        for (row, t) in out.chunks(20).zip(texts) {
            assert_eq!(row, hasher.signature(t));
        }
    }
}
