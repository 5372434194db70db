//! [`MeshObserver`]: what a mesh node tells of its round trips (see
//! [`Mesh::observe`](crate::Mesh::observe)).

use std::time::Duration;

/// Told of round trips as they complete, e.g. to keep latency histograms (see
/// [`Mesh::observe`]). Called on the mesh's own tasks: keep it cheap.
pub trait MeshObserver: Send + Sync + 'static {
    /// A request this node sent to `peer` was answered `took` after it was sent.
    fn request_round_trip(&self, peer: &str, took: Duration);
    /// A liveness ping to `peer` was answered `took` after it was sent.
    fn liveness_round_trip(&self, peer: &str, took: Duration);
}
