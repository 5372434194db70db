//! The real cluster under real network faults (issue 30): `play-node`s, an `api-node`,
//! Redis and a Connector workload, each in its own network namespace joined to a bridge
//! ([`net`], [`cluster`]); faults on a schedule from a seed ([`faults`]); every operation
//! recorded ([`history`], [`driver`]; rooms a drain moves are followed, [`rooms`]) and
//! checked after the run ([`check`], and for drains [`moves`]).
//!
//! `cluster run --seed S --duration SECS` runs it (as root); see `docs/testing.md`.

pub mod check;
pub mod cluster;
pub mod driver;
pub mod faults;
pub mod history;
pub mod impair;
pub mod moves;
pub mod net;
pub mod procs;
pub mod report;
pub mod rng;
pub mod rooms;
pub mod summary;
