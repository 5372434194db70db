//! Spreading a large load run: client source addresses over several loopback addresses (one
//! source address reaches one server port from at most ~28,000 ephemeral ports), and which
//! clients are active when only some are.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use playhouse_transport::dial::{ClientIo, DialOptions, dial, upgrade};
use tokio::net::TcpSocket;

/// Client `index`'s source address among `sources` loopback addresses (127.0.0.1,
/// 127.0.0.2, ...); `None` with one source: the kernel picks, as usual.
pub fn source_for(index: usize, sources: u8) -> Option<IpAddr> {
    if sources <= 1 {
        return None;
    }
    let last = 1 + (index % usize::from(sources)) as u8;
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
}

/// Whether client `index` of `ccu` is one of the `active` ones (spread evenly over the
/// indexes, so over stages and source addresses too); every client when `active` is `None`.
pub fn is_active(index: usize, ccu: usize, active: Option<usize>) -> bool {
    match active {
        None => true,
        Some(0) => false,
        Some(active) => {
            let stride = (ccu / active.min(ccu).max(1)).max(1);
            index.is_multiple_of(stride) && index / stride < active
        }
    }
}

/// Dials `host:port` as [`dial`] does, from `source` when given.
pub async fn dial_from(
    source: Option<IpAddr>,
    host: &str,
    port: u16,
    options: &DialOptions,
) -> io::Result<Box<dyn ClientIo>> {
    let Some(source) = source else {
        return dial(host, port, options).await;
    };
    let target: IpAddr = host.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "source addresses need an IPv4 target",
        )
    })?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let tcp = socket.connect(SocketAddr::new(target, port)).await?;
    tcp.set_nodelay(true)?;
    upgrade(tcp, host, port, options).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_percent_active_is_spread_and_counted_exactly() {
        let active: Vec<usize> = (0..100_000)
            .filter(|&i| is_active(i, 100_000, Some(1_000)))
            .collect();
        assert_eq!(active.len(), 1_000);
        assert_eq!((active[0], active[1], active[999]), (0, 100, 99_900));
        assert_eq!((0..10).filter(|&i| is_active(i, 10, None)).count(), 10);
        assert_eq!((0..10).filter(|&i| is_active(i, 10, Some(0))).count(), 0);
        assert_eq!((0..7).filter(|&i| is_active(i, 7, Some(3))).count(), 3);
        assert_eq!((0..3).filter(|&i| is_active(i, 3, Some(9))).count(), 3);
    }

    #[test]
    fn sources_cycle_over_loopback_addresses() {
        assert_eq!(source_for(5, 1), None);
        let seen: Vec<_> = (0..5)
            .map(|i| source_for(i, 4).unwrap().to_string())
            .collect();
        assert_eq!(
            seen,
            [
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.4",
                "127.0.0.1"
            ]
        );
    }
}
