//! Deduplication primitives: text normalization, word n-gram shingles, MinHash signatures,
//! LSH parameters and clustering, exact hashes.

pub mod lsh;
pub mod minhash;
pub mod ngram_index;
pub mod normalize;
pub mod unionfind;

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

pub use lsh::{lsh_clusters, lsh_dedup, optimal_params, recall_params};
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

/// Component timings on the benchmark corpus (`benches/data/corpus.jsonl`, built by
/// `python benches/bench_minhash.py`): `cargo test --release --lib dedup::perf -- --ignored --nocapture`.
#[cfg(test)]
mod perf {
    use super::*;
    use std::time::Instant;

    #[test]
    #[ignore]
    fn components() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/data/corpus.jsonl");
        let Ok(data) = std::fs::read_to_string(path) else {
            return;
        };
        let skip: usize = std::env::var("PERF_SKIP_MB").map_or(0, |v| v.parse().unwrap_or(0));
        let mut docs: Vec<String> = Vec::new();
        let mut total = 0;
        let mut skipped = 0;
        for line in data.lines() {
            let d: String = serde_json::from_str(line).unwrap();
            if skipped < skip * 1_000_000 {
                skipped += d.len();
                continue;
            }
            total += d.len();
            docs.push(d);
            if total > 40_000_000 {
                break;
            }
        }
        let mb = total as f64 / 1e6;
        let texts: Vec<&str> = docs.iter().map(|s| s.as_str()).collect();
        // CPU time of this thread (Linux schedstat), so other load on the machine counts less.
        let cpu = || -> f64 {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split(' ').next()?.parse::<f64>().ok())
                .map_or_else(|| Instant::now().elapsed().as_secs_f64(), |ns| ns / 1e9)
        };
        let time = |name: &str, f: &mut dyn FnMut()| {
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = cpu();
                f();
                best = best.min(cpu() - t);
            }
            println!(
                "{name:<24} {:8.1} MB/s {:6.2} ms/MB",
                mb / best,
                best * 1e3 / mb
            );
        };
        let (mut buf, mut words) = (String::new(), Vec::new());
        let mut shingle_count = 0;
        time("baseline: byte table sum", &mut || {
            let mut s = 0u64;
            for t in &texts {
                for &b in t.as_bytes() {
                    s = s.wrapping_add(u64::from(b).wrapping_mul(s | 1));
                }
            }
            std::hint::black_box(s);
        });
        time("normalize", &mut || {
            for t in &texts {
                normalize_into(t, &mut buf, &mut words);
            }
        });
        time("normalize+hash words", &mut || {
            let h = MinHasher::new(1, 5, 1).unwrap();
            let mut s = 0u64;
            for t in &texts {
                normalize_into(t, &mut buf, &mut words);
                for &(x, y) in &words {
                    s ^= h.hash_word(buf.as_bytes(), x as usize, y as usize);
                }
            }
            std::hint::black_box(s);
        });
        time("normalize+hash shingles", &mut || {
            shingle_count = 0;
            let h = MinHasher::new(1, 5, 1).unwrap();
            let mut scratch = Scratch::default();
            let mut s = 0u64;
            for t in &texts {
                let hashes = h.shingle_hashes_of(t, &mut scratch);
                s ^= hashes.iter().fold(0, |x, &y| x ^ y);
                shingle_count += hashes.len();
            }
            std::hint::black_box(s);
        });
        println!("shingles per MB: {:.0}", shingle_count as f64 / mb);
        for k in [1, 128] {
            let h = MinHasher::new(k, 5, 1).unwrap();
            let mut out = vec![0u32; texts.len() * k];
            let mut scratch = Scratch::default();
            time(&format!("signatures k={k}"), &mut || {
                for (row, t) in out.chunks_mut(k).zip(&texts) {
                    h.signature_into(t, &mut scratch, row);
                }
            });
        }
    }
}
