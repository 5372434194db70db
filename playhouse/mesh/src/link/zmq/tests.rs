//! Tests of the ZeroMQ link with its internals in view.

use super::config::ZmqLinkConfig;
use super::error::ZmqLinkError;
use super::{ZmqLink, identity};
use crate::link::MeshLink;
use crate::link::address::parse_address;

#[test]
fn server_ids_must_be_valid_identities() {
    assert!(identity("play-1").is_ok());
    assert!(identity("").is_err());
    assert!(identity("\0play").is_err());
    assert!(identity(&"x".repeat(256)).is_err());
    assert!(identity(&"x".repeat(255)).is_ok());
}

#[tokio::test]
async fn binding_reports_a_connectable_address() {
    let link = ZmqLink::bind("z", "127.0.0.1:0", None, ZmqLinkConfig::default())
        .await
        .unwrap();
    let (host, port) = parse_address(link.address()).unwrap();
    assert_eq!(host, "127.0.0.1");
    assert_ne!(port, 0);
    assert!(link.address().starts_with("tcp://127.0.0.1:"));

    let unspecified = ZmqLink::bind("z", "tcp://0.0.0.0:0", None, ZmqLinkConfig::default()).await;
    assert!(matches!(unspecified, Err(ZmqLinkError::UnspecifiedHost)));
    let advertised = ZmqLink::bind(
        "z",
        "tcp://0.0.0.0:0",
        Some("10.1.2.3"),
        ZmqLinkConfig::default(),
    )
    .await
    .unwrap();
    assert!(advertised.address().starts_with("tcp://10.1.2.3:"));
}

#[tokio::test]
async fn binding_over_ipv6_reports_a_bracketed_address() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine: skipped");
        return;
    }
    let link = ZmqLink::bind("z", "tcp://[::1]:0", None, ZmqLinkConfig::default())
        .await
        .unwrap();
    assert!(
        link.address().starts_with("tcp://[::1]:"),
        "{}",
        link.address()
    );
    let unspecified = ZmqLink::bind("z", "tcp://[::]:0", None, ZmqLinkConfig::default()).await;
    assert!(matches!(unspecified, Err(ZmqLinkError::UnspecifiedHost)));
}
