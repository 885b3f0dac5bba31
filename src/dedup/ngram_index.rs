//! An n-gram index of benchmark texts for decontamination (GPT-3 / Megatron style): every word
//! `ngram`-gram of the normalized benchmark texts (13 by default) is hashed into a set, with the
//! benchmark it came from; a document is contaminated when one of its n-grams is in the set.
//!
//! Texts and documents are normalized and shingled exactly as MinHash shingles them
//! ([`crate::dedup::normalize`], [`MinHasher::shingle_hashes_of`]): a text with fewer than
//! `ngram` words is a single n-gram of all its words.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::minhash::{MinHasher, Scratch};
use crate::error::Result;

/// Seed of the n-gram hash.
const SEED: u64 = 0x6465_636f_6e74_616d;

/// Hashes of the n-grams of labelled texts.
#[derive(Debug, Clone)]
pub struct NgramIndex {
    hasher: MinHasher,
    /// n-gram hash → smallest label of a text that contains it.
    grams: FxHashMap<u64, u32>,
}

/// What a query found in one document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hit {
    /// n-gram positions of the document whose n-gram is in the index.
    pub hits: u32,
    /// Smallest label among the matching n-grams (`u32::MAX` when none matched).
    pub label: u32,
}

impl NgramIndex {
    /// Index `texts`, `labels[i]` naming the benchmark of `texts[i]`.
    pub fn build(texts: &[&str], labels: &[u32], ngram: usize) -> Result<Self> {
        let hasher = MinHasher::new(1, ngram, SEED)?;
        let per_text: Vec<Vec<u64>> = texts
            .par_iter()
            .map_init(Scratch::default, |scratch, t| {
                hasher.shingle_hashes_of(t, scratch).to_vec()
            })
            .collect();
        let mut grams = FxHashMap::default();
        for (hashes, &label) in per_text.iter().zip(labels) {
            for &h in hashes {
                grams
                    .entry(h)
                    .and_modify(|l: &mut u32| *l = (*l).min(label))
                    .or_insert(label);
            }
        }
        Ok(Self { hasher, grams })
    }

    /// Distinct n-grams indexed.
    pub fn len(&self) -> usize {
        self.grams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// The hits of each document, in parallel on the current rayon pool.
    pub fn query(&self, texts: &[&str]) -> Vec<Hit> {
        texts
            .par_iter()
            .with_min_len(8)
            .map_init(Scratch::default, |scratch, t| {
                let mut hit = Hit {
                    hits: 0,
                    label: u32::MAX,
                };
                for h in self.hasher.shingle_hashes_of(t, scratch) {
                    if let Some(&label) = self.grams.get(h) {
                        hit.hits += 1;
                        hit.label = hit.label.min(label);
                    }
                }
                hit
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_overlaps_by_benchmark() {
        let bench = [
            "What is the capital of France? Paris is the capital.",
            "Two plus two equals four, said the teacher.",
        ];
        let index = NgramIndex::build(&bench, &[0, 1], 5).unwrap();
        let docs = [
            "Trivia: what is the CAPITAL of France -- Paris!",
            "Nothing to see here at all, friends.",
            "two plus two equals four",
        ];
        let hits = index.query(&docs);
        assert!(hits[0].hits >= 1 && hits[0].label == 0);
        assert_eq!(
            hits[1],
            Hit {
                hits: 0,
                label: u32::MAX
            }
        );
        assert_eq!(hits[2].label, 1);
        assert!(!index.is_empty());
    }
}
