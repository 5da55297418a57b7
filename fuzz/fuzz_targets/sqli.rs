//! `@detectSQLi`'s hand-written libinjection (`portcullis_waf::operator::sqli`) on arbitrary
//! bytes: never panics, and gives exactly the verdict and fingerprint of `libinjectionrs`
//! 0.1.1, the port it was written to agree with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libinjectionrs::{SqliFlags, SqliState};
use portcullis_waf::operator::sqli;

fuzz_target!(|input: &[u8]| {
    let ours = sqli::detect(input);
    let mut state = SqliState::new(input, SqliFlags::FLAG_NONE);
    let theirs = state
        .detect()
        .then(|| state.get_fingerprint().as_str().as_bytes().to_vec());
    assert_eq!(
        ours.as_ref().map(|fp| fp.as_bytes()),
        theirs.as_deref(),
        "input {:?}",
        String::from_utf8_lossy(input)
    );
});
