//! What verifiers share: the servers started once, the connector created once, and a per-test
//! view ([`TestCtx`]) that hands out the category's own stage ids.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use playhouse_connector::{Connector, ConnectorConfig};
use tokio::sync::Mutex;

use crate::client::{self, EventTap, Events};
use crate::servers::Servers;

/// Stage ids of one category run are `base + offset + run × RUN_STRIDE`, so running a category
/// again (interactive mode) never meets the actors a previous run left behind.
const RUN_STRIDE: i64 = 1_000_000;

/// The servers and the shared connector of one verification session.
#[derive(Debug)]
pub struct ServerContext {
    /// The servers under test.
    pub servers: Servers,
    connector: Connector,
    events: EventTap,
    /// The stage and user the shared connector is connected and authenticated as.
    binding: Mutex<Option<(i64, String)>>,
    runs: AtomicI64,
}

impl ServerContext {
    /// Starts the servers and creates the shared connector (not yet connected).
    pub async fn start() -> io::Result<Arc<ServerContext>> {
        let servers = Servers::start().await?;
        let connector = Connector::new(client::direct_config());
        let events = EventTap::attach(&connector);
        Ok(Arc::new(ServerContext {
            servers,
            connector,
            events,
            binding: Mutex::new(None),
            runs: AtomicI64::new(0),
        }))
    }

    /// Disconnects the shared connector and stops the servers.
    pub async fn stop(&self) {
        self.connector.disconnect().await;
        self.servers.stop().await;
    }

    /// A view for the tests of one category run.
    pub fn for_category(self: &Arc<Self>, base: i64) -> TestCtx {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        TestCtx {
            server: Arc::clone(self),
            base: base + run * RUN_STRIDE,
        }
    }
}

/// A test's handle on the shared servers and connector.
#[derive(Clone, Debug)]
pub struct TestCtx {
    server: Arc<ServerContext>,
    base: i64,
}

impl TestCtx {
    /// play-1's TCP endpoint.
    pub fn addr(&self) -> SocketAddr {
        self.server.servers.play_tcp
    }

    /// The servers under test.
    pub fn servers(&self) -> &Servers {
        &self.server.servers
    }

    /// play-2's TCP endpoint.
    pub fn play2_addr(&self) -> SocketAddr {
        self.server.servers.play2_tcp
    }

    /// api-1's HTTP endpoint.
    pub fn http_addr(&self) -> SocketAddr {
        self.server.servers.api1_http
    }

    /// A stage id that belongs to this category run.
    pub fn stage_id(&self, offset: i64) -> i64 {
        self.base + offset
    }

    /// The shared connector, connected to this category's stage `offset` and authenticated
    /// as `user_id`. Reused while it stays bound to the same stage and user; otherwise it
    /// disconnects and joins again.
    pub async fn shared(&self, offset: i64, user_id: &str) -> Result<Connector, String> {
        let stage_id = self.stage_id(offset);
        let connector = &self.server.connector;
        let mut binding = self.server.binding.lock().await;
        let bound = binding
            .as_ref()
            .is_some_and(|(stage, user)| *stage == stage_id && user == user_id);
        if !(bound && connector.is_connected() && connector.is_authenticated()) {
            *binding = None;
            connector.disconnect().await;
            client::join(connector, self.addr(), stage_id, user_id).await?;
            *binding = Some((stage_id, user_id.to_owned()));
        }
        Ok(connector.clone())
    }

    /// Events of the shared connector from now on.
    pub fn shared_events(&self) -> Events {
        self.server.events.subscribe()
    }

    /// A new connector of its own with `config`, and a tap on its events.
    pub fn connector(&self, config: ConnectorConfig) -> (Connector, EventTap) {
        let connector = Connector::new(config);
        let tap = EventTap::attach(&connector);
        (connector, tap)
    }

    /// A new connector (callbacks run directly), joined to stage `offset` as `user_id`.
    pub async fn joined(
        &self,
        offset: i64,
        user_id: &str,
    ) -> Result<(Connector, EventTap), String> {
        self.joined_at(self.addr(), offset, user_id).await
    }

    /// Like [`TestCtx::joined`], on the Play server at `addr` (e.g. play-2).
    pub async fn joined_at(
        &self,
        addr: SocketAddr,
        offset: i64,
        user_id: &str,
    ) -> Result<(Connector, EventTap), String> {
        let (connector, tap) = self.connector(client::direct_config());
        client::join(&connector, addr, self.stage_id(offset), user_id).await?;
        Ok((connector, tap))
    }
}
