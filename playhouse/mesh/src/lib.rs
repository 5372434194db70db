//! The PlayHouse server mesh: how servers find and talk to each other.
//!
//! Every server has a string id (`play-1`, `api-2`). A mesh message is
//! `[target id][route header][payload]`; the receiver sees the sender's id instead.
//!
//! * [`Route`]: what a message says about itself (id, target stage, account, flags; on
//!   receipt also its sender and whether it is a request). The node owns the rest of the
//!   wire header (sequences, reply and liveness flags).
//! * [`proto`]: the framework commands (create / get-or-create / destroy stage), generated
//!   from `proto/route_header.proto`.
//! * [`MeshLink`]: moves frames between servers, nothing more. `ZmqLink` (feature `zmq`)
//!   over ZeroMQ ROUTER sockets (what the processes ship with); [`TcpLink`] speaks
//!   length-delimited frames over any byte stream (production, or a simulated network).
//! * [`Directory`]: who is up and where. [`MemoryDirectory`] for one process;
//!   `RedisDirectory` (feature `redis`, on by default) across machines, one key per server
//!   `playhouse:server:{server_id}` holding the [`ServerInfo`] JSON with a TTL.
//!   [`ServerInfoCenter`] is a server's live view, refreshed every few seconds, with service
//!   routing (round robin, weighted).
//! * [`Mesh`]: one server's node: send, request/reply with u32 sequences and timeouts,
//!   remote error codes propagated, late replies discarded and counted, and liveness: every
//!   connected peer is pinged, and one that answers no ping within the heartbeat timeout is
//!   declared down (its requests fail at once, its connections are reset).
//!
//! # Features
//!
//! The TCP link and the in-memory directory are always there; they need nothing beyond tokio.
//! `playhouse` depends on this crate without its defaults and turns these on through its own
//! `zmq` and `redis` features.
//!
//! | Feature           | Default | Gives                                          | Pulls in |
//! |-------------------|---------|------------------------------------------------|----------|
//! | `zmq`             | yes     | `ZmqLink`, `ZmqLinkConfig`, `ZmqLinkError`     | zeromq   |
//! | `redis`           | yes     | `RedisDirectory`, `RedisDirectoryConfig`       | redis    |
//! | `bench-internals` | no      | internals for the workspace's benchmarks       | nothing  |

// Public only to the benchmarks (feature `bench-internals`).
#[cfg_attr(not(feature = "bench-internals"), allow(unreachable_pub))]
mod cache;
mod config;
mod directory;
mod error;
mod link;
mod liveness;
mod locations;
mod node;
mod observer;
pub mod proto;
#[cfg(feature = "redis")]
mod redis_directory;
mod route;
mod trace;
mod wire;

#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub use cache::RequestCache;
pub use config::{DIRECTORY_RETRY, DIRECTORY_RETRY_MAX, MeshConfig, REPLY_RETRY};
pub use directory::{
    Directory, DirectoryError, MemoryDirectory, MovedStage, RoutingPolicy, ServerInfo,
    ServerInfoCenter, ServerState, ServerType,
};
pub use error::MeshError;
pub use link::dialer::{Dialer, TcpDialer};
pub use link::tcp::TcpLink;
pub use link::tcp::config::TcpLinkConfig;
#[cfg(feature = "zmq")]
pub use link::zmq::ZmqLink;
#[cfg(feature = "zmq")]
pub use link::zmq::config::ZmqLinkConfig;
#[cfg(feature = "zmq")]
pub use link::zmq::error::ZmqLinkError;
pub use link::{EventSink, LinkError, LinkEvent, MeshLink};
pub use node::{InboundHandler, Mesh};
pub use observer::MeshObserver;
#[cfg(feature = "redis")]
pub use redis_directory::{RedisDirectory, RedisDirectoryConfig};
pub use route::{Route, RoutePacket};
pub use trace::{SpanSource, TraceContext};
