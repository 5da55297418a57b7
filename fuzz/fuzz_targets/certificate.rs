//! Certificate parsing (PEM and DER): never panics; the same bytes read as DER and read
//! wrapped in PEM armor give the same facts; the cache returns what a fresh parse does.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis_filter::authz::{
    peer_certificate_from_der, peer_certificate_from_pem, CertificateCache,
};

fuzz_target!(|data: &[u8]| {
    let as_pem = peer_certificate_from_pem(data);
    let mut cache = CertificateCache::new(2);
    let cached = cache.get_or_parse(data).map(|c| (*c).clone());
    assert_eq!(as_pem, cached);

    let der = peer_certificate_from_der(data);
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut armored = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        armored.push_str(std::str::from_utf8(line).unwrap_or_default());
        armored.push('\n');
    }
    armored.push_str("-----END CERTIFICATE-----\n");
    let wrapped = peer_certificate_from_pem(armored.as_bytes());
    match (&der, &wrapped) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("DER {der:?} but PEM-wrapped {wrapped:?}"),
    }
});
