//! PlayHouse benchmarks.
//!
//! * [`bench_server`]: the server under load — the framework (`BenchStage` on a Play server)
//!   or a raw baseline (a minimal tokio server with the same framing and no framework, over TCP
//!   or WebSocket).
//! * [`loadgen`]: the load generator: many clients over TCP, WebSocket or TLS, request or
//!   one-way mode, in-flight window, latency histogram, server RSS.
//! * [`report`]: results as one JSON line and a readable table.
//! * [`move_bench`]: moving live stages (issue 27): a movable stage with state, Play servers
//!   over a real mesh link, clients that notice their stage moved; [`bystander`]: a server
//!   that is not draining, measured while another drains.
//!
//! The binaries (`bench-server`, `loadgen`, `mesh-bench`, `move-bench`) are thin wrappers; `run.sh` runs a
//! whole comparison, `colyseus/run.sh` the WebSocket comparison with Colyseus (driven by a Node
//! load generator), and `RESULTS.md` records the numbers.

pub mod bench_server;
pub mod bystander;
pub mod loadgen;
pub mod move_bench;
pub mod process;
pub mod report;
pub mod spread;

/// Message ids the load generator and both servers agree on.
pub mod ids {
    /// Authenticate (payload: account id).
    pub const AUTH: &str = "AuthenticateRequest";
    /// Authenticate reply.
    pub const AUTH_REPLY: &str = "AuthenticateReply";
    /// A request answered with its own payload.
    pub const REQUEST: &str = "BenchRequest";
    /// A one-way message answered by a push carrying its payload.
    pub const SEND: &str = "BenchSend";
    /// The push answering [`SEND`] and [`BROADCAST`].
    pub const PUSH: &str = "BenchPush";
    /// A one-way message the framework's `BenchStage` pushes to every client in the stage.
    pub const BROADCAST: &str = "BenchBroadcast";
}
