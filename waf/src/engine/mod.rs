//! The compiled ruleset and the per-request transaction.
//!
//! Being written: see the module plan in the crate docs.
