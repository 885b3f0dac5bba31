//! phicorpus core: the per-document hot paths of the corpus pipeline, free of Python.
//!
//! - [`tokenize`]: byte-level BPE encoding that reproduces Hugging Face `tokenizers` IDs.
//! - [`dedup`]: normalization, word n-gram shingles, MinHash signatures, LSH clustering.
//! - [`filter`]: heuristic quality signals (Gopher, C4, FineWeb) in one pass per document.
//! - [`shard`]: the Megatron `.bin`/`.idx` token shard writer and reader.
//!
//! The PyO3 bindings live in `src/python/` behind the `python` feature, so `cargo test`
//! runs without libpython.

pub mod dedup;
pub mod error;
pub mod filter;
pub mod parallel;
pub mod shard;
pub mod tokenize;
pub mod unicode;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
