//! Bindings for `crate::filter`: quality signals of a batch of documents as NumPy columns.

use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::{run_chunked, Texts};
use crate::filter::{compute_batch, Signals, SIGNAL_NAMES};

/// `quality_signal_columns(texts, num_threads=None) -> dict[str, numpy.ndarray]`: one array per
/// signal (float64 ratios, int64 counts, bool flags), in `SIGNAL_NAMES` order. `texts`: a sequence
/// of str or `(offsets, data)` buffers ([`Texts`]).
#[pyfunction]
#[pyo3(signature = (texts, num_threads = None))]
fn quality_signal_columns<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let texts = Texts::extract(texts)?;
    let strs = texts.strs()?;
    let signals: Vec<Signals> = run_chunked(py, &strs, |chunk| {
        crate::parallel::install(num_threads, || compute_batch(chunk))
    })?;

    let out = PyDict::new(py);
    let f = |g: &dyn Fn(&Signals) -> f64| signals.iter().map(g).collect::<Vec<f64>>();
    let i = |g: &dyn Fn(&Signals) -> u64| {
        signals
            .iter()
            .map(|s| i64::try_from(g(s)).unwrap_or(i64::MAX))
            .collect::<Vec<i64>>()
    };
    let b = |g: &dyn Fn(&Signals) -> bool| signals.iter().map(g).collect::<Vec<bool>>();
    let mut columns: Vec<Bound<'py, PyAny>> = vec![
        f(&|s| s.dup_para_frac).into_pyarray(py).into_any(),
        f(&|s| s.dup_para_char_frac).into_pyarray(py).into_any(),
        f(&|s| s.dup_line_frac).into_pyarray(py).into_any(),
        f(&|s| s.dup_line_char_frac).into_pyarray(py).into_any(),
    ];
    for k in 0..3 {
        columns.push(f(&|s| s.top_ngram_char_frac[k]).into_pyarray(py).into_any());
    }
    for k in 0..6 {
        columns.push(f(&|s| s.dup_ngram_char_frac[k]).into_pyarray(py).into_any());
    }
    columns.extend([
        i(&|s| s.n_chars).into_pyarray(py).into_any(),
        i(&|s| s.n_words).into_pyarray(py).into_any(),
        i(&|s| s.n_non_symbol_words).into_pyarray(py).into_any(),
        f(&|s| s.mean_word_length).into_pyarray(py).into_any(),
        f(&|s| s.hash_word_ratio).into_pyarray(py).into_any(),
        f(&|s| s.ellipsis_word_ratio).into_pyarray(py).into_any(),
        f(&|s| s.bullet_line_frac).into_pyarray(py).into_any(),
        f(&|s| s.ellipsis_line_frac).into_pyarray(py).into_any(),
        f(&|s| s.alpha_word_frac).into_pyarray(py).into_any(),
        i(&|s| s.stop_word_count).into_pyarray(py).into_any(),
        f(&|s| s.c4_lines_kept_frac).into_pyarray(py).into_any(),
        i(&|s| s.c4_sentences).into_pyarray(py).into_any(),
        b(&|s| s.c4_lorem_ipsum).into_pyarray(py).into_any(),
        b(&|s| s.c4_curly_bracket).into_pyarray(py).into_any(),
        i(&|s| s.c4_too_long_word_lines).into_pyarray(py).into_any(),
        i(&|s| s.fineweb_lines).into_pyarray(py).into_any(),
        f(&|s| s.fineweb_line_punct_ratio)
            .into_pyarray(py)
            .into_any(),
        f(&|s| s.fineweb_short_line_ratio)
            .into_pyarray(py)
            .into_any(),
        f(&|s| s.fineweb_char_dup_ratio).into_pyarray(py).into_any(),
        f(&|s| s.fineweb_newline_word_ratio)
            .into_pyarray(py)
            .into_any(),
    ]);
    debug_assert_eq!(columns.len(), SIGNAL_NAMES.len());
    for (name, col) in SIGNAL_NAMES.iter().zip(columns) {
        out.set_item(name, col)?;
    }
    Ok(out)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(quality_signal_columns, m)?)?;
    m.add("SIGNAL_NAMES", PyTuple::new(m.py(), SIGNAL_NAMES)?)?;
    Ok(())
}
