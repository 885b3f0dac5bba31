//! Bindings for `crate::dedup`.

use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{as_strs, extract_texts, run_chunked, text_chunks};
use crate::dedup::{self, MinHasher};
use crate::parallel::install;

/// The normalized form of `text` (see `crate::dedup::normalize`).
#[pyfunction]
fn normalize_text(text: &str) -> String {
    dedup::normalize(text)
}

/// The word `ngram`-shingles of `text`, in document order, duplicates kept.
#[pyfunction]
#[pyo3(signature = (text, ngram = 5))]
fn shingles(text: &str, ngram: usize) -> PyResult<Vec<String>> {
    if ngram == 0 {
        return Err(PyValueError::new_err("ngram must be at least 1"));
    }
    Ok(dedup::shingles(text, ngram))
}

/// MinHash signatures of `texts` as a `(len(texts), num_perm)` uint32 array.
#[pyfunction]
#[pyo3(signature = (texts, num_perm = 128, ngram = 5, seed = 1, num_threads = None))]
fn minhash_signatures<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    num_perm: usize,
    ngram: usize,
    seed: u64,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<u32>>> {
    let hasher = MinHasher::new(num_perm, ngram, seed)?;
    let strings = extract_texts(texts)?;
    let texts = as_strs(&strings)?;
    let n = texts.len();
    let mut out = vec![0u32; n * num_perm];
    for range in text_chunks(&texts) {
        let rows = &mut out[range.start * num_perm..range.end * num_perm];
        let docs = &texts[range];
        py.detach(|| install(num_threads, || dedup::signatures_into(&hasher, docs, rows)));
        py.check_signals()?;
    }
    PyArray1::from_vec(py, out).reshape([n, num_perm])
}

/// The slots of a C-contiguous signature matrix and its width.
fn signature_slots<'a>(signatures: &'a PyReadonlyArray2<'_, u32>) -> PyResult<(&'a [u32], usize)> {
    let num_perm = signatures.shape()[1];
    let not_c = || {
        PyValueError::new_err(
            "signatures must be a C-contiguous array; pass np.ascontiguousarray(signatures)",
        )
    };
    // `as_slice` also accepts Fortran order, which would be read transposed.
    if !signatures.is_c_contiguous() {
        return Err(not_c());
    }
    let slots = signatures.as_slice().map_err(|_| not_c())?;
    if num_perm == 0 {
        return Err(PyValueError::new_err(
            "signatures must have at least one column",
        ));
    }
    Ok((slots, num_perm))
}

/// Cluster labels (smallest member index) from LSH banding of `signatures`.
#[pyfunction]
#[pyo3(signature = (signatures, bands, rows, num_threads = None))]
fn lsh_clusters<'py>(
    py: Python<'py>,
    signatures: PyReadonlyArray2<'py, u32>,
    bands: usize,
    rows: usize,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let (slots, num_perm) = signature_slots(&signatures)?;
    let labels = py.detach(|| {
        dedup::lsh_clusters(slots, num_perm, bands, rows, num_threads, || {
            Python::attach(|py| py.check_signals().is_ok())
        })
    })?;
    Ok(PyArray1::from_vec(py, labels))
}

/// Verified near-duplicate clustering: the representative of each document (see
/// `crate::dedup::lsh_dedup`).
#[pyfunction]
#[pyo3(signature = (signatures, priority, bands, rows, threshold, max_reps = 256, num_threads = None))]
#[allow(clippy::too_many_arguments)]
fn lsh_dedup<'py>(
    py: Python<'py>,
    signatures: PyReadonlyArray2<'py, u32>,
    priority: PyReadonlyArray1<'py, i64>,
    bands: usize,
    rows: usize,
    threshold: f64,
    max_reps: usize,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let (slots, num_perm) = signature_slots(&signatures)?;
    let priority = priority.as_slice().map_err(|_| {
        PyValueError::new_err("priority must be a contiguous array; pass np.ascontiguousarray")
    })?;
    let reps = py.detach(|| {
        dedup::lsh_dedup(
            slots,
            num_perm,
            priority,
            bands,
            rows,
            threshold,
            max_reps,
            num_threads,
            || Python::attach(|py| py.check_signals().is_ok()),
        )
    })?;
    Ok(PyArray1::from_vec(py, reps))
}

/// The recall-oriented `(bands, rows)` for verified dedup (see `crate::dedup::recall_params`).
#[pyfunction]
#[pyo3(signature = (threshold, num_perm, min_recall = 0.95))]
fn lsh_recall_params(threshold: f64, num_perm: usize, min_recall: f64) -> PyResult<(usize, usize)> {
    Ok(dedup::recall_params(threshold, num_perm, min_recall)?)
}

/// The `(bands, rows)` datasketch's MinHashLSH would choose.
#[pyfunction]
#[pyo3(signature = (threshold, num_perm, false_positive_weight = 0.5, false_negative_weight = 0.5))]
fn lsh_params(
    threshold: f64,
    num_perm: usize,
    false_positive_weight: f64,
    false_negative_weight: f64,
) -> PyResult<(usize, usize)> {
    Ok(dedup::optimal_params(
        threshold,
        num_perm,
        false_positive_weight,
        false_negative_weight,
    )?)
}

/// xxh3-64 of the normalized text of each document, as a uint64 array.
#[pyfunction]
#[pyo3(signature = (texts, num_threads = None))]
fn exact_hashes<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let strings = extract_texts(texts)?;
    let texts = as_strs(&strings)?;
    let hashes = run_chunked(py, &texts, |chunk| {
        install(num_threads, || dedup::exact_hashes(chunk))
    })?;
    Ok(PyArray1::from_vec(py, hashes))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(normalize_text, m)?)?;
    m.add_function(wrap_pyfunction!(shingles, m)?)?;
    m.add_function(wrap_pyfunction!(minhash_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(lsh_clusters, m)?)?;
    m.add_function(wrap_pyfunction!(lsh_params, m)?)?;
    m.add_function(wrap_pyfunction!(lsh_dedup, m)?)?;
    m.add_function(wrap_pyfunction!(lsh_recall_params, m)?)?;
    m.add_function(wrap_pyfunction!(exact_hashes, m)?)?;
    Ok(())
}
