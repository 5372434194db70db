//! The virtual network: one network namespace per node, each joined by a veth pair to a bridge
//! in a namespace of its own, with addresses of 10.231.0.0/24 that exist only inside them (no
//! default route: nothing in a namespace can reach an address outside). Faults are `nft`
//! rules inside a node's namespace (table `inet phc`), so healing is flushing that table; a
//! Play server's link is a TAP pair with a forwarder that can delay, reorder, duplicate and
//! drop frames ([`crate::impair`]).
//!
//! Every namespace's name starts with [`PREFIX`]; [`teardown`] removes them all (killing
//! what runs inside), and runs at the start of every run too, so a killed run leaves nothing
//! behind for long (the run's watchdog tears down when the run's process dies).

use tokio::process::Command;

use crate::impair::Link;

/// What every namespace, and every veth end in the root namespace, is named with.
pub const PREFIX: &str = "phc-";
/// The bridge's namespace.
const BRIDGE_NS: &str = "phc-br";
/// The test-only subnet.
pub const SUBNET: &str = "10.231.0";

/// A failed `ip`, `nft` or `ss` command.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The command could not be started.
    #[error("{command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command exited with an error.
    #[error("{command}: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it said.
        stderr: String,
    },
}

/// Runs `program args`, failing on a non-zero exit.
pub async fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|source| NetError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetError::Failed {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `args` inside namespace `ns`.
pub async fn in_ns(ns: &str, args: &[&str]) -> Result<String, NetError> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all).await
}

/// One node's place on the network.
#[derive(Debug, Clone)]
pub struct Host {
    /// The node's name (`redis`, `play-1`, `client`, ...).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub addr: String,
}

impl Host {
    /// `name` in namespace `phc-<name without dashes>` at `10.231.0.<last>`.
    pub fn new(name: &str, last: u8) -> Host {
        Host {
            name: name.to_owned(),
            ns: format!("{PREFIX}{}", name.replace('-', "")),
            addr: format!("{SUBNET}.{last}"),
        }
    }
}

/// The namespaces whose names start with [`PREFIX`].
pub async fn namespaces() -> Result<Vec<String>, NetError> {
    let listed = run("ip", &["netns", "list"]).await?;
    Ok(listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(PREFIX))
        .map(str::to_owned)
        .collect())
}

/// Kills everything running in the [`PREFIX`] namespaces and deletes them (their veths go
/// with them). Safe to run when there is nothing to remove.
pub async fn teardown() -> Result<usize, NetError> {
    let found = namespaces().await?;
    for ns in &found {
        let pids = run("ip", &["netns", "pids", ns]).await.unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-KILL", pid]).await;
        }
        run("ip", &["netns", "del", ns]).await?;
    }
    Ok(found.len())
}

