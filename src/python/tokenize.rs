//! Bindings for `crate::tokenize`: the `BpeTokenizer` class of `phicorpus._core`.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{as_strs, extract_texts, text_chunks};
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
        let mut ids: Vec<u32> = Vec::new();
        let mut offsets: Vec<i64> = Vec::with_capacity(strs.len() + 1);
        offsets.push(0);
        for range in text_chunks(&strs) {
            let chunk = &strs[range];
            py.detach(|| {
                parallel::install(num_threads, || {
                    tok.encode_flat_into(chunk, add_special_tokens, &mut ids, &mut offsets)
                })
            });
            py.check_signals()?;
        }
        let ids = if uint16 {
            let out: Vec<u16> = py.detach(|| ids.iter().map(|&i| i as u16).collect());
            out.into_pyarray(py).into_any()
        } else {
            ids.into_pyarray(py).into_any()
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
