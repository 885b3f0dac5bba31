//! LSH banding: the choice of `(bands, rows)` and the clustering of signatures by band collisions.

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use super::minhash::EMPTY_SLOT;
use super::unionfind::UnionFind;
use crate::error::{Error, Result};
use crate::parallel::install;

// Gauss-Kronrod 21-point rule (QUADPACK qk21): Kronrod nodes, their weights, and the weights of
// the embedded 10-point Gauss rule (whose nodes are XGK[1], XGK[3], ..., XGK[9]).
const XGK: [f64; 11] = [
    0.995_657_163_025_808_1,
    0.973_906_528_517_171_7,
    0.930_157_491_355_708_2,
    0.865_063_366_688_984_5,
    0.780_817_726_586_416_9,
    0.679_409_568_299_024_4,
    0.562_757_134_668_604_7,
    0.433_395_394_129_247_2,
    0.294_392_862_701_460_2,
    0.148_874_338_981_631_2,
    0.0,
];
const WGK: [f64; 11] = [
    0.011_694_638_867_371_874,
    0.032_558_162_307_964_73,
    0.054_755_896_574_352,
    0.075_039_674_810_919_95,
    0.093_125_454_583_697_6,
    0.109_387_158_802_297_64,
    0.123_491_976_262_065_85,
    0.134_709_217_311_473_33,
    0.142_775_938_577_060_08,
    0.147_739_104_901_338_5,
    0.149_445_554_002_916_9,
];
const WG: [f64; 5] = [
    0.066_671_344_308_688_14,
    0.149_451_349_150_580_6,
    0.219_086_362_515_982_04,
    0.269_266_719_309_996_36,
    0.295_524_224_714_752_87,
];

/// One qk21 step on `[lo, hi]`: (integral, error estimate), as QUADPACK computes them.
fn qk21(f: &impl Fn(f64) -> f64, lo: f64, hi: f64) -> (f64, f64) {
    let center = 0.5 * (lo + hi);
    let half = 0.5 * (hi - lo);
    let fc = f(center);
    let mut resg = 0.0;
    let mut resk = WGK[10] * fc;
    let mut resabs = resk.abs();
    let mut fv = [(0.0, 0.0); 10];
    for j in 0..10 {
        let dx = half * XGK[j];
        let (f1, f2) = (f(center - dx), f(center + dx));
        fv[j] = (f1, f2);
        resk += WGK[j] * (f1 + f2);
        resabs += WGK[j] * (f1.abs() + f2.abs());
        if j % 2 == 1 {
            resg += WG[j / 2] * (f1 + f2);
        }
    }
    let reskh = 0.5 * resk;
    let mut resasc = WGK[10] * (fc - reskh).abs();
    for j in 0..10 {
        resasc += WGK[j] * ((fv[j].0 - reskh).abs() + (fv[j].1 - reskh).abs());
    }
    let dh = half.abs();
    let result = resk * half;
    resabs *= dh;
    resasc *= dh;
    let mut err = ((resk - resg) * half).abs();
    if resasc != 0.0 && err != 0.0 {
        err = resasc * (200.0 * err / resasc).powf(1.5).min(1.0);
    }
    if resabs > f64::MIN_POSITIVE / (50.0 * f64::EPSILON) {
        err = err.max(50.0 * f64::EPSILON * resabs);
    }
    (result, err)
}

/// Adaptive Gauss-Kronrod integration to scipy.integrate.quad's default tolerances
/// (absolute and relative 1.49e-8), bisecting the interval with the largest error.
fn integrate(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const TOL: f64 = 1.49e-8;
    let mut parts = vec![(lo, hi, qk21(&f, lo, hi))];
    for _ in 0..50 {
        let total: f64 = parts.iter().map(|p| p.2 .0).sum();
        let err: f64 = parts.iter().map(|p| p.2 .1).sum();
        if err <= TOL.max(TOL * total.abs()) {
            return total;
        }
        let worst = (0..parts.len())
            .max_by(|&i, &j| parts[i].2 .1.total_cmp(&parts[j].2 .1))
            .unwrap_or(0);
        let (a, b, _) = parts.swap_remove(worst);
        let mid = 0.5 * (a + b);
        parts.push((a, mid, qk21(&f, a, mid)));
        parts.push((mid, b, qk21(&f, mid, b)));
    }
    parts.iter().map(|p| p.2 .0).sum()
}

