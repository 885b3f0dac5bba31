//! placeholder, filled by the tokenize work.
