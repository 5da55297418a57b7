//! The JSON body parser: never panics; at most `max_args` pairs; a document serde_json
//! accepts (within the depth and argument limits) is accepted, with one pair per scalar.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis_waf::body::parse_json;

#[derive(Debug, Arbitrary)]
struct Input {
    max_depth: u8,
    max_args: u8,
    body: Vec<u8>,
}

/// (nesting depth, scalars) of a value; an empty container counts as no scalar.
fn shape(v: &serde_json::Value) -> (usize, usize) {
    match v {
        serde_json::Value::Array(a) => a
            .iter()
            .map(shape)
            .fold((1, 0), |(d, n), (cd, cn)| (d.max(cd + 1), n + cn)),
        serde_json::Value::Object(o) => o
            .values()
            .map(shape)
            .fold((1, 0), |(d, n), (cd, cn)| (d.max(cd + 1), n + cn)),
        _ => (0, 1),
    }
}

fuzz_target!(|input: Input| {
    let depth = usize::from(input.max_depth);
    let max = usize::from(input.max_args);
    let mut out = Vec::new();
    let result = parse_json(&input.body, depth, max, &mut out);
    assert!(out.len() <= max, "{} pairs over {max}", out.len());
    // serde_json keeps the last of duplicate keys (yajl reports each): compare only without.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&input.body) else {
        return;
    };
    let (d, scalars) = shape(&value);
    if d <= depth && scalars <= max && !has_duplicate_keys(&input.body) {
        assert!(
            result.is_ok(),
            "serde_json accepts {:?} but: {result:?}",
            String::from_utf8_lossy(&input.body)
        );
        assert_eq!(out.len(), scalars);
    }
});

/// True if some object repeats a key (serde_json's `Value` silently drops all but one).
fn has_duplicate_keys(body: &[u8]) -> bool {
    struct Checker(bool);
    impl<'de> serde::de::Visitor<'de> for &mut Checker {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("json")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
            while a.next_element_seed(&mut *self)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(k) = a.next_key::<String>()? {
                if !seen.insert(k) {
                    self.0 = true;
                }
                a.next_value_seed(&mut *self)?;
            }
            Ok(())
        }
    }
    impl<'de> serde::de::DeserializeSeed<'de> for &mut Checker {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    let mut c = Checker(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = serde::de::DeserializeSeed::deserialize(&mut c, &mut de);
    c.0
}
