//! Mesh addresses, as links publish them to the directory: `tcp://host:port`, an IPv6 host in
//! brackets (`tcp://[::1]:5000`).

use std::net::IpAddr;

/// The address peers dial to reach a link bound at `bound`:`port`: `advertise_host` if given,
/// else the bound IP. `None` when that is unspecified (`0.0.0.0`, `::`): peers cannot dial it.
pub(super) fn advertised_address(
    advertise_host: Option<&str>,
    bound: IpAddr,
    port: u16,
) -> Option<String> {
    let host = match advertise_host {
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        None if bound.is_unspecified() => return None,
        None => bound.to_string(),
    };
    // Only an IPv6 host has a colon; the brackets keep it apart from the port.
    Some(if host.contains(':') {
        format!("tcp://[{host}]:{port}")
    } else {
        format!("tcp://{host}:{port}")
    })
}

/// `tcp://host:port` → (host, port); the `tcp://` is optional, brackets are removed.
pub(super) fn parse_address(address: &str) -> Option<(String, u16)> {
    let rest = address.strip_prefix("tcp://").unwrap_or(address);
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

/// The ZeroMQ endpoint of `address`: as is when it names its transport, else over `tcp://`.
#[cfg(feature = "zmq")]
pub(super) fn endpoint(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("tcp://{address}")
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse_address("tcp://127.0.0.1:5000"),
            Some(("127.0.0.1".into(), 5000))
        );
        assert_eq!(parse_address("tcp://[::1]:7"), Some(("::1".into(), 7)));
        assert_eq!(parse_address("tcp://nohost"), None);
    }

    #[test]
    fn advertised_addresses_bracket_ipv6_hosts() {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let address = |host, bound| advertised_address(host, bound, 5000);
        assert_eq!(address(None, loopback).unwrap(), "tcp://127.0.0.1:5000");
        assert_eq!(address(None, v6).unwrap(), "tcp://[::1]:5000");
        assert_eq!(address(Some("::1"), any).unwrap(), "tcp://[::1]:5000");
        assert_eq!(address(Some("[::1]"), any).unwrap(), "tcp://[::1]:5000");
        assert_eq!(address(Some("play-1"), any).unwrap(), "tcp://play-1:5000");
        assert_eq!(address(None, any), None);
        assert_eq!(address(None, IpAddr::V6(Ipv6Addr::UNSPECIFIED)), None);
        for host in ["127.0.0.1", "::1"] {
            let published = address(Some(host), any).unwrap();
            assert_eq!(parse_address(&published), Some((host.to_owned(), 5000)));
        }
    }

    #[cfg(feature = "zmq")]
    #[test]
    fn endpoints_default_to_tcp() {
        assert_eq!(endpoint("127.0.0.1:0"), "tcp://127.0.0.1:0");
        assert_eq!(endpoint("tcp://[::1]:0"), "tcp://[::1]:0");
    }
}
