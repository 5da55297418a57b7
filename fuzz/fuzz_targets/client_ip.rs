//! XFF and client-IP parsing: never panics; `source.address` parses the same with and
//! without its port; adding one more trusted hop on the right never changes the client.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_filter::clientip::{from_forwarded_for, parse_peer_address, parse_peer_socket};

/// Input: byte 0 is the trusted hops; then lines: the peer address, the entry a trusted
/// proxy appends, and the `x-forwarded-for` header lines (seedable from the tests' values).
struct Input {
    peer: String,
    xff: Vec<String>,
    hops: u8,
    appended: String,
}

fn input(data: &[u8]) -> Option<Input> {
    let (&hops, rest) = data.split_first()?;
    let text = std::str::from_utf8(rest).ok()?;
    let mut lines = text.split('\n');
    Some(Input {
        hops,
        peer: lines.next().unwrap_or_default().to_owned(),
        appended: lines.next().unwrap_or_default().to_owned(),
        xff: lines.map(str::to_owned).collect(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = input(data) else {
        return;
    };
    assert_eq!(
        parse_peer_address(&input.peer).ok(),
        parse_peer_socket(&input.peer).ok().map(|(ip, _)| ip),
        "peer {:?}",
        input.peer
    );
    let hops = u32::from(input.hops);
    let lines: Vec<&str> = input.xff.iter().map(String::as_str).collect();
    let client = from_forwarded_for(lines.iter().copied(), hops);
    if !lines.is_empty() && !input.appended.contains(',') {
        // A proxy we trust appends its peer as a new line: one more trusted hop.
        let mut longer = lines.clone();
        longer.push(&input.appended);
        assert_eq!(client, from_forwarded_for(longer.iter().copied(), hops + 1));
        // ... or on the same line.
        let mut joined = lines.clone();
        let last = format!("{}, {}", joined.pop().unwrap_or_default(), input.appended);
        joined.push(&last);
        assert_eq!(client, from_forwarded_for(joined.iter().copied(), hops + 1));
    }
    if let Ok(ip) = client {
        let printed = ip.to_string();
        assert_eq!(
            from_forwarded_for([printed.as_str()].into_iter(), 0),
            Ok(ip)
        );
    }
});
