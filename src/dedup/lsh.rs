//! LSH banding: the choice of `(bands, rows)` and the clustering of signatures by band collisions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// Check the shape of a row-major signature matrix and the banding; returns the document count.
fn check_banding(signatures: &[u32], num_perm: usize, bands: usize, rows: usize) -> Result<usize> {
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
    Ok(n)
}

/// Join the documents of `live` (indices into the `num_perm`-slot rows of `signatures`) whose
/// band `j` (slots `j*rows .. (j+1)*rows`, xxh3-64 of their bytes) is equal, for every band.
///
/// Memory: bands are processed a few at a time (as many as there are threads), each with one
/// reused buffer of `live.len()` (key, index) pairs. `check` runs on the calling thread between
/// groups of bands and stops the work by returning `false`.
#[allow(clippy::too_many_arguments)]
fn band_union(
    signatures: &[u32],
    num_perm: usize,
    live: &[u32],
    bands: usize,
    rows: usize,
    threads: Option<usize>,
    uf: &mut UnionFind,
    check: &mut impl FnMut() -> bool,
) -> Result<()> {
    let workers = install(threads, rayon::current_num_threads);
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
    Ok(())
}

/// The indices of the signatures that are not all [`EMPTY_SLOT`] (documents with shingles).
fn live_documents(signatures: &[u32], num_perm: usize, threads: Option<usize>) -> Vec<u32> {
    install(threads, || {
        signatures
            .par_chunks(num_perm)
            .enumerate()
            .filter(|(_, s)| !s.iter().all(|&v| v == EMPTY_SLOT))
            .map(|(i, _)| i as u32)
            .collect()
    })
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
    let n = check_banding(signatures, num_perm, bands, rows)?;
    let live = live_documents(signatures, num_perm, threads);
    let mut uf = UnionFind::new(n);
    band_union(
        signatures, num_perm, &live, bands, rows, threads, &mut uf, &mut check,
    )?;
    Ok(uf.min_labels())
}

/// The `(bands, rows)` for candidate generation ahead of verification: the most rows per band
/// (fewest chance candidates) with `bands = num_perm / rows` such that two documents of Jaccard
/// similarity exactly `threshold` share a band with probability at least `min_recall`.
/// If no banding reaches it, one row per band (`(num_perm, 1)`, the most sensitive).
///
/// For `threshold = 0.8`, `num_perm = 128`, `min_recall = 0.95`: 18 bands of 7 rows,
/// P(candidate | J = 0.8) = 0.986 (datasketch's 9 x 13 gives 0.40).
pub fn recall_params(threshold: f64, num_perm: usize, min_recall: f64) -> Result<(usize, usize)> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::InvalidArgument(format!(
            "threshold must be in [0, 1], got {threshold}"
        )));
    }
    if num_perm == 0 {
        return Err(Error::InvalidArgument("num_perm must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&min_recall) {
        return Err(Error::InvalidArgument(format!(
            "min_recall must be in [0, 1], got {min_recall}"
        )));
    }
    Ok((1..=num_perm)
        .rev()
        .map(|r| (num_perm / r, r))
        .find(|&(b, r)| collision_probability(threshold, b, r) >= min_recall)
        .unwrap_or((num_perm, 1)))
}

/// How many slots of two signatures are equal.
#[inline]
fn equal_slots(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).map(|(x, y)| usize::from(x == y)).sum()
}

/// A document in the component order: (component, priority, index).
type Member = (u32, i64, u32);

/// Representatives of one candidate component, `members` sorted best first: each document
/// joins the earliest representative among the last `max_reps` whose signature agrees with its
/// own on at least `need` slots, else becomes a representative. Writes one per member into
/// `out`; returns early (leaving `out` partly written) once `stop` is set.
fn component_representatives(
    signatures: &[u32],
    num_perm: usize,
    members: &[Member],
    need: usize,
    max_reps: usize,
    out: &mut [u32],
    stop: &AtomicBool,
) {
    let row = |i: u32| &signatures[i as usize * num_perm..(i as usize + 1) * num_perm];
    let mut reps: Vec<u32> = Vec::new();
    for (k, (&(_, _, doc), slot)) in members.iter().zip(out.iter_mut()).enumerate() {
        if k % 1024 == 1023 && stop.load(Ordering::Relaxed) {
            return;
        }
        let sig = row(doc);
        let window = &reps[reps.len().saturating_sub(max_reps)..];
        *slot = match window.iter().find(|&&r| equal_slots(sig, row(r)) >= need) {
            Some(&r) => r,
            None => {
                reps.push(doc);
                doc
            }
        };
    }
}

