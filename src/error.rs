//! The one error type of the core. Python bindings map each variant to an exception in
//! `src/python/mod.rs`; messages name the input that was wrong.

use std::path::PathBuf;

/// Every failure the core can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what it should be (bad JSON, missing field, ...).
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    /// The input is valid but uses a feature this core does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An argument is out of range or inconsistent with another.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A long call was interrupted (Ctrl-C) between batches.
    #[error("interrupted")]
    Interrupted,
}

/// Result alias used across the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
