//! Latency, jitter (and so reordering), duplication and loss on a Play server's link, made in
//! userspace, since this machine's kernel has no `sch_netem`: the link is a pair of TAP
//! devices instead of a veth pair, one in the node's namespace (its `eth0`) and one on the
//! bridge, and a forwarder thread per direction copies each Ethernet frame from one to the
//! other, holding it back, duplicating or dropping it as the link's current [`Impairment`]
//! says. The kernels' TCP stacks on both sides see what `netem` would give them: frames late,
//! out of order, twice, or not at all.
//!
//! The TAPs are made by this process in its own namespace and moved into the cluster's
//! namespaces before any address is set (nothing is sent in between); they are not
//! persistent, so they vanish with this process however it ends.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use crate::rng::Rng;

/// What a link does to every frame crossing it, both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impairment {
    /// Added to every frame.
    pub delay: Duration,
    /// Up to this much more, uniformly at random per frame (frames overtake each other).
    pub jitter: Duration,
    /// Frames sent twice, in percent.
    pub duplicate: u8,
    /// Frames dropped, in percent.
    pub loss: u8,
}

impl Impairment {
    /// Nothing: every frame crosses at once.
    pub fn none(self) -> bool {
        self == Impairment::default()
    }
}

/// One impaired link: its two TAP devices, and the setting its forwarders read.
#[derive(Debug, Clone)]
pub struct Link {
    setting: Arc<Mutex<Impairment>>,
}

impl Link {
    /// Makes TAPs `inner` and `outer` in this process's namespace and starts forwarding
    /// between them (frames one takes in go out of the other); the caller moves them into
    /// their namespaces. `seed` seeds each direction's draws.
    pub fn open(inner: &str, outer: &str, seed: u64) -> std::io::Result<Link> {
        let tap = |name: &str| {
            DeviceBuilder::new()
                .name(name)
                .layer(Layer::L2)
                .build_sync()
                .map(Arc::new)
        };
        let (a, b) = (tap(inner)?, tap(outer)?);
        let link = Link {
            setting: Arc::new(Mutex::new(Impairment::default())),
        };
        link.forward(Arc::clone(&a), Arc::clone(&b), Rng::new(seed));
        link.forward(b, a, Rng::new(seed ^ 0x5EED));
        Ok(link)
    }

    /// What the link does from now on ([`Impairment::default`] heals it).
    pub fn set(&self, impairment: Impairment) {
        *self.setting.lock().unwrap_or_else(PoisonError::into_inner) = impairment;
    }

    fn current(&self) -> Impairment {
        *self.setting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frames from `from` to `to`: a reader thread draws each frame's fate; frames held back
    /// go to a writer thread that sends them when due (in due order).
    fn forward(&self, from: Arc<SyncDevice>, to: Arc<SyncDevice>, mut rng: Rng) {
        let (held_tx, held_rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let writer = Arc::clone(&to);
        std::thread::spawn(move || send_when_due(&writer, &held_rx));
        let link = self.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = from.recv(&mut buf) {
                let frame = &buf[..n];
                let now = link.current();
                if now.none() {
                    let _ = to.send(frame);
                    continue;
                }
                if rng.range(1, 100) <= u64::from(now.loss) {
                    continue;
                }
                let copies = if rng.range(1, 100) <= u64::from(now.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let jitter = now.jitter.as_micros() as u64;
                    let extra = Duration::from_micros(rng.range(0, jitter));
                    let due = Instant::now() + now.delay + extra;
                    if held_tx.send((due, frame.to_vec())).is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// Sends each frame `held` gives it when it is due, earliest first.
fn send_when_due(to: &SyncDevice, held: &mpsc::Receiver<(Instant, Vec<u8>)>) {
    let mut queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut order = 0;
    loop {
        let next = queue.peek().map(|Reverse((due, ..))| *due);
        let wait = next.map_or(Duration::from_secs(3600), |due| {
            due.saturating_duration_since(Instant::now())
        });
        match held.recv_timeout(wait) {
            Ok((due, frame)) => {
                order += 1;
                queue.push(Reverse((due, order, frame)));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while let Some(Reverse((due, ..))) = queue.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, _, frame))) = queue.pop() else {
                break;
            };
            if to.send(&frame).is_err() {
                return;
            }
        }
    }
}
