//! Joining a server mesh: which link, which directory, which settings.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use playhouse_mesh::{
    Directory, InboundHandler, MemoryDirectory, Mesh, MeshConfig, MeshLink, ServerInfoCenter,
    ServerType, TcpLink, TcpLinkConfig, ZmqLink, ZmqLinkConfig,
};

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
    service_id: Option<u16>,
    weight: u32,
    request_timeout: Duration,
    refresh_interval: Duration,
    directory_ttl: Duration,
    max_payload: Option<usize>,
    heartbeat: Option<(Duration, Duration)>,
}

enum LinkChoice {
    Tcp {
        bind: String,
        advertise_host: Option<String>,
    },
    Zmq {
        bind: String,
        advertise_host: Option<String>,
    },
    Custom(Arc<dyn MeshLink>),
}

impl std::fmt::Debug for MeshJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshJoin")
            .field("service_id", &self.service_id)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

impl MeshJoin {
    /// The length-delimited TCP link bound at `bind` (e.g. `127.0.0.1:0`), with `directory`.
    pub fn tcp(bind: impl Into<String>, directory: impl Directory) -> Self {
        Self::with_directory(
            LinkChoice::Tcp {
                bind: bind.into(),
                advertise_host: None,
            },
            Arc::new(directory),
        )
    }

    /// The ZeroMQ ROUTER link (what the server processes ship with) bound at `bind` (e.g.
    /// `127.0.0.1:0`, TCP transport), with `directory`.
    ///
    /// ```
    /// use playhouse::MeshJoin;
    /// use playhouse_mesh::MemoryDirectory;
    /// let join = MeshJoin::zmq("127.0.0.1:0", MemoryDirectory::new());
    /// ```
    pub fn zmq(bind: impl Into<String>, directory: impl Directory) -> Self {
        Self::with_directory(
            LinkChoice::Zmq {
                bind: bind.into(),
                advertise_host: None,
            },
            Arc::new(directory),
        )
    }

    /// Any link (e.g. a `TcpLink` over a simulated network); the mesh node starts it.
    pub fn link(link: Arc<dyn MeshLink>, directory: Arc<dyn Directory>) -> Self {
        Self::with_directory(LinkChoice::Custom(link), directory)
    }

    fn with_directory(link: LinkChoice, directory: Arc<dyn Directory>) -> Self {
        MeshJoin {
            link,
            directory,
            service_id: None,
            weight: 100,
            request_timeout: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(3),
            directory_ttl: Duration::from_secs(10),
            max_payload: None,
            heartbeat: None,
        }
    }

    /// A directory shared in this process (the embedded default).
    pub fn memory(bind: impl Into<String>, directory: &MemoryDirectory) -> Self {
        Self::tcp(bind, directory.clone())
    }

    /// The host other servers dial (needed when binding `0.0.0.0`).
    pub fn advertise_host(mut self, host: impl Into<String>) -> Self {
        if let LinkChoice::Tcp { advertise_host, .. } | LinkChoice::Zmq { advertise_host, .. } =
            &mut self.link
        {
            *advertise_host = Some(host.into());
        }
        self
    }

    /// Replaces the directory (e.g. a `RedisDirectory` shared across machines).
    pub fn directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = directory;
        self
    }

    /// Service id. Default: 1 for Play servers, 2 for API servers.
    pub fn service_id(mut self, service_id: u16) -> Self {
        self.service_id = Some(service_id);
        self
    }

    /// Weight in weighted service routing. Default: 100.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Default timeout of mesh requests. Default: 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often the directory is refreshed. Default: 3 s.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
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
    pub fn directory_ttl(mut self, ttl: Duration) -> Self {
        self.directory_ttl = ttl;
        self
    }

    /// The largest payload sent to another server (see `MeshConfig::max_payload`).
    /// Default: 8 MiB.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = Some(bytes);
        self
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
    /// let join = MeshJoin::zmq("127.0.0.1:0", MemoryDirectory::new())
    ///     .heartbeat(Duration::from_millis(250), Duration::from_secs(1));
    /// ```
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat = Some((interval, timeout));
        self
    }
}

pub(crate) async fn join(
    server_id: &str,
    server_type: ServerType,
    setup: MeshJoin,
    inbound: Arc<dyn InboundHandler>,
    center: ServerInfoCenter,
) -> io::Result<Mesh> {
    let link: Arc<dyn MeshLink> = match setup.link {
        LinkChoice::Tcp {
            bind,
            advertise_host,
        } => {
            let host = advertise_host.as_deref();
            Arc::new(TcpLink::bind(server_id, &bind, host, TcpLinkConfig::default()).await?)
        }
        LinkChoice::Zmq {
            bind,
            advertise_host,
        } => {
            let endpoint = format!("tcp://{bind}");
            let host = advertise_host.as_deref();
            let link = ZmqLink::bind(server_id, &endpoint, host, ZmqLinkConfig::default())
                .await
                .map_err(io::Error::other)?;
            Arc::new(link)
        }
        LinkChoice::Custom(link) => link,
    };
    let mut config = MeshConfig::new(server_id, server_type);
    if let Some(service_id) = setup.service_id {
        config.service_id = service_id;
    }
    config.weight = setup.weight;
    config.request_timeout = setup.request_timeout;
    config.refresh_interval = setup.refresh_interval;
    config.directory_ttl = setup.directory_ttl;
    if let Some(max) = setup.max_payload {
        config.max_payload = max;
    }
    if let Some((interval, timeout)) = setup.heartbeat {
        config.heartbeat_interval = interval;
        config.heartbeat_timeout = timeout;
    }
    tracing::info!(
        server = server_id,
        address = link.address(),
        "joining the mesh"
    );
    Ok(Mesh::start_with_center(config, link, setup.directory, inbound, center).await)
}
