//! placeholder, filled by the dedup work.
