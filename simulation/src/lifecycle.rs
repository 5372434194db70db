//! The close path, checked from the stages' side: what a graceful stop must do to them.
//!
//! Every stage of the simulated application (rooms, relays, clocks) and every actor in one
//! reports to its server boot's [`StageBook`]: a stage created, an actor joined, each
//! `on_destroy`. Checked as it happens, on every close path (a stage closing itself, its
//! idle timeout, a stop):
//!
//! * a stage's or an actor's `on_destroy` runs at most once;
//! * a stage's `on_destroy` comes after that of every actor still in it (they are told
//!   first).
//!
//! And when a Play server's graceful stop returns ([`StageBook::check_stop`]): every stage
//! that was open when the stop began ran `on_destroy` exactly once, before the shutdown
//! deadline, and so did every actor in it. A stop that never sends its stages a close (they
//! run until the deadline and are aborted) fails here. No stage of the application stalls
//! its close, so every one is checked: only a stage whose own code outlives the deadline may
//! be aborted without being told.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::trace::{Trace, now};

/// What one stage did.
#[derive(Debug)]
struct StageEntry {
    /// Its type and id, for messages.
    name: String,
    /// `on_create` ran.
    created: bool,
    /// When each `on_destroy` ran (once, or never yet).
    destroyed: Vec<Duration>,
    /// The actors that joined it, by serial: when each `on_destroy` ran.
    actors: BTreeMap<u64, Vec<Duration>>,
}

#[derive(Debug, Default)]
struct Book {
    next_stage: u64,
    next_actor: u64,
    stages: BTreeMap<u64, StageEntry>,
    /// The stage each joined actor is in, by actor serial.
    joined: BTreeMap<u64, u64>,
    /// When the stop began, and the stages open then.
    stop: Option<(Duration, Vec<u64>)>,
}

/// The lifecycle of every stage and actor of one Play server boot. Cheap to clone; shared by
/// the boot's stage and actor factories (`Send + Sync`).
#[derive(Clone, Debug)]
pub struct StageBook {
    trace: Trace,
    /// The server's name, for the trace.
    server: String,
    book: Arc<Mutex<Book>>,
}

/// A stage's handle on its boot's [`StageBook`].
#[derive(Clone, Debug)]
pub struct StageLog {
    book: StageBook,
    ticket: u64,
}

/// An actor's handle on its boot's [`StageBook`]: a serial, unique in the boot.
#[derive(Clone, Debug)]
pub struct ActorLog {
    book: StageBook,
    serial: u64,
}

