//! `parse_xml` against ModSecurity v3.0.9 (libxml2): each expectation was checked by hand
//! against libmodsecurity 3.0.9 (Debian 3.0.9-1+deb12u2) with a rule on `XML:/*|XML://@*`.

use portcullis_waf::body::parse_xml;
use proptest::prelude::*;

const LIBXML2_DEPTH: usize = 257;

/// `XML:/*` values and `XML://@*` values, or the error message.
type Parsed = Result<(Vec<Vec<u8>>, Vec<Vec<u8>>), String>;

fn xml(body: &[u8]) -> Parsed {
    parse_xml(body, LIBXML2_DEPTH)
        .map(|d| (d.texts, d.attribute_values))
        .map_err(|e| e.message)
}

fn values(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|v| v.as_bytes().to_vec()).collect()
}

const FAILED: &str = "XML parsing error: XML: Failed parsing document.";

#[test]
fn root_text_content_is_one_value_and_attributes_are_listed_in_order() {
    assert_eq!(
        xml(br#"<a x="1"><b y="2">hi</b>tail<c>&lt;z&gt;</c></a>"#),
        Ok((values(&["hitail<z>"]), values(&["1", "2"])))
    );
}

#[test]
fn entities_cdata_comments_and_processing_instructions() {
    assert_eq!(
        xml(br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "ENT">]><a k="&e;">x&e;y<![CDATA[cd]]><!--c--><?pi z?></a>"#),
        Ok((values(&["xENTycd"]), values(&["ENT"])))
    );
    assert_eq!(xml(b"<a>&#65;&#x42;</a>"), Ok((values(&["AB"]), vec![])));
    assert_eq!(
        xml(br#"<a attr="&lt;&amp;"/>"#),
        Ok((values(&[""]), values(&["<&"])))
    );
}

#[test]
fn namespace_declarations_are_not_attributes_and_values_are_normalized() {
    assert_eq!(
        xml(b"<a xmlns=\"u\" xmlns:p=\"v\" p:q=\"1\" r=\"a\tb\nc\"/>"),
        Ok((values(&[""]), values(&["1", "a b c"])))
    );
    assert_eq!(
        xml(b"<a>\r\n <b>x</b>\n</a>"),
        Ok((values(&["\n x\n"]), vec![]))
    );
}

#[test]
fn malformed_documents_fail_with_modsecuritys_message() {
    for body in [
        &b"<a><b></a>"[..],
        b"",
        b"<a/>junk",
        b"<a>&undefined;</a>",
        b"<a>\xff</a>",
        b"<a x=1/>",
        b"<a>1</a>\0",
    ] {
        assert_eq!(
            xml(body),
            Err(FAILED.to_string()),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn external_entities_are_empty_and_never_fetched() {
    // libmodsecurity 3.0.9: XML:/* = "12", no error.
    assert_eq!(
        xml(br#"<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>1&x;2</a>"#),
        Ok((values(&["12"]), vec![]))
    );
    assert_eq!(
        xml(br#"<!DOCTYPE a SYSTEM "http://example.invalid/x.dtd"><a>1</a>"#),
        Ok((values(&["1"]), vec![]))
    );
}

#[test]
fn undeclared_namespace_prefixes_are_accepted_as_libxml2_does() {
    // libmodsecurity 3.0.9: XML:/* = "t", no error.
    assert_eq!(xml(b"<x:b>t</x:b>"), Ok((values(&["t"]), vec![])));
    assert_eq!(
        xml(br#"<r><x:b y:c="1">t</x:b><z:d>u</z:d></r>"#),
        Ok((values(&["tu"]), values(&["1"])))
    );
}

#[test]
fn latin1_declared_documents_are_read() {
    assert_eq!(
        xml(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xe9</a>"),
        Ok((values(&["\u{e9}"]), vec![]))
    );
}

#[test]
fn entity_expansion_bombs_are_refused() {
    let bomb = br#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]><a>&lol4;</a>"#;
    assert_eq!(xml(bomb), Err(FAILED.to_string()));
}

#[test]
fn nesting_beyond_libxml2s_257_levels_fails() {
    let nested = |n: usize| format!("{}x{}", "<a>".repeat(n), "</a>".repeat(n)).into_bytes();
    assert_eq!(xml(&nested(257)).map(|(t, _)| t), Ok(values(&["x"])));
    assert_eq!(xml(&nested(258)), Err(FAILED.to_string()));
    assert!(xml(&nested(100_000)).is_err());
}

#[test]
fn soap_body_text_is_visible() {
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m>1 OR 1=1</m></soap:Body></soap:Envelope>"#;
    assert_eq!(xml(body), Ok((values(&["1 OR 1=1"]), vec![])));
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_xml(&body, 8);
    }

    #[test]
    fn xml_like_input_never_panics_and_output_is_bounded(body in r#"[<>/a-c="'&;!\[\]CDAT\- ?x]{0,80}"#) {
        if let Ok(document) = parse_xml(body.as_bytes(), 4) {
            prop_assert_eq!(document.texts.len(), 1);
            let total: usize = document.texts.iter().chain(&document.attribute_values).map(Vec::len).sum();
            prop_assert!(total <= body.len());
        }
    }
}
