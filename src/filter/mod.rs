//! Heuristic quality signals of documents: Gopher repetition and quality (Rae et al. 2021), C4
//! (Raffel et al. 2020) and FineWeb (Penedo et al. 2024), computed in one pass per document.
//!
//! Definitions follow datatrove's `GopherRepetitionFilter`, `GopherQualityFilter`,
//! `C4QualityFilter` and `FineWebQualityFilter`, with the choices documented in [`text`]:
//! words are whitespace-separated tokens (datatrove uses a spaCy/NLTK word tokenizer), lines are
//! `"\n"`-separated (`"\r\n"` tolerated), sentences come from a simple punctuation splitter.
//! [`signals::compute`] returns the raw signals; thresholds and drop reasons are applied by the
//! caller (the Python front applies them vectorised over columns).

pub mod classifier;
pub mod code;
pub mod ngrams;
pub mod signals;
pub mod text;

pub use signals::{compute, Signals, SIGNAL_NAMES};

/// Signals of many documents, in parallel on the current rayon pool.
pub fn compute_batch(texts: &[&str]) -> Vec<Signals> {
    use rayon::prelude::*;
    texts
        .par_iter()
        .with_min_len(8)
        .map(|t| compute(t))
        .collect()
}
