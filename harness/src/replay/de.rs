//! Small serde helpers shared by the traffic formats.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// `403` or `[403, 400]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<T> {
            Many(Vec<T>),
            One(T),
        }
        match Either::deserialize(d) {
            Ok(Either::One(t)) => Ok(OneOrMany(vec![t])),
            Ok(Either::Many(v)) => Ok(OneOrMany(v)),
            Err(_) => Err(de::Error::custom(
                "expected a value or a list of values of the right type",
            )),
        }
    }
}

/// A rule id written as a string (`"942100"`, `"partner-allow"`) or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleId(pub String);

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RuleId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rule id (string or integer)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RuleId, E> {
                if v.is_empty() {
                    return Err(E::custom("a rule id must not be empty"));
                }
                Ok(RuleId(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RuleId, E> {
                Ok(RuleId(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RuleId, E> {
                Ok(RuleId(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A header value written as a string, number or boolean (YAML writers are
/// loose about quoting). Anything else is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    // YAML `Header:` with nothing after it: an empty value.
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar(String::new()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// Headers in document order, multi-valued. Accepts
/// - a map `{"name": "value", "other": ["v1", "v2"]}` (order of the document kept),
/// - a list of pairs `[["name", "value"], ...]`,
/// - a list of objects `[{"name": "n", "value": "v"}, ...]` (go-ftw `ordered_headers`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of header names to values, or a list of [name, value] pairs")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Headers, E> {
                Ok(Headers::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<Scalar>()? {
                    check_name::<A::Error>(&name.0)?;
                    let OneOrMany(values) = map.next_value::<OneOrMany<Scalar>>()?;
                    out.extend(values.into_iter().map(|v| (name.0.clone(), v.0)));
                }
                Ok(Headers(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Pair {
                    Tuple((Scalar, Scalar)),
                    Named { name: Scalar, value: Scalar },
                }
                let mut out = Vec::new();
                while let Some(pair) = seq.next_element::<Pair>()? {
                    let (n, v) = match pair {
                        Pair::Tuple((n, v)) => (n.0, v.0),
                        Pair::Named { name, value } => (name.0, value.0),
                    };
                    check_name::<A::Error>(&n)?;
                    out.push((n, v));
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn check_name<E: de::Error>(name: &str) -> Result<(), E> {
    if name.is_empty() {
        Err(E::custom("a header name must not be empty"))
    } else {
        Ok(())
    }
}

/// Strips serde_json's ` at line L column C` suffix (we report positions ourselves).
pub fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
