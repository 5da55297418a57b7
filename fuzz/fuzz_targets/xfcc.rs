//! XFCC parsing: never panics; the element `last_element` picks is valid on its own, and
//! `single_element` agrees with `last_element` whenever it accepts the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_filter::authz::xfcc::{last_element, single_element, Key};

// Input: one header value per line.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let values: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    };
    let last = last_element(values.iter().copied());
    if let Ok(Some(single)) = single_element(values.iter().copied()) {
        let last = last
            .as_ref()
            .ok()
            .and_then(|e| e.as_ref())
            .map(|e| e.as_str());
        assert_eq!(Some(single.as_str()), last);
    }
    let Ok(Some(element)) = last else {
        return;
    };
    let alone = single_element([element.as_str()]);
    match alone {
        Ok(Some(e)) => assert_eq!(e.as_str(), element.as_str()),
        other => panic!(
            "the last element {:?} alone gives {other:?}",
            element.as_str()
        ),
    }
    let identity = element.parse();
    for key in [
        Key::By,
        Key::Hash,
        Key::Cert,
        Key::Chain,
        Key::Subject,
        Key::Uri,
        Key::Dns,
    ] {
        for v in identity.values(key) {
            std::hint::black_box(v);
        }
    }
    let _ = identity.subject();
    for (k, v) in element.pairs() {
        std::hint::black_box((k, v));
    }
});
