//! Shared by the integration tests that need the release portcullis filter.

use std::path::Path;

/// The release filter: `$PORTCULLIS_WASM` (scripts/test sets it), else built by
/// `scripts/build-filter` ([`portcullis_harness::release::release_filter`]).
pub fn release_filter() -> &'static Path {
    portcullis_harness::release::release_filter()
}
