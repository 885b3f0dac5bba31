//! Bindings for `crate::tokenize`: the `BpeTokenizer` class of `phicorpus._core`.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{as_strs, extract_texts, run_chunked};
use crate::parallel;
use crate::tokenize::Tokenizer;

/// A byte-level BPE tokenizer loaded from a `tokenizer.json` (see `phicorpus.tokenize`).
#[pyclass(frozen, name = "BpeTokenizer", module = "phicorpus._core")]
pub(crate) struct PyBpeTokenizer {
    pub(crate) inner: Arc<Tokenizer>,
}

#[pymethods]
impl PyBpeTokenizer {
    /// Load `path`; raises OSError, ValueError (malformed file) or NotImplementedError (a
    /// feature this encoder does not implement), each naming the file.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let tok = py.detach(|| Tokenizer::from_file(&path))?;
        Ok(Self {
            inner: Arc::new(tok),
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    #[getter]
    fn max_id(&self) -> u32 {
        self.inner.max_id()
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id).map(str::to_string)
    }

    #[pyo3(signature = (text, add_special_tokens = true))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        add_special_tokens: bool,
    ) -> Bound<'py, PyArray1<u32>> {
        let ids = if text.len() > 4096 {
            py.detach(|| self.inner.encode(text, add_special_tokens))
        } else {
            self.inner.encode(text, add_special_tokens)
        };
        ids.into_pyarray(py)
    }

    /// Encode a list of str: (flat ids as uint32 or uint16, int64 offsets of length n + 1).
    #[pyo3(signature = (texts, add_special_tokens = true, num_threads = None, uint16 = false))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        add_special_tokens: bool,
        num_threads: Option<usize>,
        uint16: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyArray1<i64>>)> {
        if uint16 && self.inner.max_id() > u16::MAX as u32 {
            return Err(PyValueError::new_err(format!(
                "dtype uint16 cannot hold ids up to {} (vocabulary too large); use uint32",
                self.inner.max_id()
            )));
        }
        let strings = extract_texts(texts)?;
        let strs = as_strs(&strings)?;
        let tok = &*self.inner;
        let parts = run_chunked(py, &strs, |chunk| {
            parallel::install(num_threads, || tok.encode_groups(chunk, add_special_tokens))
        })?;
        let total: usize = parts.iter().map(|(ids, _)| ids.len()).sum();
        let mut offsets = Vec::with_capacity(strs.len() + 1);
        offsets.push(0i64);
        let mut at = 0i64;
        for (_, lens) in &parts {
            for &len in lens {
                at += len as i64;
                offsets.push(at);
            }
        }
        let ids = if uint16 {
            let mut out: Vec<u16> = Vec::with_capacity(total);
            py.detach(|| {
                for (ids, _) in &parts {
                    out.extend(ids.iter().map(|&i| i as u16));
                }
            });
            out.into_pyarray(py).into_any()
        } else {
            let mut out: Vec<u32> = Vec::with_capacity(total);
            py.detach(|| {
                for (ids, _) in &parts {
                    out.extend_from_slice(ids);
                }
            });
            out.into_pyarray(py).into_any()
        };
        Ok((ids, offsets.into_pyarray(py)))
    }

    #[pyo3(signature = (ids, skip_special_tokens = true))]
    fn decode(
        &self,
        ids: PyReadonlyArray1<'_, u32>,
        skip_special_tokens: bool,
    ) -> PyResult<String> {
        Ok(self.inner.decode(ids.as_slice()?, skip_special_tokens))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBpeTokenizer>()?;
    Ok(())
}
