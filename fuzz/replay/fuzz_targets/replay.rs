//! The replay readers (JSONL, HAR, go-ftw YAML) through the harness's public API: never
//! panic on any text; an error names the file it was given; format detection never panics
//! and its pick parses like the explicit reader. Byte 0 picks the reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_harness::replay::har::HarOptions;
use portcullis_harness::replay::load::{detect, parse_text, LoadOptions, TrafficFormat};
use std::path::Path;

const FILE: &str = "fuzz-traffic";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match pick % 3 {
        0 => TrafficFormat::Jsonl,
        1 => TrafficFormat::Har,
        _ => TrafficFormat::Ftw,
    };
    let opts = LoadOptions {
        format: None,
        har: HarOptions {
            expect_status: pick & 0x80 != 0,
        },
    };
    if let Err(e) = parse_text(FILE, text, format, &opts) {
        assert_eq!(e.file, FILE, "{e}");
        assert!(!e.message.is_empty(), "{e}");
    }
    let detected = detect(Path::new(FILE), text);
    let _ = parse_text(FILE, text, detected, &opts);
});
