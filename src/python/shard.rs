//! Bindings for `crate::shard`: `ShardWriter` and `ShardReader` of `phicorpus._core`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::tokenize::PyBpeTokenizer;
use super::{as_strs, extract_texts, text_chunks, utf8_views};
use crate::parallel;
use crate::shard::{DType, ShardReader, ShardWriter};

fn parse_dtype(name: &str) -> PyResult<DType> {
    DType::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!("dtype must be 'uint16' or 'int32', not {name:?}"))
    })
}

/// Writes one Megatron `.bin`/`.idx` pair (see `phicorpus.shard`).
#[pyclass(frozen, name = "ShardWriter", module = "phicorpus._core")]
struct PyShardWriter {
    inner: Mutex<Option<ShardWriter>>,
}

fn writer<'a>(guard: &'a mut MutexGuard<'_, Option<ShardWriter>>) -> PyResult<&'a mut ShardWriter> {
    guard
        .as_mut()
        .ok_or_else(|| PyRuntimeError::new_err("the shard writer is already finished"))
}

impl PyShardWriter {
    fn lock(&self) -> PyResult<MutexGuard<'_, Option<ShardWriter>>> {
        self.inner
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("the shard writer is in use by another thread"))
    }
}

#[pymethods]
impl PyShardWriter {
    #[new]
    #[pyo3(signature = (bin_path, idx_path, dtype, eos_id = None))]
    fn new(
        bin_path: PathBuf,
        idx_path: PathBuf,
        dtype: &str,
        eos_id: Option<u32>,
    ) -> PyResult<Self> {
        let dtype = parse_dtype(dtype)?;
        let w = ShardWriter::create(&bin_path, &idx_path, dtype, eos_id)?;
        Ok(Self {
            inner: Mutex::new(Some(w)),
        })
    }

    /// Tokenize `texts` in parallel and append each as one document (ids, then end-of-text).
    #[pyo3(signature = (texts, tokenizer, add_special_tokens = false, num_threads = None))]
    fn add_texts(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        tokenizer: &Bound<'_, PyBpeTokenizer>,
        add_special_tokens: bool,
        num_threads: Option<usize>,
    ) -> PyResult<()> {
        let strings = extract_texts(texts)?;
        let strs = as_strs(&strings)?;
        self.encode_and_add(py, &strs, tokenizer, add_special_tokens, num_threads)
    }

    /// Like `add_texts`, for texts given as the buffers of an Arrow string array: text `i` is
    /// the UTF-8 `data[offsets[i]:offsets[i + 1]]`. No Python object per text is made.
    #[pyo3(signature = (offsets, data, tokenizer, add_special_tokens = false, num_threads = None))]
    fn add_utf8(
        &self,
        py: Python<'_>,
        offsets: PyReadonlyArray1<'_, i64>,
        data: PyReadonlyArray1<'_, u8>,
        tokenizer: &Bound<'_, PyBpeTokenizer>,
        add_special_tokens: bool,
        num_threads: Option<usize>,
    ) -> PyResult<()> {
        let offsets = offsets.as_slice()?;
        let data = data.as_slice()?;
        let strs = py.detach(|| utf8_views(offsets, data))?;
        self.encode_and_add(py, &strs, tokenizer, add_special_tokens, num_threads)
    }

    /// Append pre-tokenized documents: document `i` is `ids[offsets[i]:offsets[i + 1]]`.
    fn add_ids(
        &self,
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, u32>,
        offsets: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let ids = ids.as_slice()?;
        let offsets = offsets.as_slice()?;
        let bad = offsets.windows(2).any(|w| w[0] > w[1])
            || offsets.first().is_some_and(|&o| o < 0)
            || offsets.last().is_some_and(|&o| o as usize > ids.len());
        if bad {
            return Err(PyValueError::new_err(
                "offsets must be non-decreasing, start at or after 0 and end within ids",
            ));
        }
        let mut guard = self.lock()?;
        let w = writer(&mut guard)?;
        py.detach(|| -> PyResult<()> {
            for win in offsets.windows(2) {
                w.add_document(&ids[win[0] as usize..win[1] as usize])?;
            }
            Ok(())
        })
    }

