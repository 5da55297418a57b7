//! Unit tests: names, and vectors confirmed against libmodsecurity 3.0.9.

use super::*;

fn run(t: TransformName, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if apply(t, input, &mut out) {
        assert_ne!(out, input, "{t:?} said changed but returned its input");
        out
    } else {
        input.to_vec()
    }
}

#[test]
fn every_name_round_trips() {
    for (t, names) in NAMES {
        assert_eq!(t.as_str(), names[0]);
        for n in *names {
            assert_eq!(TransformName::from_name(n), Some(*t));
            assert_eq!(TransformName::from_name(&n.to_uppercase()), Some(*t));
        }
    }
    assert_eq!(
        TransformName::from_name("normalisePathWin"),
        Some(TransformName::NormalizePathWin)
    );
    assert_eq!(
        TransformName::from_name("urldecodeuni"),
        Some(TransformName::UrlDecodeUni)
    );
    assert_eq!(TransformName::from_name("nosuch"), None);
}

#[test]
fn url_decode_uni_vectors() {
    let t = TransformName::UrlDecodeUni;
    assert_eq!(run(t, b"%uFF01%u0041+%A"), b"!A %A");
}