/// Builds the bridge and one namespace per host, joined to it, with the `nft` table for
/// faults; loopback up in each. The hosts named in `impaired` are joined by a TAP pair and a
/// forwarder ([`crate::impair`]) instead of a veth pair: their links, by host name.
pub async fn setup(
    hosts: &[Host],
    impaired: &[&str],
    seed: u64,
) -> Result<std::collections::BTreeMap<String, Link>, NetError> {
    let mut links = std::collections::BTreeMap::new();
    run("ip", &["netns", "add", BRIDGE_NS]).await?;
    in_ns(BRIDGE_NS, &["ip", "link", "add", "br0", "type", "bridge"]).await?;
    in_ns(BRIDGE_NS, &["ip", "link", "set", "br0", "up"]).await?;
    for (i, host) in hosts.iter().enumerate() {
        let ns = host.ns.as_str();
        run("ip", &["netns", "add", ns]).await?;
        in_ns(ns, &["ip", "link", "set", "lo", "up"]).await?;
        let inner = format!("{PREFIX}n{i}");
        let outer = format!("{PREFIX}b{i}");
        if impaired.contains(&host.name.as_str()) {
            let link =
                Link::open(&inner, &outer, seed.wrapping_add(i as u64)).map_err(|source| {
                    NetError::Spawn {
                        command: format!("tap {inner} {outer}"),
                        source,
                    }
                })?;
            run("ip", &["link", "set", &inner, "netns", ns]).await?;
            run("ip", &["link", "set", &outer, "netns", BRIDGE_NS]).await?;
            links.insert(host.name.clone(), link);
        } else {
            run(
                "ip",
                &[
                    "link", "add", &inner, "netns", ns, "type", "veth", "peer", "name", &outer,
                    "netns", BRIDGE_NS,
                ],
            )
            .await?;
        }
        in_ns(ns, &["ip", "link", "set", &inner, "name", "eth0"]).await?;
        let cidr = format!("{}/24", host.addr);
        in_ns(ns, &["ip", "addr", "add", &cidr, "dev", "eth0"]).await?;
        in_ns(ns, &["ip", "link", "set", "eth0", "up"]).await?;
        in_ns(BRIDGE_NS, &["ip", "link", "set", &outer, "master", "br0"]).await?;
        in_ns(BRIDGE_NS, &["ip", "link", "set", &outer, "up"]).await?;
        nft(ns, FAULT_TABLE).await?;
    }
    Ok(links)
}

/// The table faults add rules to; flushing its chains heals.
const FAULT_TABLE: &str = "table inet phc {
  chain in { type filter hook input priority 0; policy accept; }
  chain out { type filter hook output priority 0; policy accept; }
}";

/// Loads `rules` into `ns`'s nft.
async fn nft(ns: &str, rules: &str) -> Result<(), NetError> {
    let path = std::env::temp_dir().join(format!("{ns}-{}.nft", std::process::id()));
    std::fs::write(&path, rules).map_err(|source| NetError::Spawn {
        command: format!("write {}", path.display()),
        source,
    })?;
    let file = path.to_string_lossy().into_owned();
    let loaded = in_ns(ns, &["nft", "-f", &file]).await;
    let _ = std::fs::remove_file(&path);
    loaded.map(|_| ())
}

/// Adds one rule to chain `chain` (`in` or `out`) of `ns`'s fault table.
pub async fn rule(ns: &str, chain: &str, rule: &str) -> Result<(), NetError> {
    nft(ns, &format!("add rule inet phc {chain} {rule}\n")).await
}

/// Drops what `host` receives from `from` (`in`) and sends to it (`out`), as asked.
pub async fn block(
    host: &Host,
    from: &Host,
    inbound: bool,
    outbound: bool,
) -> Result<(), NetError> {
    if inbound {
        rule(&host.ns, "in", &format!("ip saddr {} drop", from.addr)).await?;
    }
    if outbound {
        rule(&host.ns, "out", &format!("ip daddr {} drop", from.addr)).await?;
    }
    Ok(())
}

/// Drops `percent`% of what `host` sends and receives on its link, at random.
pub async fn loss(host: &Host, percent: u8) -> Result<(), NetError> {
    for chain in ["in", "out"] {
        let dev = if chain == "in" { "iifname" } else { "oifname" };
        let text = format!("{dev} \"eth0\" numgen random mod 100 < {percent} drop");
        rule(&host.ns, chain, &text).await?;
    }
    Ok(())
}

/// Removes every fault rule of `host`.
pub async fn heal(host: &Host) -> Result<(), NetError> {
    in_ns(&host.ns, &["nft", "flush", "table", "inet", "phc"])
        .await
        .map(|_| ())
}

/// Destroys `host`'s TCP sockets to `peer` (`ss -K`): the application sees its connection
/// aborted, the peer gets a reset.
pub async fn cut(host: &Host, peer: &Host) -> Result<(), NetError> {
    in_ns(&host.ns, &["ss", "-K", "dst", &peer.addr])
        .await
        .map(|_| ())
}
