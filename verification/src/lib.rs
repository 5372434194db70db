//! The PlayHouse verification program as a library: it starts the servers once, drives every
//! feature through the real [`Connector`](playhouse_connector::Connector) with protobuf
//! messages, checks only what a client sees, and reports TAP.
//!
//! Modules:
//! * [`servers`]: play-1, play-2, api-1 (with HTTP) and api-2 in one ZeroMQ mesh, with
//!   `TestStage`/`TestActor`, the API and system handlers, and the shared services.
//! * [`proto`]: the messages of `proto/test_messages.proto`.
//! * [`context`]: the servers and the shared connector, and each test's view of them.
//! * [`client`]: client-side helpers (events with deadlines, typed requests, a frame loop,
//!   a tiny HTTP client).
//! * [`cut_proxy`]: a relay that cuts connections under a client, from either end.
//! * [`raw`]: a hand-framed wire client for what the connector hides (compression, bad frames).
//! * [`runner`] / [`tap`]: categories of tests, per-test tasks and timeouts, TAP output.
//! * [`verifiers`]: one module per category.
//! * [`cli`]: the command line (`--ci`, `--category`, `--list`, `--serve`, the menu).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let server = verification::ServerContext::start().await?;
//! let categories = verification::verifiers::all();
//! let outcomes = verification::runner::run(&server, &categories, |outcome| {
//!     println!("{}: {} -> {:?}", outcome.category, outcome.test, outcome.result);
//! })
//! .await;
//! assert!(outcomes.iter().all(|o| o.result.is_ok()));
//! server.stop().await;
//! # Ok(()) }
//! ```

mod check;
pub mod cli;
pub mod client;
pub mod context;
pub mod counting_proxy;
pub mod cut_proxy;
pub mod proto;
pub mod raw;
pub mod runner;
pub mod servers;
pub mod tap;
pub mod verifiers;

pub use check::TestResult;
pub use context::{ServerContext, TestCtx};
pub use runner::{Category, Outcome, TestCase};
