//! PyO3 bindings: the `phicorpus._core` extension module.
//!
//! Inputs are extracted while attached to the interpreter (borrowing `str` data without copying),
//! then the batch work runs detached (`py.detach`) on the rayon pool. Long calls work in chunks and
//! re-attach between them to call `check_signals`, so Ctrl-C interrupts them.

use pyo3::exceptions::{PyKeyboardInterrupt, PyNotImplementedError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::error::Error;

mod corpus;
mod dedup;
mod filter;
mod shard;
mod tokenize;

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let msg = err.to_string();
        match err {
            // Keep errno (ENOSPC must read as "disk full" in the CLI) and the file name.
            Error::Io { path, source } => match source.raw_os_error() {
                Some(code) => {
                    PyOSError::new_err((code, source.to_string(), path.display().to_string()))
                }
                None => PyOSError::new_err(msg),
            },
            Error::Format { .. } | Error::InvalidArgument(_) => PyValueError::new_err(msg),
            Error::Unsupported(_) => PyNotImplementedError::new_err(msg),
            Error::Interrupted => PyKeyboardInterrupt::new_err(msg),
        }
    }
}

/// At most this many documents per chunk between two signal checks in long batch calls.
pub(crate) const SIGNAL_CHUNK: usize = 4096;
/// About this many bytes of text per chunk at most, so a batch of long documents still checks
/// for Ctrl-C every few tens of milliseconds.
pub(crate) const SIGNAL_CHUNK_BYTES: usize = 4 << 20;

/// The chunks of `texts` that batch calls process between two signal checks.
pub(crate) fn text_chunks(texts: &[&str]) -> Vec<std::ops::Range<usize>> {
    crate::parallel::text_chunks(texts, SIGNAL_CHUNK, SIGNAL_CHUNK_BYTES)
}

/// Borrow the UTF-8 data of every `str` in `texts` (a list or any sequence of str).
///
/// The returned `Bound` values keep the strings alive; `as_strs` turns them into `&str` slices
/// that can cross into `py.detach`.
pub(crate) fn extract_texts<'py>(texts: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
    if let Ok(list) = texts.cast::<PyList>() {
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            out.push(item.cast_into::<PyString>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!("texts[{i}] is not a str"))
            })?);
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for (i, item) in texts.try_iter()?.enumerate() {
        out.push(item?.cast_into::<PyString>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!("texts[{i}] is not a str"))
        })?);
    }
    Ok(out)
}

/// `&str` views of extracted strings. Fails on strings that are not valid UTF-8 (lone
/// surrogates), naming the index.
pub(crate) fn as_strs<'a>(strings: &'a [Bound<'_, PyString>]) -> PyResult<Vec<&'a str>> {
    strings
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.to_str().map_err(|e| {
                PyValueError::new_err(format!("texts[{i}] is not valid UTF-8 text: {e}"))
            })
        })
        .collect()
}

/// Run `f` over `texts` in the chunks of [`text_chunks`], detached from the interpreter,
/// checking for Ctrl-C between chunks. `f` maps one chunk to its results, in order.
pub(crate) fn run_chunked<R, F>(py: Python<'_>, texts: &[&str], f: F) -> PyResult<Vec<R>>
where
    R: Send,
    F: Fn(&[&str]) -> Vec<R> + Sync,
{
    let mut out = Vec::with_capacity(texts.len());
    for range in text_chunks(texts) {
        let part = py.detach(|| f(&texts[range]));
        out.extend(part);
        py.check_signals()?;
    }
    Ok(out)
}

/// The `phicorpus._core` module.
#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    tokenize::register(m)?;
    dedup::register(m)?;
    filter::register(m)?;
    corpus::register(m)?;
    shard::register(m)?;
    Ok(())
}
