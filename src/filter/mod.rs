//! placeholder, filled by the filter work.
