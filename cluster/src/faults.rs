//! The faults, and their schedule from a seed.
//!
//! Network faults are `nft` rules in one namespace (see [`crate::net`]), or a Play server's
//! link forwarder holding frames back and duplicating them ([`crate::impair`]: the kernel
//! here has no `sch_netem`); process faults are signals to one node's pid. Loss is `nft`'s
//! `numgen random`.

use std::time::Duration;

use crate::rng::Rng;

/// One kind of fault; each hits one Play server (or Redis, or the client's connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Client and Play server cannot reach each other, both ways.
    Partition,
    /// What the client sends to the Play server is dropped; the other way works.
    OneWay,
    /// What the Play server sends to the client is dropped (replies and pushes); the other
    /// way works, so the server goes on handling what the client sends.
    OneWayBack,
    /// The Play server is cut from the rest of the mesh (API server, other Play server),
    /// both ways; clients still reach it.
    MeshPartition,
    /// What the Play server sends to the API server is dropped (pongs and replies), not what
    /// it receives.
    MeshOneWay,
    /// 20% of the Play server's packets are dropped, both ways.
    Loss,
    /// The Play server is frozen (SIGSTOP), then thawed (SIGCONT).
    Stop,
    /// The Play server is killed (SIGKILL) and started again at the heal.
    Kill,
    /// Redis is killed and started again, empty, at the heal.
    RedisWipe,
    /// The client's TCP connections to the Play server are destroyed (`ss -K`).
    Cut,
    /// The Play server drains (SIGTERM to `play-node`): its rooms move, live and with their
    /// players, to the other Play server; it exits at the drain deadline
    /// ([`DRAIN_SECS`]) and is started again at the heal.
    Drain,
    /// The Play server's link holds every frame 200 ms, plus up to 100 ms more at random per
    /// frame (both ways), so frames also overtake each other.
    Delay,
    /// 10% of the Play server's frames are sent twice, and every frame is held 0–40 ms at
    /// random (reordered).
    Duplicate,
}

/// The Play servers' drain deadline (`PLAYHOUSE_DRAIN_SECS`): players without a resumable
/// session are relayed to their room's new server until then, and closed with 25
/// StageDrained at it.
pub const DRAIN_SECS: u64 = 6;

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 13] = [
        Kind::Partition,
        Kind::OneWay,
        Kind::OneWayBack,
        Kind::MeshPartition,
        Kind::MeshOneWay,
        Kind::Loss,
        Kind::Stop,
        Kind::Kill,
        Kind::RedisWipe,
        Kind::Cut,
        Kind::Drain,
        Kind::Delay,
        Kind::Duplicate,
    ];

    /// Its name in the history and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::OneWay => "one-way",
            Kind::OneWayBack => "one-way-back",
            Kind::MeshPartition => "mesh-partition",
            Kind::MeshOneWay => "mesh-one-way",
            Kind::Loss => "loss",
            Kind::Stop => "stop",
            Kind::Kill => "kill",
            Kind::RedisWipe => "redis-wipe",
            Kind::Cut => "cut",
            Kind::Drain => "drain",
            Kind::Delay => "delay",
            Kind::Duplicate => "duplicate",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the target stops answering without closing anything: the mesh's liveness
    /// must declare it down, which takes its heartbeat timeout, so these are held longer.
    pub fn silent(self) -> bool {
        matches!(
            self,
            Kind::Partition
                | Kind::OneWayBack
                | Kind::MeshPartition
                | Kind::MeshOneWay
                | Kind::Stop
        )
    }

    /// What a link-impairing kind does to the link (nothing for the other kinds).
    pub fn impairment(self) -> crate::impair::Impairment {
        use crate::impair::Impairment;
        match self {
            Kind::Delay => Impairment {
                delay: Duration::from_millis(200),
                jitter: Duration::from_millis(100),
                ..Impairment::default()
            },
            Kind::Duplicate => Impairment {
                jitter: Duration::from_millis(40),
                duplicate: 10,
                ..Impairment::default()
            },
            _ => Impairment::default(),
        }
    }

    /// How long it is held, from the seed.
    fn hold(self, rng: &mut Rng) -> Duration {
        let secs = match self {
            Kind::Cut => 0,
            // The drain's deadline, the stop after it, and a margin: the heal then waits
            // for the process to be gone.
            Kind::Drain => DRAIN_SECS + 3,
            _ if self.silent() => rng.range(7, 12),
            _ => rng.range(3, 8),
        };
        Duration::from_secs(secs)
    }
}

/// The short run's duration (`ci/cluster.sh` without arguments): long enough for every kind
/// once with seed 1.
pub const SHORT_RUN_SECS: u64 = 385;

/// One fault of the schedule.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its number.
    pub id: u64,
    /// What.
    pub kind: Kind,
    /// The Play server it hits (`play-1`, `play-2`); Redis for [`Kind::RedisWipe`].
    pub target: String,
    /// How long it is held before the heal.
    pub hold: Duration,
}

/// The schedule of a run: the kinds in an order from the seed (each once per round), each
/// followed by a quiet gap in which the cluster must recover.
pub fn plan(seed: u64, kinds: &[Kind], budget: Duration, gap: Duration) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut steps = Vec::new();
    let mut used = Duration::ZERO;
    let mut id = 0;
    'rounds: loop {
        let mut round = kinds.to_vec();
        rng.shuffle(&mut round);
        for kind in round {
            let hold = kind.hold(&mut rng);
            if used + hold + gap > budget {
                break 'rounds;
            }
            used += hold + gap;
            id += 1;
            let target = if kind == Kind::RedisWipe {
                "redis".to_owned()
            } else {
                format!("play-{}", rng.range(1, 2))
            };
            steps.push(Step {
                id,
                kind,
                target,
                hold,
            });
        }
        if kinds.is_empty() {
            break;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ci/cluster.sh`'s short run: seed 1, its duration less the warm-up at both ends.
    #[test]
    fn the_short_run_has_every_kind_once() {
        let budget = Duration::from_secs(SHORT_RUN_SECS - 30);
        let steps = plan(1, &Kind::ALL, budget, Duration::from_secs(20));
        let mut kinds: Vec<&str> = steps.iter().map(|s| s.kind.name()).collect();
        kinds.sort_unstable();
        let mut all: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        all.sort_unstable();
        assert_eq!(kinds, all);
    }
}
