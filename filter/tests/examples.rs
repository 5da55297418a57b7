//! Every example policy in `policies/examples/` compiles with the filter's own parser.

use std::path::Path;

#[test]
fn example_policies_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path).unwrap();
            if let Err(e) = portcullis_filter::engine::Plan::parse(&bytes) {
                panic!("{}: {e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 1, "no example policies in {}", dir.display());
}
