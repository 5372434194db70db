//! Joining a server mesh: which link (and its settings), which directory, and what to change
//! of the mesh node's settings ([`MeshConfig`]'s defaults hold for everything else).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use playhouse_mesh::{
    Directory, InboundHandler, MemoryDirectory, Mesh, MeshConfig, MeshLink, ServerInfoCenter,
    ServerType, TcpLink, TcpLinkConfig,
};
#[cfg(feature = "zmq")]
use playhouse_mesh::{ZmqLink, ZmqLinkConfig};

/// How a server joins the mesh.
///
/// ```
/// use playhouse::MeshJoin;
/// use playhouse_mesh::MemoryDirectory;
/// let directory = MemoryDirectory::new(); // shared by every server of this process
/// let join = MeshJoin::tcp("127.0.0.1:0", directory).service_id(7);
/// ```
#[must_use]
pub struct MeshJoin {
    link: LinkChoice,
    directory: Arc<dyn Directory>,
    /// Changes to [`MeshConfig::new`]'s defaults, in the order given; applied once the
    /// server's id and type are known.
    overrides: Vec<Override>,
}

/// One change to a [`MeshConfig`].
type Override = Box<dyn FnOnce(&mut MeshConfig) + Send + Sync>;

enum LinkChoice {
    Tcp {
        bind: String,
        advertise_host: Option<String>,
        config: TcpLinkConfig,
    },
    #[cfg(feature = "zmq")]
    Zmq {
        bind: String,
        advertise_host: Option<String>,
        config: ZmqLinkConfig,
    },
    Custom(Arc<dyn MeshLink>),
}

impl std::fmt::Debug for MeshJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let link = match &self.link {
            LinkChoice::Tcp { bind, .. } => format!("tcp {bind}"),
            #[cfg(feature = "zmq")]
            LinkChoice::Zmq { bind, .. } => format!("zmq {bind}"),
            LinkChoice::Custom(link) => format!("custom {}", link.address()),
        };
        f.debug_struct("MeshJoin")
            .field("link", &link)
            .field("overrides", &self.overrides.len())
            .finish_non_exhaustive()
    }
}

impl MeshJoin {
    /// The length-delimited TCP link bound at `bind` (e.g. `127.0.0.1:0`), with `directory`.
    pub fn tcp(bind: impl Into<String>, directory: impl Directory) -> Self {
        let link = LinkChoice::Tcp {
            bind: bind.into(),
            advertise_host: None,
            config: TcpLinkConfig::default(),
        };
        Self::with_directory(link, Arc::new(directory))
    }

    /// The ZeroMQ ROUTER link (what the server processes ship with) bound at `bind` (e.g.
    /// `127.0.0.1:0`, TCP transport), with `directory`. Feature `zmq`.
    ///
    /// ```
    /// use playhouse::MeshJoin;
    /// use playhouse_mesh::MemoryDirectory;
    /// let join = MeshJoin::zmq("127.0.0.1:0", MemoryDirectory::new());
    /// ```
    #[cfg(feature = "zmq")]
    pub fn zmq(bind: impl Into<String>, directory: impl Directory) -> Self {
        let link = LinkChoice::Zmq {
            bind: bind.into(),
            advertise_host: None,
            config: ZmqLinkConfig::default(),
        };
        Self::with_directory(link, Arc::new(directory))
    }

    /// Any link (e.g. a `TcpLink` over a simulated network); the mesh node starts it.
    pub fn link(link: Arc<dyn MeshLink>, directory: Arc<dyn Directory>) -> Self {
        Self::with_directory(LinkChoice::Custom(link), directory)
    }

    fn with_directory(link: LinkChoice, directory: Arc<dyn Directory>) -> Self {
        MeshJoin {
            link,
            directory,
            overrides: Vec::new(),
        }
    }

    /// A directory shared in this process (the embedded default).
    pub fn memory(bind: impl Into<String>, directory: &MemoryDirectory) -> Self {
        Self::tcp(bind, directory.clone())
    }

    /// The host other servers dial (needed when binding `0.0.0.0`).
    pub fn advertise_host(mut self, host: impl Into<String>) -> Self {
        match &mut self.link {
            LinkChoice::Tcp { advertise_host, .. } => *advertise_host = Some(host.into()),
            #[cfg(feature = "zmq")]
            LinkChoice::Zmq { advertise_host, .. } => *advertise_host = Some(host.into()),
            LinkChoice::Custom(_) => {}
        }
        self
    }