/// Probability that two documents of Jaccard similarity `s` share at least one band.
#[inline]
pub fn collision_probability(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powf(rows as f64)).powf(bands as f64)
}

/// The `(bands, rows)` with `bands * rows <= num_perm` that minimizes
/// `fp_weight * FP + fn_weight * FN`, where FP integrates the collision probability over
/// `[0, threshold]` and FN its complement over `[threshold, 1]` — datasketch's
/// `MinHashLSH._optimal_param`, searched in the same order with the same strict comparison.
pub fn optimal_params(
    threshold: f64,
    num_perm: usize,
    fp_weight: f64,
    fn_weight: f64,
) -> Result<(usize, usize)> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::InvalidArgument(format!(
            "threshold must be in [0, 1], got {threshold}"
        )));
    }
    if num_perm == 0 {
        return Err(Error::InvalidArgument("num_perm must be at least 1".into()));
    }
    if !(fp_weight >= 0.0 && fn_weight >= 0.0 && fp_weight.is_finite() && fn_weight.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "weights must be finite and non-negative, got {fp_weight} and {fn_weight}"
        )));
    }
    let mut best = (0, 0);
    let mut min_error = f64::INFINITY;
    for b in 1..=num_perm {
        for r in 1..=num_perm / b {
            let fp = integrate(|s| collision_probability(s, b, r), 0.0, threshold);
            let fneg = integrate(|s| 1.0 - collision_probability(s, b, r), threshold, 1.0);
            let error = fp * fp_weight + fneg * fn_weight;
            if error < min_error {
                min_error = error;
                best = (b, r);
            }
        }
    }
    Ok(best)
}

/// The bytes of a slice of slots, for hashing (native byte order, little-endian on every
/// platform this is built for).
#[inline]
fn slot_bytes(slots: &[u32]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every bit pattern is valid; the length covers the slice.
    unsafe { std::slice::from_raw_parts(slots.as_ptr().cast::<u8>(), std::mem::size_of_val(slots)) }
}

