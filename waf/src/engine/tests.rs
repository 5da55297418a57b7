//! Engine tests with hand-written rules.
