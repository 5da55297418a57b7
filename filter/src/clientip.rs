//! Where the client IP comes from: Envoy's `source.address` or `x-forwarded-for`.

pub use crate::error::ClientIpError;
use std::net::{IpAddr, SocketAddr};

/// Parses Envoy's `source.address` property (`1.2.3.4:5678`, `[2001:db8::1]:443`, or a bare
/// address as pipes and some hosts give it).
///
/// ```
/// use portcullis_filter::clientip::parse_peer_address;
/// assert_eq!(parse_peer_address("10.0.0.1:4000").unwrap().to_string(), "10.0.0.1");
/// assert_eq!(parse_peer_address("[::1]:80").unwrap().to_string(), "::1");
/// ```
pub fn parse_peer_address(s: &str) -> Result<IpAddr, ClientIpError> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa.ip());
    }
    parse_ip(s).ok_or(ClientIpError::BadPeerAddress)
}

/// Like [`parse_peer_address`], keeping the port: `Some(port)` for `ip:port`, `None` for a
/// bare address. Envoy writes the TCP peer with its (non-zero) port and an address it took
/// from `x-forwarded-for` with port 0, which is how [`crate::authz`] tells them apart.
///
/// ```
/// use portcullis_filter::clientip::parse_peer_socket;
/// assert_eq!(parse_peer_socket("10.0.0.1:4000").unwrap().1, Some(4000));
/// assert_eq!(parse_peer_socket("203.0.113.9:0").unwrap().1, Some(0));
/// assert_eq!(parse_peer_socket("10.0.0.1").unwrap().1, None);
/// ```
pub fn parse_peer_socket(s: &str) -> Result<(IpAddr, Option<u16>), ClientIpError> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((sa.ip(), Some(sa.port())));
    }
    parse_ip(s)
        .map(|ip| (ip, None))
        .ok_or(ClientIpError::BadPeerAddress)
}

/// Picks the client address from `x-forwarded-for` values (all header lines, in order)
/// following Envoy's `xff_num_trusted_hops`: the last `trusted_hops` entries were written by
/// proxies we trust (counting the entry Envoy itself appends when it uses the remote
/// address), so the client is the entry right before them.
///
/// ```
/// use portcullis_filter::clientip::from_forwarded_for;
/// let xff = ["203.0.113.9, 10.0.0.2"];
/// assert_eq!(from_forwarded_for(xff.iter().copied(), 1).unwrap().to_string(), "203.0.113.9");
/// assert_eq!(from_forwarded_for(xff.iter().copied(), 0).unwrap().to_string(), "10.0.0.2");
/// ```
pub fn from_forwarded_for<'a>(
    values: impl DoubleEndedIterator<Item = &'a str> + Clone,
    trusted_hops: u32,
) -> Result<IpAddr, ClientIpError> {
    let mut any = false;
    let mut skip = trusted_hops as usize;
    // Walk entries from the right across header lines without allocating.
    for line in values.rev() {
        any = true;
        for entry in line.rsplit(',') {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            return parse_ip(entry.trim()).ok_or(ClientIpError::BadForwardedFor);
        }
    }
    if any {
        Err(ClientIpError::ForwardedForTooShort)
    } else {
        Err(ClientIpError::NoForwardedFor)
    }
}

/// An IP address, tolerating an IPv6 zone (`fe80::1%eth0`) and brackets (`[::1]`).
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    let s = s.split_once('%').map_or(s, |(a, _)| a);
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(lines: &[&str], hops: u32) -> Result<String, ClientIpError> {
        from_forwarded_for(lines.iter().copied(), hops).map(|a| a.to_string())
    }

    #[test]
    fn peer_address_forms() {
        assert_eq!(
            parse_peer_address("127.0.0.9:1").unwrap().to_string(),
            "127.0.0.9"
        );
        assert_eq!(
            parse_peer_address("[2001:db8::2]:443").unwrap().to_string(),
            "2001:db8::2"
        );
        assert_eq!(
            parse_peer_address("2001:db8::2").unwrap().to_string(),
            "2001:db8::2"
        );
        assert_eq!(
            parse_peer_address("[::ffff:10.1.2.3]:9")
                .unwrap()
                .to_string(),
            "::ffff:10.1.2.3"
        );
        assert_eq!(
            parse_peer_address("pipe:/tmp/x"),
            Err(ClientIpError::BadPeerAddress)
        );
        assert_eq!(parse_peer_address(""), Err(ClientIpError::BadPeerAddress));
    }

    #[test]
    fn trusted_hops_counts_from_the_right() {
        let chain = ["198.51.100.1, 203.0.113.5 ,10.0.0.1"];
        assert_eq!(xff(&chain, 0).unwrap(), "10.0.0.1");
        assert_eq!(xff(&chain, 1).unwrap(), "203.0.113.5");
        assert_eq!(xff(&chain, 2).unwrap(), "198.51.100.1");
        assert_eq!(xff(&chain, 3), Err(ClientIpError::ForwardedForTooShort));
    }

    #[test]
    fn several_header_lines_form_one_list() {
        let lines = ["198.51.100.1", "203.0.113.5, 10.0.0.1"];
        assert_eq!(xff(&lines, 2).unwrap(), "198.51.100.1");
        assert_eq!(xff(&lines, 1).unwrap(), "203.0.113.5");
    }

    #[test]
    fn garbage_or_missing_fails_closed() {
        assert_eq!(xff(&[], 0), Err(ClientIpError::NoForwardedFor));
        assert_eq!(
            xff(&["evil, 10.0.0.1"], 1),
            Err(ClientIpError::BadForwardedFor)
        );
        assert_eq!(xff(&["1.2.3.4:80"], 0), Err(ClientIpError::BadForwardedFor));
        assert_eq!(xff(&["1.2.3.4,"], 0), Err(ClientIpError::BadForwardedFor));
        assert_eq!(xff(&["2001:db8::7, [::1]"], 0).unwrap(), "::1");
    }
}
