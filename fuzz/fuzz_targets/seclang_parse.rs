//! The SecLang parser and the rule compiler: never panic on any rule text; an error's
//! location is inside the text it names; what parses either compiles or says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_waf::engine::Ruleset;
use portcullis_waf::seclang::{parse, MapSource};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Two files an `Include` may name, one including the other, one including itself.
    let source = MapSource::new([
        (
            "/rules/extra.conf".to_owned(),
            "SecRule ARGS \"@rx a\" \"id:9001,phase:2,deny\"\nInclude /rules/self.conf\n"
                .to_owned(),
        ),
        (
            "/rules/self.conf".to_owned(),
            "Include /rules/self.conf\n".to_owned(),
        ),
        ("/rules/words.data".to_owned(), "alpha\nbeta\n".to_owned()),
    ]);
    match parse(&text, "/rules/fuzz.conf", &source) {
        Ok(directives) => {
            let _ = Ruleset::compile(directives, &source);
        }
        Err(e) => {
            let lines = text.split('\n').count() as u32;
            assert!(e.location.line >= 1 && e.location.column >= 1, "{e}");
            if &*e.location.file == "/rules/fuzz.conf" {
                assert!(
                    e.location.line <= lines + 1,
                    "line {} of {lines}: {e}",
                    e.location.line
                );
            }
            assert!(!e.message.is_empty());
        }
    }
});
