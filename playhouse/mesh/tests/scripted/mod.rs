//! A link scripted by the test, for mesh node tests on a paused clock: connections come up at
//! once unless the test says a peer is down; it records what the node sends, resets and
//! disconnects, and delivers what the test says a peer sent.

// Each test binary uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use playhouse_mesh::{EventSink, LinkError, LinkEvent, MeshLink};
use prost::Message;
use tokio::time::Instant;

/// The route header as the wire carries it (`proto/route_header.proto`), decoded here
/// independently of the mesh crate's generated type: the fields these tests look at.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WireHeader {
    #[prost(uint32, tag = "1")]
    pub(crate) msg_seq: u32,
    #[prost(string, tag = "3")]
    pub(crate) msg_id: String,
    #[prost(uint32, tag = "4")]
    pub(crate) error_code: u32,
    #[prost(string, tag = "5")]
    pub(crate) from: String,
    #[prost(bool, tag = "9")]
    pub(crate) is_reply: bool,
    #[prost(uint32, tag = "13")]
    pub(crate) liveness: u32,
}

/// A frame the node sent.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    pub(crate) target: String,
    pub(crate) header: WireHeader,
    pub(crate) payload: Bytes,
    pub(crate) at: Instant,
}

/// A link whose connections come up at once unless the test says they are down.
#[derive(Default)]
pub(crate) struct ScriptedLink {
    state: Mutex<LinkState>,
    sink: Mutex<Option<EventSink>>,
}

#[derive(Default)]
struct LinkState {
    /// Peers asked for, and whether their connection is up.
    peers: BTreeMap<String, bool>,
    /// Peers the test declares down (now and whenever they are connected again).
    down: BTreeSet<String>,
    disconnects: Vec<String>,
    resets: Vec<(String, Instant)>,
    sent: Vec<Sent>,
    /// Closed: every send fails with `LinkError::Closed`.
    closed: bool,
}

impl ScriptedLink {
    fn state(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection to `peer` goes down (and stays down when reconnected).
    pub(crate) fn set_down(&self, peer: &str) {
        let mut state = self.state();
        state.down.insert(peer.to_owned());
        if let Some(up) = state.peers.get_mut(peer) {
            *up = false;
        }
    }

    /// Peers the node disconnected, in order.
    pub(crate) fn disconnects(&self) -> Vec<String> {
        self.state().disconnects.clone()
    }

    /// Peers the node reset, with when.
    pub(crate) fn resets(&self) -> Vec<(String, Instant)> {
        self.state().resets.clone()
    }

    /// Takes every frame sent so far.
    pub(crate) fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut self.state().sent)
    }

    /// Hands `event` to the node, as the link's receive task would.
    pub(crate) fn deliver(&self, event: LinkEvent) {
        let sink = self
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .expect("started");
        sink(event);
    }

    /// Reports that the connection to `target` broke, as a real link would.
    pub(crate) fn report_down(&self, target: &str) {
        self.deliver(LinkEvent::PeerDown {
            target: Arc::from(target),
        });
    }

    /// A message from `from`.
    pub(crate) fn receive(&self, from: &str, header: WireHeader, payload: Bytes) {
        self.deliver(LinkEvent::Message {
            from: Arc::from(from),
            header: Bytes::from(header.encode_to_vec()),
            payload,
        });
    }
}

impl MeshLink for ScriptedLink {
    fn address(&self) -> &str {
        "tcp://10.0.0.1:5000"
    }

    fn start(&self, sink: EventSink) {
        *self.sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    fn connect(&self, server_id: &str, _address: &str) {
        let mut state = self.state();
        let up = !state.down.contains(server_id);
        state.peers.insert(server_id.to_owned(), up);
    }

    fn disconnect(&self, server_id: &str) {
        let mut state = self.state();
        state.peers.remove(server_id);
        state.disconnects.push(server_id.to_owned());
    }

    fn reset(&self, server_id: &str) {
        let mut state = self.state();
        state.resets.push((server_id.to_owned(), Instant::now()));
    }

    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError> {
        let mut state = self.state();
        if state.closed {
            return Err(LinkError::Closed);
        }
        match state.peers.get(target) {
            Some(true) => {
                let header = WireHeader::decode(header).expect("the node encodes headers");
                state.sent.push(Sent {
                    target: target.to_owned(),
                    header,
                    payload,
                    at: Instant::now(),
                });
                Ok(())
            }
            Some(false) => Err(LinkError::NotConnected(target.to_owned())),
            None => Err(LinkError::Unknown(target.to_owned())),
        }
    }

    fn is_connected(&self, server_id: &str) -> bool {
        self.state().peers.get(server_id) == Some(&true)
    }

    fn close(&self) {
        self.state().closed = true;
    }
}
