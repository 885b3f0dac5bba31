//! PyO3 bindings: the `phicorpus._core` extension module.
//!
//! Inputs are extracted while attached to the interpreter (borrowing `str` data without copying),
//! then the batch work runs detached (`py.detach`) on the rayon pool. Long calls work in chunks and
//! re-attach between them to call `check_signals`, so Ctrl-C interrupts them.

use numpy::PyReadonlyArray1;
use pyo3::exceptions::{PyKeyboardInterrupt, PyNotImplementedError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

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

/// The texts of a batch call: a sequence of `str`, or the buffers of an Arrow string array as
/// the tuple `(offsets, data)` (int64 offsets, `n + 1` of them, into UTF-8 `data`, uint8), which
/// `phicorpus.corpus.read_text_buffers` gives: no Python object per text then.
pub(crate) enum Texts<'py> {
    Strs(Vec<Bound<'py, PyString>>),
    Buffers(PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, u8>),
}

impl<'py> Texts<'py> {
    pub(crate) fn extract(texts: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(pair) = texts.cast::<PyTuple>() {
            if pair.len() == 2 {
                let (first, second) = (pair.get_item(0)?, pair.get_item(1)?);
                if !first.is_instance_of::<PyString>() {
                    let offsets = first.extract::<PyReadonlyArray1<'py, i64>>().map_err(|_| {
                        pyo3::exceptions::PyTypeError::new_err(
                            "text buffers: offsets must be a 1-d int64 array",
                        )
                    })?;
                    let data = second.extract::<PyReadonlyArray1<'py, u8>>().map_err(|_| {
                        pyo3::exceptions::PyTypeError::new_err(
                            "text buffers: data must be a 1-d uint8 array",
                        )
                    })?;
                    return Ok(Self::Buffers(offsets, data));
                }
            }
        }
        Ok(Self::Strs(extract_texts(texts)?))
    }

    /// `&str` views of every text (buffers are checked: offsets in range, each text UTF-8).
    pub(crate) fn strs(&self) -> PyResult<Vec<&str>> {
        match self {
            Self::Strs(strings) => as_strs(strings),
            Self::Buffers(offsets, data) => utf8_views(offsets.as_slice()?, data.as_slice()?),
        }
    }
}

/// `&str` views of the texts of Arrow-style `offsets` into `data`, each checked to be UTF-8.
pub(crate) fn utf8_views<'a>(offsets: &[i64], data: &'a [u8]) -> PyResult<Vec<&'a str>> {
    let mut out = Vec::with_capacity(offsets.len().saturating_sub(1));
    for (i, w) in offsets.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        if a < 0 || b < a || b as usize > data.len() {
            return Err(PyValueError::new_err(format!(
                "text {i}: offsets {a}..{b} are not within the {} bytes of data",
                data.len()
            )));
        }
        let text = std::str::from_utf8(&data[a as usize..b as usize])
            .map_err(|e| PyValueError::new_err(format!("text {i} is not valid UTF-8: {e}")))?;
        out.push(text);
    }
    Ok(out)
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
