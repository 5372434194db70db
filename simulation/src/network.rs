//! Network partitions as TCP sees them on a real network.
//!
//! turmoil's `partition` drops every segment for good, which no TCP stream survives: a
//! segment lost in the cut is never retransmitted, so a short partition can stall one
//! direction of a connection forever while the other keeps working. On a real network the
//! sender retransmits until the path heals (or its own timeouts give up first). [`cut`] holds
//! segments instead, and [`heal`] delivers them, in order: connections that nobody closed
//! during the cut carry on, a connection attempt waits for the heal (or its own timeout), and
//! whatever an endpoint closed meanwhile is answered with a reset when its segments arrive.
//!
//! `turmoil::partition` stays right for a black hole on purpose (the `silent_peer` scenario:
//! a connection that must be detected and abandoned, never resumed).

/// Cuts hosts `a` and `b` off each other until [`heal`]: nothing crosses either way, and
/// nothing sent is lost.
pub fn cut(a: &str, b: &str) {
    turmoil::hold(a, b);
}

/// Ends a [`cut`] between `a` and `b`: what was sent during it is delivered.
pub fn heal(a: &str, b: &str) {
    turmoil::release(a, b);
}
