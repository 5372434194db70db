//! Deterministic simulation of PlayHouse: the real Play server, API server, mesh (TCP link)
//! and connector run unmodified on [turmoil]'s simulated network and clock, so timeouts,
//! reconnection and mesh failures replay exactly from a seed.
//!
//! * [`net`]: turmoil TCP behind PlayHouse's transport traits (listener, mesh dialer).
//! * [`cluster`]: hosts running the servers, the shared directory and trace, host faults
//!   (crash, bounce), the run loop.
//! * [`app`]: the stage and API handlers under test; every promise they make is checked
//!   from the client side.
//! * [`relay_room`]: a stage that answers late and asks other servers (mesh requests
//!   from a stage).
//! * [`clock_room`]: a stage that reports its timers, game loop and async blocks with its
//!   own clock.
//! * [`client`] / [`mesh_client`]: a game client (connector) and an API workload (mesh
//!   requests) that record what they see and check it as it arrives.
//! * [`invariants`]: the operation ledger and mesh outcome tallies.
//! * [`lifecycle`]: every stage's and actor's `on_destroy`, and what a graceful stop must
//!   close.
//! * [`tap`]: wire-level taps on client and mesh connections (every reply answers exactly
//!   one request).
//! * [`trace`]: the event trace and its hash; [`rng`]: the one seeded generator.
//! * [`scenarios`]: the fault scenarios, each a function of the seed.
//!
//! ```no_run
//! let report = simulation::scenarios::run("request_timeout", 7).unwrap();
//! println!("{report}"); // scenario=request_timeout seed=7 result=ok trace=...
//! ```

pub mod app;
pub mod census;
pub mod client;
pub mod clock_room;
pub mod cluster;
pub mod directory;
pub mod invariants;
pub mod lifecycle;
pub mod mesh_client;
pub mod move_room;
pub mod net;
pub mod network;
pub mod relay_room;
pub mod rng;
pub mod scenarios;
pub mod tap;
pub mod trace;
