//! The direct peer for `ipBlocks` / `source.ip` (Envoy RBAC's `direct_remote_ip`), derived
//! from what Envoy gives a wasm filter (unknown: `Truth::Unknown` in `super::matcher`).
//!
//! What Envoy 1.40 exposes (checked with a real Envoy, `use_remote_address: true`):
//! `source.address` is the trusted client address: the TCP peer with its port when no
//! `x-forwarded-for` entry was taken, else the entry with port 0; Envoy appends the TCP
//! peer to `x-forwarded-for` (`ConnectionManagerUtility::mutateRequestHeaders`), but for a
//! peer of exactly `127.0.0.1` or `::1` (`isLoopbackAddress`) its own node address (e.g.
//! `192.0.2.2`, the first non-loopback interface address) instead. No property holds
//! `directRemoteAddress`, and `x-envoy-external-address` is the trusted client again.

use super::spec::DirectPeer;
use crate::clientip::{self, parse_peer_socket, ClientIpError};
use crate::error::{DirectPeerError, Refusal};
use crate::iplist::IpTable;
use crate::request::RequestView;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the filter knows of the direct peer of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirectView {
    /// Exactly this peer (`None`: no IP peer, which RBAC never matches either).
    Known(Option<IpAddr>),
    /// One of these: the last `x-forwarded-for` entry may be Envoy's stand-in for a
    /// loopback peer.
    OneOf([IpAddr; 3]),
    /// Not known at all, for this reason: `direct_peer_unknown` when Envoy hid the peer,
    /// the address error when the fact it would come from is missing or not an address.
    Unknown(Refusal),
}

const LOOPBACK_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOOPBACK_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// The direct peer of `req` (see [`DirectPeer`] for the rules).
pub(crate) fn resolve<R: RequestView + ?Sized>(
    req: &R,
    mode: DirectPeer,
    envoy_local: Option<&IpTable>,
) -> DirectView {
    let source = req
        .source_address()
        .ok_or(ClientIpError::NoPeerAddress)
        .and_then(parse_peer_socket);
    if let Ok((ip, Some(port))) = source {
        if port != 0 {
            // The TCP peer itself: Envoy took no client address from x-forwarded-for.
            return DirectView::Known(Some(ip));
        }
    }
    if mode == DirectPeer::SourceAddress {
        return DirectView::Unknown(match source {
            Err(e) => Refusal::ClientIp(e),
            Ok(_) => Refusal::DirectPeer(DirectPeerError::Unknown),
        });
    }
    // Envoy appends an IP for every IP peer: no readable entry means it did not append.
    match clientip::from_forwarded_for(req.headers().get_all("x-forwarded-for"), 0) {
        Err(e) => DirectView::Unknown(Refusal::ClientIp(e)),
        Ok(l) if envoy_local.is_some_and(|t| t.lookup(l).is_empty()) => DirectView::Known(Some(l)),
        Ok(l) => DirectView::OneOf([l, LOOPBACK_V4, LOOPBACK_V6]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iplist::IpTableBuilder;
    use crate::request::StaticRequest;

    fn req(source: &str, xff: Option<&str>) -> StaticRequest {
        let r = StaticRequest::new("GET", "example.com", "/", source);
        match xff {
            Some(x) => r.with_header("x-forwarded-for", x),
            None => r,
        }
    }

    fn local() -> IpTable {
        let mut b = IpTableBuilder::default();
        b.insert("192.0.2.2/32".parse().unwrap(), 0);
        b.build()
    }

    #[test]
    fn the_tcp_peer_is_known_from_its_port() {
        for mode in [DirectPeer::SourceAddress, DirectPeer::LastForwardedFor] {
            // Envoy wrote its node address for the loopback peer: the port tells.
            let v = resolve(&req("127.0.0.1:40000", Some("192.0.2.2")), mode, None);
            assert_eq!(v, DirectView::Known(Some(LOOPBACK_V4)));
            let v = resolve(&req("[::1]:40000", Some("192.0.2.2")), mode, None);
            assert_eq!(v, DirectView::Known(Some(LOOPBACK_V6)));
        }
    }

    #[test]
    fn an_address_from_forwarded_for_hides_the_peer() {
        let r = req("203.0.113.9:0", Some("203.0.113.9,127.0.0.3"));
        assert_eq!(
            resolve(&r, DirectPeer::SourceAddress, None),
            DirectView::Unknown(Refusal::DirectPeer(DirectPeerError::Unknown))
        );
        let l = local();
        assert_eq!(
            resolve(&r, DirectPeer::LastForwardedFor, Some(&l)),
            DirectView::Known(Some("127.0.0.3".parse().unwrap()))
        );
        // The node address may stand for 127.0.0.1 or ::1.
        let r = req("203.0.113.9:0", Some("203.0.113.9,192.0.2.2"));
        assert_eq!(
            resolve(&r, DirectPeer::LastForwardedFor, Some(&l)),
            DirectView::OneOf(["192.0.2.2".parse().unwrap(), LOOPBACK_V4, LOOPBACK_V6])
        );
        // Without envoy_local_addresses any entry may.
        let r = req("203.0.113.9:0", Some("203.0.113.9,127.0.0.3"));
        assert!(matches!(
            resolve(&r, DirectPeer::LastForwardedFor, None),
            DirectView::OneOf(_)
        ));
        // No entry Envoy could have appended.
        let r = req("203.0.113.9:0", Some("203.0.113.9,garbage"));
        assert_eq!(
            resolve(&r, DirectPeer::LastForwardedFor, Some(&l)),
            DirectView::Unknown(Refusal::ClientIp(ClientIpError::BadForwardedFor))
        );
        assert_eq!(
            resolve(
                &req("pipe:/x", None),
                DirectPeer::LastForwardedFor,
                Some(&l)
            ),
            DirectView::Unknown(Refusal::ClientIp(ClientIpError::NoForwardedFor))
        );
        // An unreadable source.address is refused for what it is.
        assert_eq!(
            resolve(&req("pipe:/x", None), DirectPeer::SourceAddress, None),
            DirectView::Unknown(Refusal::ClientIp(ClientIpError::BadPeerAddress))
        );
    }
}