impl StageBook {
    /// A book for Play server `server`, recording violations in `trace`.
    pub fn new(trace: &Trace, server: &str) -> StageBook {
        StageBook {
            trace: trace.clone(),
            server: server.to_owned(),
            book: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A stage of type `stage_type`, id `stage_id`, being built.
    pub fn stage(&self, stage_type: &str, stage_id: i64) -> StageLog {
        let mut book = self.lock();
        book.next_stage += 1;
        let ticket = book.next_stage;
        book.stages.insert(
            ticket,
            StageEntry {
                name: format!("{stage_type} {stage_id}"),
                created: false,
                destroyed: Vec::new(),
                actors: BTreeMap::new(),
            },
        );
        StageLog {
            book: self.clone(),
            ticket,
        }
    }

    /// An actor being built.
    pub fn actor(&self) -> ActorLog {
        let mut book = self.lock();
        book.next_actor += 1;
        ActorLog {
            book: self.clone(),
            serial: book.next_actor,
        }
    }

    /// The graceful stop begins now: the stages open now are the ones it must close.
    pub fn stop_began(&self) {
        let mut book = self.lock();
        let open = book
            .stages
            .iter()
            .filter(|(_, stage)| stage.created && stage.destroyed.is_empty())
            .map(|(ticket, _)| *ticket)
            .collect();
        book.stop = Some((now(), open));
    }

    /// The graceful stop returned; its deadline was `deadline` (simulated time): every stage
    /// open when it began ran `on_destroy` exactly once before the deadline, and so did every
    /// actor in it. Records what it closed in the trace.
    pub fn check_stop(&self, deadline: Duration) {
        let book = self.lock();
        let Some((began, open)) = &book.stop else {
            return;
        };
        let mut problems = Vec::new();
        let (mut closed, mut told) = (0, 0);
        for ticket in open {
            let stage = &book.stages[ticket];
            let on_time = |times: &[Duration]| matches!(times, [at] if *at <= deadline);
            if on_time(&stage.destroyed) {
                closed += 1;
            } else {
                problems.push(format!(
                    "{}: on_destroy {}",
                    stage.name,
                    ran(&stage.destroyed)
                ));
            }
            for (serial, times) in &stage.actors {
                // Actors that had left before the stop are not the stop's.
                if times.first().is_some_and(|at| at < began) {
                    continue;
                }
                if on_time(times) {
                    told += 1;
                } else {
                    problems.push(format!(
                        "{}: actor {serial}'s on_destroy {}",
                        stage.name,
                        ran(times)
                    ));
                }
            }
        }
        self.trace.record(
            &self.server,
            format_args!(
                "stop closed {closed} of {} stage(s), told {told} actor(s)",
                open.len()
            ),
        );
        if !problems.is_empty() {
            self.trace.violation(
                &self.server,
                format!(
                    "a graceful stop begun at {}ms (deadline {}ms) left its stages unclosed: {}",
                    began.as_millis(),
                    deadline.as_millis(),
                    problems.join("; ")
                ),
            );
        }
    }
}

fn millis(times: &[Duration]) -> Vec<u128> {
    times.iter().map(Duration::as_millis).collect()
}

/// When an `on_destroy` ran, in words.
fn ran(times: &[Duration]) -> String {
    match times {
        [] => "never ran".to_owned(),
        times => format!("ran at {:?}ms", millis(times)),
    }
}

impl StageLog {
    /// `on_create` ran.
    pub fn created(&self) {
        if let Some(stage) = self.book.lock().stages.get_mut(&self.ticket) {
            stage.created = true;
        }
    }

    /// `actor` joined the stage (`on_post_join_stage`).
    pub fn joined(&self, actor: &ActorLog) {
        let mut book = self.book.lock();
        book.joined.insert(actor.serial, self.ticket);
        if let Some(stage) = book.stages.get_mut(&self.ticket) {
            stage.actors.insert(actor.serial, Vec::new());
        }
    }

    /// The stage's `on_destroy` runs now: once, after every actor still in it was told.
    pub fn destroyed(&self) {
        let problem = {
            let mut book = self.book.lock();
            let Some(stage) = book.stages.get_mut(&self.ticket) else {
                return;
            };
            stage.destroyed.push(now());
            let untold: Vec<u64> = stage
                .actors
                .iter()
                .filter(|(_, times)| times.is_empty())
                .map(|(serial, _)| *serial)
                .collect();
            if stage.destroyed.len() > 1 {
                Some(format!(
                    "{}: on_destroy ran again (at {:?}ms)",
                    stage.name,
                    millis(&stage.destroyed)
                ))
            } else if !untold.is_empty() {
                Some(format!(
                    "{}: on_destroy ran before its actors {untold:?} were told",
                    stage.name
                ))
            } else {
                None
            }
        };
        if let Some(problem) = problem {
            self.book.trace.violation(&self.book.server, problem);
        }
    }
}

impl ActorLog {
    /// The actor's `on_destroy` runs now (once, if it had joined a stage; an actor built only
    /// to authenticate is destroyed without joining).
    pub fn destroyed(&self) {
        let problem = {
            let mut book = self.book.lock();
            let Some(ticket) = book.joined.get(&self.serial).copied() else {
                return;
            };
            let Some(stage) = book.stages.get_mut(&ticket) else {
                return;
            };
            let times = stage.actors.entry(self.serial).or_default();
            times.push(now());
            (times.len() > 1).then(|| {
                format!(
                    "{}: actor {}'s on_destroy ran again (at {:?}ms)",
                    stage.name,
                    self.serial,
                    millis(times)
                )
            })
        };
        if let Some(problem) = problem {
            self.book.trace.violation(&self.book.server, problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_must_close_every_open_stage_once_before_its_deadline() {
        let trace = Trace::new();
        let book = StageBook::new(&trace, "play-1");
        let closed = book.stage("Room", 1);
        let open = book.stage("Room", 2);
        let never_created = book.stage("Room", 3);
        let (a, b, passer) = (book.actor(), book.actor(), book.actor());
        closed.created();
        open.created();
        closed.joined(&a);
        open.joined(&b);
        passer.destroyed();
        a.destroyed();
        closed.destroyed();
        assert!(trace.violations().is_empty(), "{:?}", trace.violations());
        book.stop_began();
        book.check_stop(Duration::from_secs(2));
        let violations = trace.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("Room 2"), "{violations:?}");
        assert!(!violations[0].contains("Room 3"), "{violations:?}");
        drop(never_created);
        b.destroyed();
        open.destroyed();
        book.check_stop(Duration::from_secs(2));
        assert_eq!(trace.violations().len(), 1, "closed now");
    }

    #[test]
    fn on_destroy_twice_or_before_the_actors_is_a_violation() {
        let trace = Trace::new();
        let book = StageBook::new(&trace, "play-1");
        let stage = book.stage("Clock", 1);
        let actor = book.actor();
        stage.created();
        stage.joined(&actor);
        stage.destroyed();
        assert_eq!(trace.violations().len(), 1, "the actor was not told first");
        actor.destroyed();
        actor.destroyed();
        stage.destroyed();
        assert_eq!(trace.violations().len(), 3, "{:?}", trace.violations());
    }
}
