//! A fast linear educational-value classifier (phi-1's filter) over hashed word n-gram features.
//!
//! Features: the text is normalized as dedup normalizes it (lower case, letters and digits), its
//! word 1..=`ngram`-grams are hashed (xxh3, seeded) into `2^bits` buckets with a sign taken from
//! the hash (the hashing trick of Weinberger et al.), counts are damped with `ln(1 + c)` and the
//! vector is L2-normalized. The model is a linear regression of the 0-5 score, trained by
//! averaged SGD on the squared loss with L2 regularization, one example at a time in an order
//! shuffled by `seed`: training is deterministic, and scoring runs in parallel.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::dedup::minhash::splitmix64;
use crate::dedup::normalize_into;
use crate::error::{Error, Result};

/// Seed of the feature hash (fixed: a model is only valid with the features it was trained on).
const FEATURE_SEED: u64 = 0x6564_755f_6665_6174;

/// Training parameters.
#[derive(Debug, Clone)]
pub struct TrainParams {
    /// log2 of the number of feature buckets.
    pub bits: u32,
    /// Largest word n-gram (1 = words only).
    pub ngram: usize,
    pub epochs: usize,
    /// Initial learning rate; step `t` uses `lr / (1 + lr * l2 * t)`.
    pub lr: f64,
    pub l2: f64,
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            bits: 18,
            ngram: 2,
            epochs: 8,
            lr: 0.5,
            l2: 1e-6,
            seed: 0,
        }
    }
}

/// A trained model: weights over `2^bits` buckets, a bias, and the n-gram size of its features.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    pub weights: Vec<f32>,
    pub bias: f32,
    pub ngram: usize,
}

