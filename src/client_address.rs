//! Which address a request comes from, for per-address limits (claims, connections).
//!
//! Behind a reverse proxy every request's TCP peer is the proxy, so every user would share one
//! address's budget. A proxy the operator lists in `trusted_proxies` is believed about the address
//! it received the request from (`X-Forwarded-For`, or `Forwarded: for=`); anyone else's headers
//! are ignored, since a client can write any header it likes.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Which header the trusted proxies write. Only one is read: if both were, a proxy that writes
/// one and passes the other through from the client would let the client choose its address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, AWS ALB, Envoy append to it).
    #[default]
    XForwardedFor,
    /// RFC 7239: `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl std::str::FromStr for ForwardedHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            other => Err(format!("trusted_proxy_header {other:?}: \"x-forwarded-for\" or \"forwarded\"")),
        }
    }
}

/// The proxies whose forwarding headers are believed; empty (the default): none, and the client
/// address is always the TCP peer's.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// From addresses (`10.0.0.7`, `::1`) and networks (`10.0.0.0/8`); an entry that is neither
    /// is an error, so a typo cannot silently trust nobody (or everybody).
    pub fn parse<S: AsRef<str>>(entries: &[S], header: ForwardedHeader) -> Result<TrustedProxies, String> {
        let networks = entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("trusted_proxies: {entry:?} is neither an IP address nor a CIDR network"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies { networks, header })
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }
}

/// The address a request is attributed to. From an untrusted peer: the peer's. From a trusted
/// proxy: walking the forwarding chain from the right (the hop the proxy itself saw), the first
/// address that is not a trusted proxy. A malformed or obfuscated entry ends the walk at the last
/// trusted hop, since everything left of it may have been written by the client.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut nearest = peer.ip().to_canonical();
    if !trusted.contains(nearest) {
        return nearest;
    }
    for hop in forwarded_hops(headers, trusted.header).into_iter().rev() {
        let Some(ip) = hop else { break };
        nearest = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    nearest
}

/// Every hop the header lists, left to right, across repeated header lines; `None` for an entry
/// that is not an address.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    let mut hops = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else {
            // Not even ASCII: nothing in it can be placed, so nothing left of it either.
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            hops.push(match header {
                ForwardedHeader::XForwardedFor => parse_node(element),
                ForwardedHeader::Forwarded => forwarded_for(element),
            });
        }
    }
    hops
}

/// The `for=` parameter of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"')))?
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`.
/// `unknown` and obfuscated names (`_hidden`) are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    let bracketed = node.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<std::net::Ipv6Addr>().ok().map(|ip| IpAddr::V6(ip).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40_000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries, ForwardedHeader::XForwardedFor).unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=203.0.113.9")]);
        assert_eq!(client_address(peer("198.51.100.1"), &spoofed, &TrustedProxies::default()), ip("198.51.100.1"), "none trusted");
        assert_eq!(client_address(peer("198.51.100.1"), &spoofed, &proxies(&["10.0.0.0/8"])), ip("198.51.100.1"), "not this one");
    }

    #[test]
    fn a_trusted_proxy_is_believed_about_the_hop_it_saw() {
        let trusted = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        let one = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_address(peer("10.1.2.3"), &one, &trusted), ip("203.0.113.9"));
        // The client wrote the leftmost entries itself; only the proxy's own hop counts.
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9")]);
        assert_eq!(client_address(peer("127.0.0.1"), &spoofed, &trusted), ip("203.0.113.9"));
        // Two trusted proxies in a row: the client is left of both.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.9.9.9")]);
        assert_eq!(client_address(peer("10.1.2.3"), &chain, &trusted), ip("203.0.113.9"));
        // Repeated header lines read as one list, in order.
        let split = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9, 10.9.9.9")]);
        assert_eq!(client_address(peer("10.1.2.3"), &split, &trusted), ip("203.0.113.9"));
        // No header: the proxy itself (a health check, say).
        assert_eq!(client_address(peer("10.1.2.3"), &HeaderMap::new(), &trusted), ip("10.1.2.3"));
        // Every hop trusted: the leftmost one.
        let internal = headers(&[("x-forwarded-for", "10.7.7.7, 10.8.8.8")]);
        assert_eq!(client_address(peer("10.1.2.3"), &internal, &trusted), ip("10.7.7.7"));
    }

    #[test]
    fn malformed_entries_end_the_walk_at_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        for value in ["garbage", "1.1.1.1, unknown", "1.1.1.1, ", "1.1.1.1, 999.1.1.1", "1.1.1.1, _hidden"] {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(client_address(peer("10.1.2.3"), &h, &trusted), ip("10.1.2.3"), "{value:?}");
        }
        let behind = headers(&[("x-forwarded-for", "garbage, 203.0.113.9")]);
        assert_eq!(client_address(peer("10.1.2.3"), &behind, &trusted), ip("203.0.113.9"), "garbage left of the client is never read");
        let after_a_trusted_hop = headers(&[("x-forwarded-for", "1.1.1.1, garbage, 10.9.9.9")]);
        assert_eq!(client_address(peer("10.1.2.3"), &after_a_trusted_hop, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn ports_brackets_and_ipv6() {
        let trusted = proxies(&["::1", "fd00::/8"]);
        let cases = [
            ("203.0.113.9:5678", "203.0.113.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:80", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ];
        for (value, expected) in cases {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(client_address(peer("::1"), &h, &trusted), ip(expected), "{value:?}");
        }
        // An IPv4 peer seen through an IPv6 socket is matched against IPv4 networks.
        let v4 = proxies(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_address(peer("::ffff:127.0.0.1"), &h, &v4), ip("203.0.113.9"));
        assert_eq!(client_address(peer("::ffff:127.0.0.2"), &h, &v4), ip("127.0.0.2"));
    }

    #[test]
    fn the_forwarded_header_when_configured_and_only_then() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"], ForwardedHeader::Forwarded).unwrap();
        let h = headers(&[
            ("forwarded", "for=1.1.1.1;proto=http, for=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1"),
            ("x-forwarded-for", "198.51.100.77"),
        ]);
        assert_eq!(client_address(peer("10.1.2.3"), &h, &trusted), ip("2001:db8:cafe::17"), "X-Forwarded-For is not read");
        let upper = headers(&[("forwarded", "proto=https;For=203.0.113.9")]);
        assert_eq!(client_address(peer("10.1.2.3"), &upper, &trusted), ip("203.0.113.9"));
        let obfuscated = headers(&[("forwarded", "for=1.1.1.1, for=_hidden")]);
        assert_eq!(client_address(peer("10.1.2.3"), &obfuscated, &trusted), ip("10.1.2.3"));
        let xff = proxies(&["10.0.0.0/8"]);
        assert_eq!(client_address(peer("10.1.2.3"), &h, &xff), ip("198.51.100.77"), "Forwarded is not read");
    }

    #[test]
    fn configuration_entries_must_be_addresses_or_networks() {
        assert!(TrustedProxies::parse(&["10.0.0.0/8", " 192.168.1.1 ", "::1", "fd00::/8"], ForwardedHeader::XForwardedFor).is_ok());
        for bad in ["", "10.0.0.0/33", "localhost", "10.0.0.*", "10.0.0.1-10.0.0.9"] {
            assert!(TrustedProxies::parse(&[bad], ForwardedHeader::XForwardedFor).is_err(), "{bad:?}");
        }
        assert_eq!("Forwarded".parse::<ForwardedHeader>(), Ok(ForwardedHeader::Forwarded));
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }
}