    /// The TCP link's settings (send queue, timeouts, largest frame), for a join made with
    /// [`MeshJoin::tcp`] or [`MeshJoin::memory`]. Default: `TcpLinkConfig::default()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use playhouse::MeshJoin;
    /// use playhouse_mesh::{MemoryDirectory, TcpLinkConfig};
    /// let mut link = TcpLinkConfig::default();
    /// link.send_timeout = Duration::from_secs(1);
    /// let join = MeshJoin::tcp("127.0.0.1:0", MemoryDirectory::new()).tcp_link(link);
    /// ```
    pub fn tcp_link(mut self, link: TcpLinkConfig) -> Self {
        if let LinkChoice::Tcp { config, .. } = &mut self.link {
            *config = link;
        }
        self
    }

    /// The ZeroMQ link's settings (handshake timeout, reconnect backoff), for a join made with
    /// [`MeshJoin::zmq`]. Default: `ZmqLinkConfig::default()`. Feature `zmq`.
    #[cfg(feature = "zmq")]
    pub fn zmq_link(mut self, link: ZmqLinkConfig) -> Self {
        if let LinkChoice::Zmq { config, .. } = &mut self.link {
            *config = link;
        }
        self
    }

    /// Replaces the directory (e.g. a `RedisDirectory` shared across machines).
    pub fn directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = directory;
        self
    }

    /// Changes any setting of the mesh node's [`MeshConfig`] (its defaults hold for the rest);
    /// the methods below are shorthands. The server's id and type are the server's own: a
    /// change to them is undone.
    ///
    /// ```
    /// use playhouse::MeshJoin;
    /// use playhouse_mesh::MemoryDirectory;
    /// let join = MeshJoin::tcp("127.0.0.1:0", MemoryDirectory::new())
    ///     .configure(|config| config.max_pending_requests = 10_000);
    /// ```
    pub fn configure(
        mut self,
        change: impl FnOnce(&mut MeshConfig) + Send + Sync + 'static,
    ) -> Self {
        self.overrides.push(Box::new(change));
        self
    }

    /// Service id. Default: 1 for Play servers, 2 for API servers.
    pub fn service_id(self, service_id: u16) -> Self {
        self.configure(move |config| config.service_id = service_id)
    }

    /// Weight in weighted service routing. Default: 100.
    pub fn weight(self, weight: u32) -> Self {
        self.configure(move |config| config.weight = weight)
    }

    /// Default timeout of mesh requests. Default: 30 s.
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.configure(move |config| config.request_timeout = timeout)
    }

    /// How often the directory is refreshed. Default: 3 s.
    pub fn refresh_interval(self, interval: Duration) -> Self {
        self.configure(move |config| config.refresh_interval = interval)
    }

    /// How long this server's directory entry lives without a refresh, and how long a peer
    /// missing from the directory stays routable after it was last listed (while its
    /// connection is up). Every server of a mesh should use the same value, a few refresh
    /// intervals long. Default: 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use playhouse::MeshJoin;
    /// use playhouse_mesh::MemoryDirectory;
    /// let join = MeshJoin::tcp("127.0.0.1:0", MemoryDirectory::new())
    ///     .refresh_interval(Duration::from_secs(1))
    ///     .directory_ttl(Duration::from_secs(4));
    /// ```
    pub fn directory_ttl(self, ttl: Duration) -> Self {
        self.configure(move |config| config.directory_ttl = ttl)
    }

    /// The largest payload sent to another server (see `MeshConfig::max_payload`).
    /// Default: 8 MiB.
    pub fn max_payload(self, bytes: usize) -> Self {
        self.configure(move |config| config.max_payload = bytes)
    }

    /// Node liveness: every connected peer is pinged every `interval`; one that answers
    /// no ping sent within `timeout` is declared down (its requests fail at once, its
    /// connections are reset). Every server of a mesh should use the same values.
    /// Default: 1 s and 5 s (see `MeshConfig::heartbeat_timeout`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use playhouse::MeshJoin;
    /// use playhouse_mesh::MemoryDirectory;
    /// let join = MeshJoin::tcp("127.0.0.1:0", MemoryDirectory::new())
    ///     .heartbeat(Duration::from_millis(250), Duration::from_secs(1));
    /// ```
    pub fn heartbeat(self, interval: Duration, timeout: Duration) -> Self {
        self.configure(move |config| {
            config.heartbeat_interval = interval;
            config.heartbeat_timeout = timeout;
        })
    }
}