/// Sparse features of one text: `(bucket, value)`, buckets distinct, L2 norm 1 (empty for a text
/// without words).
pub fn features(text: &str, bits: u32, ngram: usize) -> Vec<(u32, f32)> {
    let mut buf = String::new();
    let mut words = Vec::new();
    normalize_into(text, &mut buf, &mut words);
    let bytes = buf.as_bytes();
    let hashes: Vec<u64> = words
        .iter()
        .map(|&(s, e)| xxh3_64_with_seed(&bytes[s as usize..e as usize], FEATURE_SEED))
        .collect();
    let mask = (1u64 << bits) - 1;
    let mut counts: FxHashMap<u32, f32> = FxHashMap::default();
    for n in 1..=ngram.max(1) {
        for window in hashes.windows(n) {
            let mut h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for (j, w) in window.iter().enumerate() {
                h = (h ^ w.rotate_left(17 * j as u32)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            }
            h ^= h >> 33;
            let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
            *counts.entry((h & mask) as u32).or_insert(0.0) += sign;
        }
    }
    let mut out: Vec<(u32, f32)> = counts
        .into_iter()
        .filter(|&(_, c)| c != 0.0)
        .map(|(k, c)| (k, c.signum() * c.abs().ln_1p()))
        .collect();
    out.sort_unstable_by_key(|&(k, _)| k);
    let norm = out.iter().map(|&(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, v) in &mut out {
            *v /= norm;
        }
    }
    out
}

fn dot(weights: &[f32], bias: f32, x: &[(u32, f32)]) -> f32 {
    bias + x.iter().map(|&(k, v)| weights[k as usize] * v).sum::<f32>()
}

/// Fit a model to `texts` scored `labels` (any real scale, 0-5 for edu scores).
pub fn train(texts: &[&str], labels: &[f32], params: &TrainParams) -> Result<LinearModel> {
    if texts.len() != labels.len() {
        return Err(Error::InvalidArgument(format!(
            "{} texts but {} labels",
            texts.len(),
            labels.len()
        )));
    }
    if texts.is_empty() {
        return Err(Error::InvalidArgument("no training examples".into()));
    }
    if !(4..=26).contains(&params.bits) {
        return Err(Error::InvalidArgument(format!(
            "bits must be in 4..=26, got {}",
            params.bits
        )));
    }
    let feats: Vec<Vec<(u32, f32)>> = texts
        .par_iter()
        .map(|t| features(t, params.bits, params.ngram))
        .collect();
    let dims = 1usize << params.bits;
    let mean = labels.iter().map(|&l| f64::from(l)).sum::<f64>() / labels.len() as f64;
    let mut w = vec![0f64; dims];
    let mut bias = mean;
    // Averaged SGD with lazy averaging: `avg = w_sum / steps`, kept as sums over steps.
    let mut w_sum = vec![0f64; dims];
    let mut last = vec![0u64; dims];
    let mut bias_sum = 0f64;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    let mut state = params.seed;
    let mut t: u64 = 0;
    for _ in 0..params.epochs.max(1) {
        for i in (1..order.len()).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for &i in &order {
            let x = &feats[i];
            let eta = params.lr / (1.0 + params.lr * params.l2 * t as f64);
            let pred = bias
                + x.iter()
                    .map(|&(k, v)| w[k as usize] * f64::from(v))
                    .sum::<f64>();
            let grad = pred - f64::from(labels[i]);
            let decay = 1.0 - eta * params.l2;
            for &(k, v) in x {
                let k = k as usize;
                // Bring the running sum up to date before changing w[k].
                w_sum[k] += w[k] * (t - last[k]) as f64;
                last[k] = t;
                w[k] = w[k] * decay - eta * grad * f64::from(v);
            }
            bias -= eta * grad;
            bias_sum += bias;
            t += 1;
        }
    }
    let weights = (0..dims)
        .map(|k| ((w_sum[k] + w[k] * (t - last[k]) as f64) / t as f64) as f32)
        .collect();
    Ok(LinearModel {
        weights,
        bias: (bias_sum / t as f64) as f32,
        ngram: params.ngram,
    })
}

impl LinearModel {
    /// log2 of the number of buckets.
    pub fn bits(&self) -> u32 {
        self.weights.len().trailing_zeros()
    }

    /// The predicted score of each text, in parallel on the current rayon pool.
    pub fn score_batch(&self, texts: &[&str]) -> Vec<f32> {
        let bits = self.bits();
        texts
            .par_iter()
            .with_min_len(8)
            .map(|t| dot(&self.weights, self.bias, &features(t, bits, self.ngram)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_normalized_and_deterministic() {
        let f = features("The cat sat on the mat. The cat!", 10, 2);
        let norm: f32 = f.iter().map(|&(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(f, features("the CAT sat on the mat the cat", 10, 2));
        assert!(features("  ...  ", 10, 2).is_empty());
    }

    #[test]
    fn learns_a_separable_signal_deterministically() {
        let good = "theorem proof lemma definition example exercise explain";
        let bad = "click buy now cheap offer free shipping login";
        let mut texts = Vec::new();
        let mut labels = Vec::new();
        for i in 0..200 {
            let words: Vec<&str> = if i % 2 == 0 { good } else { bad }.split(' ').collect();
            let text = (0..12)
                .map(|j| words[(i * 7 + j * 3) % words.len()])
                .collect::<Vec<_>>()
                .join(" ");
            texts.push(text);
            labels.push(if i % 2 == 0 { 5.0 } else { 0.0 });
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let params = TrainParams::default();
        let model = train(&refs, &labels, &params).unwrap();
        let scores = model.score_batch(&["a lemma and its proof", "buy now, free shipping"]);
        // Unseen words ("a", "and", "its") pull both towards the mean label (2.5).
        assert!(
            scores[0] > 2.5 && scores[1] < 2.5 && scores[0] - scores[1] > 1.0,
            "{scores:?}"
        );
        assert_eq!(model, train(&refs, &labels, &params).unwrap());
        assert!(train(&refs, &labels[..3], &params).is_err());
    }
}
