//! The virtual cluster: Redis, two Play servers, an API server and the workload driver, each
//! in its own namespace ([`crate::net`]), and the faults applied to them
//! ([`crate::faults`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::faults::{DRAIN_SECS, Kind, Step};
use crate::impair::{Impairment, Link};
use crate::net::{self, Host, NetError};
use crate::procs::{Node, ProcError, Spec};

/// The Play servers' client TCP port.
pub const PLAY_TCP: u16 = 7000;
/// Every server's mesh port.
const MESH: u16 = 7100;
/// The API server's HTTP port.
pub const API_HTTP: u16 = 8080;
/// The Play servers' admin port (`GET /admin/state`, read by the workload).
pub const PLAY_ADMIN: u16 = 7200;
/// The Play servers' admin token: a fixed one, for a listener that exists only inside the
/// cluster's namespaces.
pub const ADMIN_TOKEN: &str = "playhouse-cluster-admin";
/// How long a drained Play server may take to exit: its deadline, its shutdown, a margin.
const DRAIN_EXIT: Duration = Duration::from_secs(DRAIN_SECS + 15);

/// A cluster that could not start or take a fault.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A network command failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A process did not start.
    #[error(transparent)]
    Proc(#[from] ProcError),
}

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `play-node`.
    pub play: PathBuf,
    /// `api-node`.
    pub api: PathBuf,
    /// `cluster-driver`.
    pub driver: PathBuf,
}

/// The hosts of the cluster.
pub fn hosts() -> Vec<Host> {
    vec![
        Host::new("redis", 2),
        Host::new("play-1", 11),
        Host::new("play-2", 12),
        Host::new("api-1", 21),
        Host::new("client", 100),
    ]
}

/// The running cluster.
#[derive(Debug)]
pub struct Cluster {
    out: PathBuf,
    hosts: Vec<Host>,
    redis: Node,
    plays: Vec<Node>,
    api: Node,
    /// The Play servers' impairable links, by host name.
    links: std::collections::BTreeMap<String, Link>,
}

