//! A wire-level tap: simulated TCP streams wrapped so that every frame, in both directions,
//! is parsed and checked where it crosses the wire, below anything the framework could hide
//! (a connector that drops a second reply, a request cache that counts it as late).
//!
//! * Client connections ([`ClientTap`](client::ClientTap), one per game client, shared by all its
//!   connections): every reply (server frame with a sequence) must answer a request sent before it
//!   and not answered yet. A resumable session replays unacknowledged frames after a resume: a
//!   reply with the same server frame number as one already seen is that frame again, not a
//!   duplicate (frames are numbered from the `@Session@` grant, and after a `@Resume@` from the
//!   count the client reported as received).
//! * Mesh connections ([`MeshTap`](mesh::MeshTap), one per run on
//!   [`Env`](crate::cluster::env::Env)): a TCP link connection carries frames one way, from the
//!   node that dialed it, so the tap reads the dialed side's writes. A request and its reply travel
//!   on two connections (each node dials its peers), so outstanding requests are kept per
//!   (requester, responder) pair: every reply must answer a request of that pair that is not
//!   answered yet, and no request sequence is sent twice. The tap also counts the connections
//!   opened and closed per pair: one-way messages must arrive unless that count moved
//!   ([`MeshTap::changes`](mesh::MeshTap::changes)). On the accepting side it checks what a
//!   node's verdict on a peer must do: drop the connection the peer dialed at once, and read
//!   nothing more from it (`accepted`).
//!
//! Everything is kept in ordered maps and recorded from the stream's own polls, so the trace
//! stays a function of the seed.
//!
//! * `stream`: [`Tapped`](stream::Tapped), the stream an observer watches.
//! * `client`, `mesh`, `accepted`: the observers and what they check; `link`: the mesh link
//!   wrapper that tells the tap of each verdict.

pub mod accepted;
pub mod client;
pub mod link;
pub mod mesh;
pub mod stream;