/// Binds the link `choice` names, for server `server_id`.
async fn bind(server_id: &str, choice: LinkChoice) -> io::Result<Arc<dyn MeshLink>> {
    Ok(match choice {
        LinkChoice::Tcp {
            bind,
            advertise_host,
            config,
        } => {
            let host = advertise_host.as_deref();
            Arc::new(TcpLink::bind(server_id, &bind, host, config).await?)
        }
        #[cfg(feature = "zmq")]
        LinkChoice::Zmq {
            bind,
            advertise_host,
            config,
        } => {
            let host = advertise_host.as_deref();
            let link = ZmqLink::bind(server_id, &bind, host, config)
                .await
                .map_err(io::Error::other)?;
            Arc::new(link)
        }
        LinkChoice::Custom(link) => link,
    })
}

/// The mesh node's settings for server `server_id` of `server_type`: the defaults, with the
/// join's changes.
fn mesh_config(overrides: Vec<Override>, server_id: &str, server_type: ServerType) -> MeshConfig {
    let mut config = MeshConfig::new(server_id, server_type);
    for change in overrides {
        change(&mut config);
    }
    config.server_id = server_id.to_owned();
    config.server_type = server_type;
    config
}

/// Binds the join's link and starts the mesh node of server `server_id` on it.
pub(crate) async fn join(
    server_id: &str,
    server_type: ServerType,
    setup: MeshJoin,
    inbound: Arc<dyn InboundHandler>,
    center: ServerInfoCenter,
) -> io::Result<Mesh> {
    let link = bind(server_id, setup.link).await?;
    let config = mesh_config(setup.overrides, server_id, server_type);
    tracing::info!(
        server = server_id,
        address = link.address(),
        "joining the mesh"
    );
    Ok(Mesh::start_with_center(config, link, setup.directory, inbound, center).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_changes_only_what_it_overrides() {
        let join = MeshJoin::tcp("127.0.0.1:0", MemoryDirectory::new())
            .weight(7)
            .service_id(9)
            .service_id(11)
            .configure(|config| {
                config.max_pending_requests = 3;
                config.server_id = "someone-else".to_owned();
            });
        let config = mesh_config(join.overrides, "api-1", ServerType::Api);
        let defaults = MeshConfig::new("api-1", ServerType::Api);
        assert_eq!(config.weight, 7);
        assert_eq!(config.service_id, 11, "the last change wins");
        assert_eq!(config.max_pending_requests, 3);
        assert_eq!(config.server_id, "api-1", "the server's own id stays");
        assert_eq!(config.request_timeout, defaults.request_timeout);
        assert_eq!(config.heartbeat_timeout, defaults.heartbeat_timeout);
        assert_eq!(config.max_payload, defaults.max_payload);

        let untouched = mesh_config(Vec::new(), "play-1", ServerType::Play);
        assert_eq!(untouched.service_id, 1, "the Play default");
    }

    #[test]
    fn link_settings_reach_their_link() {
        let mut tcp = TcpLinkConfig::default();
        tcp.send_queue = 5;
        let join = MeshJoin::tcp("127.0.0.1:0", MemoryDirectory::new())
            .tcp_link(tcp)
            .advertise_host("10.0.0.1");
        let LinkChoice::Tcp {
            config,
            advertise_host,
            ..
        } = join.link
        else {
            panic!("a TCP join");
        };
        assert_eq!(config.send_queue, 5);
        assert_eq!(advertise_host.as_deref(), Some("10.0.0.1"));

        #[cfg(feature = "zmq")]
        {
            let mut zmq = ZmqLinkConfig::default();
            zmq.handshake_timeout = Duration::from_millis(7);
            let join = MeshJoin::zmq("127.0.0.1:0", MemoryDirectory::new()).zmq_link(zmq);
            let LinkChoice::Zmq { config, .. } = join.link else {
                panic!("a ZeroMQ join");
            };
            assert_eq!(config.handshake_timeout, Duration::from_millis(7));
        }
    }
}
