//! The programming model: a [`Stage`](model::Stage) (a room) holds [`Actor`](model::Actor)s (players); all callbacks of one
//! stage run one at a time on that stage's own event loop.
//!
//! * `model`: the `Stage` and `Actor` traits; `context`, `actor`, `timer`, `typed`: what
//!   stage and actor code is given (contexts, links, timers, typed routes);
//! * `host`: the registered stage types and the live stages, found or created by one policy;
//! * `handle`: a live stage's mailbox, as the rest of the server reaches it;
//! * `runner`: one stage's event loop; `spawner`: a stage type that starts stage tasks;
//! * `registry`: live stages by id; `env`: what every stage loop of a server shares.

pub(crate) mod actor;
pub(crate) mod context;
mod env;
pub(crate) mod handle;
pub(crate) mod host;
pub(crate) mod model;
pub(crate) mod moving;
mod registry;
mod relay_order;
mod runner;
mod spawner;
pub(crate) mod timer;
pub(crate) mod typed;

#[cfg(test)]
mod tests;