    /// Append stored sequences as they are (same dtype; no end-of-text is added: a cache
    /// shard's sequences already end with it): the `k`-th sequence appended is sequence
    /// `indices[k]` of `readers[sources[k]]`.
    fn add_from(
        &self,
        py: Python<'_>,
        readers: Vec<Bound<'_, PyShardReader>>,
        sources: PyReadonlyArray1<'_, i64>,
        indices: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let sources = sources.as_slice()?;
        let indices = indices.as_slice()?;
        if sources.len() != indices.len() {
            return Err(PyValueError::new_err(
                "sources and indices must have the same length",
            ));
        }
        let rs: Vec<&ShardReader> = readers.iter().map(|r| &r.get().inner).collect();
        for (&s, &i) in sources.iter().zip(indices) {
            let r = usize::try_from(s)
                .ok()
                .and_then(|s| rs.get(s))
                .ok_or_else(|| PyValueError::new_err(format!("source {s} out of range")))?;
            if i < 0 || i as usize >= r.len() {
                return Err(PyValueError::new_err(format!(
                    "sequence index {i} out of range (reader {s} has {})",
                    r.len()
                )));
            }
        }
        let mut guard = self.lock()?;
        let w = writer(&mut guard)?;
        py.detach(|| -> PyResult<()> {
            let mut buf = Vec::new();
            for (&s, &i) in sources.iter().zip(indices) {
                w.copy_from(rs[s as usize], i as usize, &mut buf)?;
            }
            Ok(())
        })
    }

    #[getter]
    fn documents(&self) -> PyResult<u64> {
        let mut guard = self.lock()?;
        Ok(writer(&mut guard)?.documents())
    }

    #[getter]
    fn tokens(&self) -> PyResult<u64> {
        let mut guard = self.lock()?;
        Ok(writer(&mut guard)?.tokens())
    }

    /// Write the `.idx`, flush and fsync; returns the summary as a dict.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let w = self
            .lock()?
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the shard writer is already finished"))?;
        let s = py.detach(|| w.finish())?;
        let d = PyDict::new(py);
        d.set_item("dtype", s.dtype.name())?;
        d.set_item("documents", s.documents)?;
        d.set_item("tokens", s.tokens)?;
        d.set_item("bin_sha256", s.bin_sha256)?;
        d.set_item("bin_bytes", s.bin_bytes)?;
        d.set_item("idx_sha256", s.idx_sha256)?;
        d.set_item("idx_bytes", s.idx_bytes)?;
        Ok(d)
    }
}

/// Reads a Megatron `.bin`/`.idx` pair with positional reads (see `phicorpus.shard`).
#[pyclass(frozen, name = "ShardReader", module = "phicorpus._core")]
struct PyShardReader {
    inner: ShardReader,
}

#[pymethods]
impl PyShardReader {
    #[new]
    fn new(py: Python<'_>, bin_path: PathBuf, idx_path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| ShardReader::open(&bin_path, &idx_path))?;
        Ok(Self { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.dtype().name()
    }

    /// Sequence lengths (int32, one per document).
    fn lengths<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        self.inner.lengths().to_vec().into_pyarray(py)
    }

    /// The ids of sequence `i` (uint32).
    fn document<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyArray1<u32>>> {
        Ok(self.inner.read(i)?.into_pyarray(py))
    }
}

impl PyShardWriter {
    fn encode_and_add(
        &self,
        py: Python<'_>,
        strs: &[&str],
        tokenizer: &Bound<'_, PyBpeTokenizer>,
        add_special_tokens: bool,
        num_threads: Option<usize>,
    ) -> PyResult<()> {
        let tok = Arc::clone(&tokenizer.get().inner);
        let mut guard = self.lock()?;
        let w = writer(&mut guard)?;
        for range in text_chunks(strs) {
            let chunk = &strs[range];
            py.detach(|| -> PyResult<()> {
                let groups =
                    parallel::install(num_threads, || tok.encode_groups(chunk, add_special_tokens));
                for (ids, lens) in &groups {
                    let mut at = 0usize;
                    for &len in lens {
                        w.add_document(&ids[at..at + len as usize])?;
                        at += len as usize;
                    }
                }
                Ok(())
            })?;
            py.check_signals()?;
        }
        Ok(())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyShardWriter>()?;
    m.add_class::<PyShardReader>()?;
    Ok(())
}