fn kv(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

impl Cluster {
    /// Builds the network and starts Redis, the Play servers and the API server; logs go to
    /// `out`.
    pub async fn start(bins: &Bins, out: &Path) -> Result<Cluster, ClusterError> {
        let hosts = hosts();
        let links = net::setup(&hosts, &["play-1", "play-2"], 0x11AB).await?;
        let host = |name: &str| hosts.iter().find(|h| h.name == name).cloned().unwrap();
        let redis_host = host("redis");
        let redis = Node::start(
            Spec {
                argv: [
                    "redis-server",
                    "--bind",
                    &redis_host.addr,
                    "--port",
                    "6379",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",
                ]
                .map(str::to_owned)
                .to_vec(),
                ready_probe: Some(
                    ["redis-cli", "-h", &redis_host.addr, "ping"]
                        .map(str::to_owned)
                        .to_vec(),
                ),
                host: redis_host.clone(),
                env: Vec::new(),
                ready_line: false,
            },
            out,
        )
        .await?;
        let redis_url = format!("redis://{}:6379", redis_host.addr);
        let mut plays = Vec::new();
        for name in ["play-1", "play-2"] {
            let h = host(name);
            let env = vec![
                kv("PLAYHOUSE_SERVER_ID", name),
                kv("PLAYHOUSE_REDIS_URL", redis_url.clone()),
                kv("PLAYHOUSE_MESH_BIND", format!("{}:{MESH}", h.addr)),
                kv("PLAYHOUSE_TCP_BIND", format!("{}:{PLAY_TCP}", h.addr)),
                kv("PLAYHOUSE_ADMIN_BIND", format!("{}:{PLAY_ADMIN}", h.addr)),
                kv("PLAYHOUSE_ON_SIGTERM", "drain"),
                kv("PLAYHOUSE_DRAIN_SECS", DRAIN_SECS.to_string()),
                kv("PLAYHOUSE_ADMIN_TOKEN", ADMIN_TOKEN),
                kv("RUST_LOG", "warn"),
            ];
            let spec = Spec {
                host: h,
                argv: vec![bins.play.to_string_lossy().into_owned()],
                env,
                ready_line: true,
                ready_probe: None,
            };
            plays.push(Node::start(spec, out).await?);
        }
        let h = host("api-1");
        let env = vec![
            kv("PLAYHOUSE_SERVER_ID", "api-1"),
            kv("PLAYHOUSE_REDIS_URL", redis_url),
            kv("PLAYHOUSE_MESH_BIND", format!("{}:{MESH}", h.addr)),
            kv("PLAYHOUSE_HTTP_BIND", format!("{}:{API_HTTP}", h.addr)),
            kv("PLAYHOUSE_PLAY_ID", "play-1"),
            kv("RUST_LOG", "warn"),
        ];
        let api = Node::start(
            Spec {
                host: h,
                argv: vec![bins.api.to_string_lossy().into_owned()],
                env,
                ready_line: true,
                ready_probe: None,
            },
            out,
        )
        .await?;
        Ok(Cluster {
            out: out.to_owned(),
            hosts,
            redis,
            plays,
            api,
            links,
        })
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("a host of the cluster")
    }

    /// Starts the workload driver in the client's namespace with `args`.
    pub async fn start_driver(&self, bins: &Bins, args: &[String]) -> Result<Node, ClusterError> {
        let mut argv = vec![bins.driver.to_string_lossy().into_owned()];
        argv.extend_from_slice(args);
        let spec = Spec {
            host: self.host("client").clone(),
            argv,
            env: vec![kv("RUST_LOG", "warn")],
            ready_line: true,
            ready_probe: None,
        };
        Ok(Node::start(spec, &self.out).await?)
    }

    fn play(&mut self, name: &str) -> &mut Node {
        self.plays
            .iter_mut()
            .find(|n| n.spec.host.name == name)
            .expect("a Play server of the cluster")
    }

    /// Applies `step`'s fault.
    pub async fn apply(&mut self, step: &Step) -> Result<(), ClusterError> {
        let target = self.host(&step.target).clone();
        let client = self.host("client").clone();
        match step.kind {
            Kind::Partition => net::block(&target, &client, true, true).await?,
            Kind::OneWay => net::block(&client, &target, false, true).await?,
            Kind::OneWayBack => net::block(&target, &client, false, true).await?,
            Kind::MeshPartition => {
                for other in ["api-1", "play-1", "play-2"] {
                    if other != target.name {
                        let other = self.host(other).clone();
                        net::block(&target, &other, true, true).await?;
                    }
                }
            }
            Kind::MeshOneWay => {
                let api = self.host("api-1").clone();
                net::block(&target, &api, false, true).await?;
            }
            Kind::Loss => net::loss(&target, 20).await?,
            Kind::Stop => self.play(&step.target).signal("STOP").await?,
            Kind::Kill => self.play(&step.target).kill().await,
            Kind::RedisWipe => self.redis.kill().await,
            Kind::Cut => net::cut(&client, &target).await?,
            Kind::Drain => self.play(&step.target).signal("TERM").await?,
            Kind::Delay => self.impair(&step.target, Kind::Delay.impairment()),
            Kind::Duplicate => self.impair(&step.target, Kind::Duplicate.impairment()),
        }
        Ok(())
    }

    /// Heals `step`'s fault.
    pub async fn heal(&mut self, step: &Step) -> Result<(), ClusterError> {
        let out = self.out.clone();
        match step.kind {
            Kind::Partition
            | Kind::OneWay
            | Kind::OneWayBack
            | Kind::MeshPartition
            | Kind::MeshOneWay => {
                for host in self.hosts.clone() {
                    net::heal(&host).await?;
                }
            }
            Kind::Loss => net::heal(&self.host(&step.target).clone()).await?,
            Kind::Stop => self.play(&step.target).signal("CONT").await?,
            Kind::Kill => self.play(&step.target).restart(&out).await?,
            Kind::RedisWipe => self.redis.restart(&out).await?,
            Kind::Cut => {}
            Kind::Delay | Kind::Duplicate => self.impair(&step.target, Impairment::default()),
            Kind::Drain => {
                let play = self.play(&step.target);
                if !play.exited(DRAIN_EXIT).await {
                    eprintln!(
                        "cluster: {} still up {DRAIN_EXIT:?} after SIGTERM; killed",
                        step.target
                    );
                }
                play.restart(&out).await?;
            }
        }
        Ok(())
    }

    fn impair(&self, name: &str, impairment: Impairment) {
        if let Some(link) = self.links.get(name) {
            link.set(impairment);
        }
    }

    /// Stops every node (SIGTERM, then SIGKILL).
    pub async fn stop(mut self) {
        let grace = Duration::from_secs(5);
        self.api.stop(grace).await;
        for play in &mut self.plays {
            play.stop(grace).await;
        }
        self.redis.stop(grace).await;
    }
}