/// Cluster `n` signatures of `num_perm` slots each (row-major in `signatures`) by LSH banding.
///
/// Band `j` of a signature is slots `j*rows .. (j+1)*rows`. Two documents whose band `j` hashes
/// (xxh3-64 of the slots' bytes) are equal are joined; clusters are the connected components.
/// Each document's label is the smallest document index of its cluster. Documents whose
/// signature is all [`EMPTY_SLOT`] (no shingles) are singletons.
///
/// Memory: bands are processed a few at a time (as many as there are threads), each with one
/// reused buffer of `n` (key, index) pairs. The parallel work runs on `threads` threads (see
/// [`crate::parallel::install`]); `check` is called on the calling thread between groups of
/// bands and may stop the work by returning `false`.
pub fn lsh_clusters(
    signatures: &[u32],
    num_perm: usize,
    bands: usize,
    rows: usize,
    threads: Option<usize>,
    mut check: impl FnMut() -> bool,
) -> Result<Vec<i64>> {
    if num_perm == 0 || !signatures.len().is_multiple_of(num_perm) {
        return Err(Error::InvalidArgument(format!(
            "signatures of {} slots cannot be rows of {num_perm} permutations",
            signatures.len()
        )));
    }
    if bands == 0 || rows == 0 || bands * rows > num_perm {
        return Err(Error::InvalidArgument(format!(
            "bands * rows must be between 1 and num_perm = {num_perm}, got {bands} * {rows}"
        )));
    }
    let n = signatures.len() / num_perm;
    if n > u32::MAX as usize {
        return Err(Error::InvalidArgument(format!("too many documents: {n}")));
    }
    let (live, workers) = install(threads, || {
        let live: Vec<u32> = signatures
            .par_chunks(num_perm)
            .enumerate()
            .filter(|(_, s)| !s.iter().all(|&v| v == EMPTY_SLOT))
            .map(|(i, _)| i as u32)
            .collect();
        (live, rayon::current_num_threads())
    });
    let mut uf = UnionFind::new(n);
    let group = workers.clamp(1, bands);
    let mut buffers: Vec<Vec<(u64, u32)>> =
        (0..group).map(|_| Vec::with_capacity(live.len())).collect();
    for first in (0..bands).step_by(group) {
        let count = group.min(bands - first);
        install(threads, || {
            buffers[..count]
                .par_iter_mut()
                .enumerate()
                .for_each(|(k, keys)| {
                    let offset = (first + k) * rows;
                    keys.clear();
                    keys.extend(live.iter().map(|&i| {
                        let start = i as usize * num_perm + offset;
                        (xxh3_64(slot_bytes(&signatures[start..start + rows])), i)
                    }));
                    keys.sort_unstable();
                })
        });
        for keys in &buffers[..count] {
            for run in keys.chunk_by(|x, y| x.0 == y.0) {
                for &(_, i) in &run[1..] {
                    uf.union(run[0].1 as usize, i as usize);
                }
            }
        }
        if !check() {
            return Err(Error::Interrupted);
        }
    }
    Ok(uf.min_labels())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_optimal_params() {
        // datasketch 2.0 MinHashLSH for 128 permutations.
        assert_eq!(optimal_params(0.7, 128, 0.5, 0.5).unwrap(), (14, 9));
        assert_eq!(optimal_params(0.8, 128, 0.5, 0.5).unwrap(), (9, 13));
        assert!(optimal_params(1.5, 128, 0.5, 0.5).is_err());
        assert!(optimal_params(0.5, 0, 0.5, 0.5).is_err());
    }

    #[test]
    fn integration_is_accurate() {
        // ∫0^1 1-(1-s^2)^3 ds = 1 - (1 - 1 + 3/5 - 3/7 ... ) computed exactly: 1 - 16/35.
        let got = integrate(|s| collision_probability(s, 3, 2), 0.0, 1.0);
        assert!((got - (1.0 - 16.0 / 35.0)).abs() < 1e-12, "{got}");
    }

    #[test]
    fn clusters_by_band_collisions() {
        let k = 8;
        let mut sigs = vec![0u32; 5 * k];
        for (i, row) in sigs.chunks_mut(k).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (i * 100 + j) as u32;
            }
        }
        // doc 3 shares band 1 (slots 4..8) with doc 1; doc 4 is empty.
        let band: Vec<u32> = sigs[k + 4..k + 8].to_vec();
        sigs[3 * k + 4..3 * k + 8].copy_from_slice(&band);
        sigs[4 * k..5 * k].fill(EMPTY_SLOT);
        let labels = lsh_clusters(&sigs, k, 2, 4, None, || true).unwrap();
        assert_eq!(labels, [0, 1, 2, 1, 4]);
        // Two empty documents stay apart.
        sigs[2 * k..3 * k].fill(EMPTY_SLOT);
        assert_eq!(
            lsh_clusters(&sigs, k, 2, 4, None, || true).unwrap(),
            [0, 1, 2, 1, 4]
        );
        assert!(lsh_clusters(&sigs, k, 3, 3, None, || true).is_err());
        assert!(lsh_clusters(&sigs[1..], k, 2, 4, None, || true).is_err());
        assert!(matches!(
            lsh_clusters(&sigs, k, 2, 4, Some(2), || false),
            Err(Error::Interrupted)
        ));
    }
}