/// Run `work` on a helper thread while the calling thread calls `check` every 20 ms; when
/// `check` returns `false`, the flag passed to `work` is set (work should return soon after)
/// and the result is [`Error::Interrupted`]. So `check` (which may need the calling thread, as
/// Python's signal check does) runs however long one piece of `work` takes.
fn run_checked<R: Send>(
    work: impl FnOnce(&AtomicBool) -> R + Send,
    check: &mut impl FnMut() -> bool,
) -> Result<R> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| work(&stop));
        while !worker.is_finished() {
            if !stop.load(Ordering::Relaxed) && !check() {
                stop.store(true, Ordering::Relaxed);
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        let out = worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if stop.load(Ordering::Relaxed) {
            Err(Error::Interrupted)
        } else {
            Ok(out)
        }
    })
}

/// Verified near-duplicate clustering: LSH candidates, then greedy representatives.
///
/// 1. **Candidates**: documents sharing an LSH band (as in [`lsh_clusters`]) are joined into
///    candidate components (connected components; transitive, so a component may hold
///    documents that are far apart).
/// 2. **Verification**: within each component, documents are taken in `priority` order
///    (smallest first, ties by index). A document becomes a duplicate of the earliest
///    representative of its component whose signature agrees with its own on a fraction of at
///    least `threshold` of all `num_perm` slots (the MinHash estimate of Jaccard similarity),
///    else it becomes a representative itself. Every dropped document is thus within
///    `threshold` of the document it is dropped for, never only through a chain.
///
/// Returns, per document, the index of its representative (itself for representatives).
/// Documents with a negative priority take no part (e.g. exact duplicates the caller resolves
/// itself), and documents whose signature is all [`EMPTY_SLOT`] (no shingles) are singletons:
/// both are their own representatives.
///
/// Cost: a document is compared with at most `max_reps` representatives — the most recent ones
/// of its component — so a giant component (boilerplate, templates) costs at most
/// `n * max_reps * num_perm` slot comparisons instead of a quadratic pair list; in such a
/// component a document whose only match is an older representative becomes a representative
/// (a missed duplicate, never a wrong one). Memory: the banding buffers of [`lsh_clusters`],
/// 16 bytes per document for the component order and 4 for the result.
///
/// Parallel over components on `threads` threads (a component is one task); the result does
/// not depend on the thread count. `check` runs on the calling thread between bands and every
/// 20 ms while components are processed, and stops the work by returning `false` (workers see
/// it within 1024 documents).
#[allow(clippy::too_many_arguments)]
pub fn lsh_dedup(
    signatures: &[u32],
    num_perm: usize,
    priority: &[i64],
    bands: usize,
    rows: usize,
    threshold: f64,
    max_reps: usize,
    threads: Option<usize>,
    mut check: impl FnMut() -> bool,
) -> Result<Vec<i64>> {
    let n = check_banding(signatures, num_perm, bands, rows)?;
    if priority.len() != n {
        return Err(Error::InvalidArgument(format!(
            "priority has {} entries for {n} signatures",
            priority.len()
        )));
    }
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::InvalidArgument(format!(
            "threshold must be in [0, 1], got {threshold}"
        )));
    }
    if max_reps == 0 {
        return Err(Error::InvalidArgument("max_reps must be at least 1".into()));
    }
    // Slots that must agree: the smallest count whose fraction reaches the threshold.
    let need = (0..=num_perm)
        .find(|&c| c as f64 / num_perm as f64 >= threshold)
        .unwrap_or(num_perm);
    let mut live = live_documents(signatures, num_perm, threads);
    live.retain(|&i| priority[i as usize] >= 0);
    let mut uf = UnionFind::new(n);
    band_union(
        signatures, num_perm, &live, bands, rows, threads, &mut uf, &mut check,
    )?;
    // (component, priority, index) of every document in a component of two or more, sorted:
    // each component is one run, best first. The component is named by its smallest member
    // (not the union-find root), so the order does not depend on how the unions ran.
    let labels = uf.min_labels();
    let mut size = vec![0u32; n];
    for &i in &live {
        size[labels[i as usize] as usize] += 1;
    }
    let mut order: Vec<Member> = live
        .iter()
        .filter(|&&i| size[labels[i as usize] as usize] > 1)
        .map(|&i| (labels[i as usize] as u32, priority[i as usize], i))
        .collect();
    drop(size);
    drop(labels);
    install(threads, || order.par_sort_unstable());
    // One output slice per component, filled in parallel over components.
    let mut reps = vec![0u32; order.len()];
    let mut parts: Vec<(&[Member], &mut [u32])> = Vec::new();
    let mut rest = reps.as_mut_slice();
    for members in order.chunk_by(|x, y| x.0 == y.0) {
        let (part, tail) = rest.split_at_mut(members.len());
        parts.push((members, part));
        rest = tail;
    }
    run_checked(
        |stop| {
            install(threads, || {
                parts.par_iter_mut().for_each(|(members, out)| {
                    if !stop.load(Ordering::Relaxed) {
                        component_representatives(
                            signatures, num_perm, members, need, max_reps, out, stop,
                        );
                    }
                })
            })
        },
        &mut check,
    )?;
    drop(parts);
    let mut out: Vec<i64> = (0..n as i64).collect();
    for (&(_, _, doc), &rep) in order.iter().zip(&reps) {
        out[doc as usize] = i64::from(rep);
    }
    Ok(out)
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

    /// A pseudo-random signature row (splitmix64), distinct per `seed`.
    fn random_row(seed: u64, k: usize) -> Vec<u32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (0..k)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u32 & 0x7FFF_FFFF
            })
            .collect()
    }

    /// `row` with the slots of `range` replaced by fresh values.
    fn edited(row: &[u32], range: std::ops::Range<usize>, seed: u64) -> Vec<u32> {
        let fresh = random_row(seed, row.len());
        let mut out = row.to_vec();
        out[range.clone()].copy_from_slice(&fresh[range]);
        out
    }

    fn dedup(sigs: &[u32], priority: &[i64], max_reps: usize, threads: Option<usize>) -> Vec<i64> {
        lsh_dedup(sigs, 128, priority, 18, 7, 0.8, max_reps, threads, || true).unwrap()
    }

    #[test]
    fn recall_oriented_params() {
        let (b, r) = recall_params(0.8, 128, 0.95).unwrap();
        assert_eq!((b, r), (18, 7));
        assert!(collision_probability(0.8, b, r) >= 0.95);
        // One more row per band would miss more than 5% of the pairs at the threshold.
        assert!(collision_probability(0.8, 128 / 8, 8) < 0.95);
        // Out of reach: the most sensitive banding.
        assert_eq!(recall_params(0.0, 128, 0.5).unwrap(), (128, 1));
        assert!(recall_params(0.8, 128, 1.5).is_err());
        assert!(recall_params(-0.1, 128, 0.9).is_err());
    }

    #[test]
    fn chain_is_not_followed() {
        // A ~ B and B ~ C agree on 110 of 128 slots (0.86), A and C on 92 (0.72): one
        // candidate component (slots 36.. are shared), but C is not a duplicate of A.
        let a = random_row(1, 128);
        let b = edited(&a, 0..18, 2);
        let c = edited(&b, 18..36, 3);
        let sigs = [a, b, c].concat();
        assert_eq!(
            lsh_clusters(&sigs, 128, 18, 7, None, || true).unwrap(),
            [0, 0, 0]
        );
        assert_eq!(dedup(&sigs, &[0, 1, 2], 8, None), [0, 0, 2]);
        // Priority decides who represents: B first takes both A and C.
        assert_eq!(dedup(&sigs, &[1, 0, 2], 8, None), [1, 1, 1]);
        // C first: B joins C, A is kept (0.72 from C).
        assert_eq!(dedup(&sigs, &[2, 1, 0], 8, None), [0, 2, 2]);
        // Ties go to the smaller index.
        assert_eq!(dedup(&sigs, &[5, 5, 5], 8, None), [0, 0, 2]);
        // A negative priority leaves a document out: without B, A and C are apart anyway.
        assert_eq!(dedup(&sigs, &[0, -1, 1], 8, None), [0, 1, 2]);
    }

    #[test]
    fn threshold_counts_all_slots() {
        let a = random_row(7, 128);
        // 103 of 128 equal = 0.805 >= 0.8; 102 = 0.797 < 0.8.
        let sigs = [a.clone(), edited(&a, 0..25, 8), edited(&a, 0..26, 9)].concat();
        assert_eq!(dedup(&sigs, &[0, 1, 2], 8, None), [0, 0, 2]);
    }

    #[test]
    fn empty_signatures_stay_apart() {
        let a = random_row(4, 128);
        let empty = vec![EMPTY_SLOT; 128];
        let sigs = [empty.clone(), a.clone(), empty, a].concat();
        assert_eq!(dedup(&sigs, &[0, 1, 2, 3], 8, None), [0, 1, 2, 1]);
    }

    #[test]
    fn max_reps_bounds_the_comparisons() {
        // Ten representatives that all share slots 64.. (one component), then a copy of the
        // first: with a window of 4 it no longer sees the first and is kept.
        let base = random_row(10, 128);
        let mut rows: Vec<Vec<u32>> = (0..10).map(|i| edited(&base, 0..64, 20 + i)).collect();
        rows.push(rows[0].clone());
        let sigs = rows.concat();
        let priority: Vec<i64> = (0..11).collect();
        let mut full: Vec<i64> = (0..11).collect();
        full[10] = 0;
        assert_eq!(dedup(&sigs, &priority, 16, None), full);
        assert_eq!(
            dedup(&sigs, &priority, 4, None),
            (0..11).collect::<Vec<_>>()
        );
    }

    #[test]
    fn planted_groups_and_thread_count() {
        // 300 groups of a base and 5 near copies (12 slots edited each: 0.91 to the base,
        // about 0.81 to each other), in a scrambled order, with scrambled priorities.
        let mut rows = Vec::new();
        let mut group = Vec::new();
        for g in 0..300u64 {
            let base = random_row(1000 + g, 128);
            rows.push(base.clone());
            group.push(g);
            for e in 0..5u64 {
                let at = (e * 12) as usize;
                rows.push(edited(&base, at..at + 12, 5000 + g * 8 + e));
                group.push(g);
            }
        }
        let n = rows.len();
        let perm: Vec<usize> = (0..n).map(|i| (i * 7919) % n).collect();
        let sigs: Vec<u32> = perm.iter().flat_map(|&i| rows[i].clone()).collect();
        let group: Vec<u64> = perm.iter().map(|&i| group[i]).collect();
        let priority: Vec<i64> = (0..n as i64).map(|i| (i * 31) % 97).collect();
        let reps = dedup(&sigs, &priority, 256, Some(1));
        for t in [2, 4] {
            assert_eq!(dedup(&sigs, &priority, 256, Some(t)), reps);
        }
        let row = |i: usize| &sigs[i * 128..(i + 1) * 128];
        for i in 0..n {
            let r = reps[i] as usize;
            assert_eq!(group[r], group[i]);
            assert_eq!(reps[r] as usize, r, "a representative represents itself");
            assert!(equal_slots(row(i), row(r)) >= 103);
            if r != i {
                assert!(
                    (priority[r], r) < (priority[i], i),
                    "representatives come first"
                );
            }
        }
        // Each group's best document is a representative.
        for g in 0..300 {
            let best = (0..n)
                .filter(|&i| group[i] == g)
                .min_by_key(|&i| (priority[i], i))
                .unwrap();
            assert_eq!(reps[best] as usize, best);
        }
    }

    #[test]
    fn run_checked_stops_long_work() {
        let spin = |stop: &AtomicBool| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            7
        };
        assert!(matches!(
            run_checked(spin, &mut || false),
            Err(Error::Interrupted)
        ));
        let mut calls = 0;
        let quick = run_checked(
            |_| {
                std::thread::sleep(Duration::from_millis(100));
                7
            },
            &mut || {
                calls += 1;
                true
            },
        );
        assert_eq!(quick.unwrap(), 7);
        assert!(calls >= 2, "checked while the work ran");
    }

    #[test]
    fn dedup_rejects_bad_arguments() {
        let sigs = random_row(3, 256);
        let ok = |p: &[i64], b, r, t, m| lsh_dedup(&sigs, 128, p, b, r, t, m, None, || true);
        assert!(ok(&[0, 1], 18, 7, 0.8, 8).is_ok());
        assert!(ok(&[0], 18, 7, 0.8, 8).is_err());
        assert!(ok(&[0, 1], 19, 7, 0.8, 8).is_err());
        assert!(ok(&[0, 1], 18, 7, 1.2, 8).is_err());
        assert!(ok(&[0, 1], 18, 7, 0.8, 0).is_err());
        assert!(matches!(
            lsh_dedup(&sigs, 128, &[0, 1], 18, 7, 0.8, 8, None, || false),
            Err(Error::Interrupted)
        ));
    }
}
