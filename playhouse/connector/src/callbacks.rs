//! Event handlers and the bounded callback queue a game loop drains.
//!
//! Everything user code sees (connect / disconnect / push / error events and the replies of
//! callback-form requests) becomes an [`Event`]. In main-thread mode an event waits in a bounded
//! queue until [`Callbacks::run_queued`] (behind `Connector::main_thread_action`) runs it on the
//! caller's thread; otherwise the connection task runs it at once. An event raised on an API
//! caller's stack is never run there synchronously: in direct mode it runs on a spawned task.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use playhouse_protocol::{ErrorCode, Packet};
use tokio::runtime::Handle;

use crate::error::ConnectorError;

/// The completion of a callback-form request.
pub(crate) type ReplyCallback = Box<dyn FnOnce(Result<Packet, ConnectorError>) + Send>;

type ConnectHandler = dyn FnMut(bool) + Send;
type DisconnectHandler = dyn FnMut() + Send;
type SessionHandler = dyn FnMut(SessionEvent) + Send;

/// What happens to a resumable session (see [`ConnectorConfig::resume`](crate::ConnectorConfig::resume)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The connection dropped; the connector is dialing again. Requests stay pending (each
    /// still fails with `RequestTimeout` at its timeout; the server may yet run it) and
    /// pushes are not lost, unless the session is lost.
    Reconnecting,
    /// A new connection took the session over: what the server sent meanwhile follows, once
    /// and in order; unanswered requests were resent if the server never received them.
    Resumed,
    /// The session could not be resumed (the server's resume window passed, its replay buffer
    /// overflowed, or it forgot the session): pending requests fail with
    /// [`ConnectorError::SessionLost`](crate::ConnectorError::SessionLost) and the connection
    /// ends (`on_disconnect`). Authenticate again on a new connection to play on.
    Lost,
    /// The server moved the session's stage to another server (e.g. it drained before a
    /// deploy) and the session resumed there: same guarantees as [`Resumed`](Self::Resumed),
    /// nothing lost or repeated, requests in flight answered once. A followed move reports
    /// [`Reconnecting`](Self::Reconnecting), [`Resumed`](Self::Resumed), then `Moved` (code
    /// that knows only `Resumed` still sees the session come back);
    /// [`Connector::endpoint`](crate::Connector::endpoint) says where it is now, and later
    /// reconnects go there. A connection that cannot follow (no resumable session, or
    /// [`Connector::connect_with`](crate::Connector::connect_with)) ends instead, with
    /// [`ConnectorError::Moved`](crate::ConnectorError::Moved) (and `Lost` for a session).
    Moved,
}
type ReceiveHandler = dyn FnMut(i64, &str, Packet) + Send;
type ErrorHandler = dyn FnMut(i64, &str, ErrorCode, Packet) + Send;

/// Something to tell user code.
pub(crate) enum Event {
    /// `on_connect(ok)`.
    Connect(bool),
    /// `on_disconnect()`.
    Disconnect,
    /// `on_session(event)`: a resumable session reconnecting, resumed, lost, or moved.
    Session(SessionEvent),
    /// `on_receive(stage_id, stage_type, packet)` for a push.
    Receive {
        stage_id: i64,
        stage_type: Arc<str>,
        packet: Packet,
    },
    /// `on_error(stage_id, stage_type, code, request)` for a failed send or callback request.
    Error {
        stage_id: i64,
        stage_type: Arc<str>,
        code: ErrorCode,
        request: Packet,
    },
    /// The completion of a callback-form request.
    Reply {
        callback: ReplyCallback,
        result: Result<Packet, ConnectorError>,
    },
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Connect(ok) => f.debug_tuple("Connect").field(ok).finish(),
            Event::Disconnect => f.write_str("Disconnect"),
            Event::Session(event) => f.debug_tuple("Session").field(event).finish(),
            Event::Receive {
                stage_id, packet, ..
            } => f
                .debug_struct("Receive")
                .field("stage_id", stage_id)
                .field("msg_id", &packet.msg_id)
                .finish(),
            Event::Error {
                stage_id,
                code,
                request,
                ..
            } => f
                .debug_struct("Error")
                .field("stage_id", stage_id)
                .field("code", code)
                .field("msg_id", &request.msg_id)
                .finish(),
            Event::Reply { result, .. } => f.debug_struct("Reply").field("result", result).finish(),
        }
    }
}

/// One registered handler. The outer slot is locked only to swap or clone the `Arc`, the inner
/// mutex while the handler runs, so a handler may replace itself without deadlocking.
type Slot<H> = Mutex<Option<Arc<Mutex<Box<H>>>>>;

/// The five event handlers, the queue, and the delivery mode.
pub(crate) struct Callbacks {
    connect: Slot<ConnectHandler>,
    disconnect: Slot<DisconnectHandler>,
    session: Slot<SessionHandler>,
    receive: Slot<ReceiveHandler>,
    error: Slot<ErrorHandler>,
    queue: Mutex<VecDeque<Event>>,
    capacity: usize,
    main_thread: bool,
    /// Where direct-mode events raised on an API caller's stack run.
    runtime: Option<Handle>,
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("queued", &lock(&self.queue).len())
            .field("capacity", &self.capacity)
            .field("main_thread", &self.main_thread)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, ignoring poisoning: every value guarded here stays consistent across a panic.
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn set<H: ?Sized>(slot: &Slot<H>, handler: Box<H>) {
    *lock(slot) = Some(Arc::new(Mutex::new(handler)));
}

fn get<H: ?Sized>(slot: &Slot<H>) -> Option<Arc<Mutex<Box<H>>>> {
    lock(slot).clone()
}

thread_local! {
    /// Set while `run_queued` runs on this thread, so a callback calling it again is a no-op
    /// instead of a deadlock on its own handler.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

impl Callbacks {
    pub(crate) fn new(main_thread: bool, capacity: usize, runtime: Option<Handle>) -> Self {
        Callbacks {
            connect: Mutex::new(None),
            disconnect: Mutex::new(None),
            session: Mutex::new(None),
            receive: Mutex::new(None),
            error: Mutex::new(None),
            queue: Mutex::new(VecDeque::new()),
            capacity,
            main_thread,
            runtime,
        }
    }

    pub(crate) fn set_connect(&self, handler: Box<ConnectHandler>) {
        set(&self.connect, handler);
    }

    pub(crate) fn set_disconnect(&self, handler: Box<DisconnectHandler>) {
        set(&self.disconnect, handler);
    }

    pub(crate) fn set_session(&self, handler: Box<SessionHandler>) {
        set(&self.session, handler);
    }

    pub(crate) fn set_receive(&self, handler: Box<ReceiveHandler>) {
        set(&self.receive, handler);
    }

    pub(crate) fn set_error(&self, handler: Box<ErrorHandler>) {
        set(&self.error, handler);
    }

    /// From the connection task: queue the event, or run it right here in direct mode.
    pub(crate) fn emit(&self, event: Event) {
        if self.main_thread {
            self.enqueue(event);
        } else {
            self.run_caught(event);
        }
    }

    /// From an API caller's stack: queue the event, or in direct mode run it on a spawned task
    /// (never synchronously inside the call that raised it).
    pub(crate) fn emit_deferred(self: &Arc<Self>, event: Event) {
        if self.main_thread {
            self.enqueue(event);
            return;
        }
        match &self.runtime {
            Some(runtime) => {
                let this = Arc::clone(self);
                drop(runtime.spawn(async move { this.run_caught(event) }));
            }
            // No runtime to run it on: the queue is the only place left.
            None => self.enqueue(event),
        }
    }

    fn enqueue(&self, event: Event) {
        let mut queue = lock(&self.queue);
        if queue.len() >= self.capacity {
            drop(queue);
            tracing::warn!(
                capacity = self.capacity,
                ?event,
                "connector callback queue is full; event dropped"
            );
            return;
        }
        queue.push_back(event);
    }

    /// Runs the events queued when called (not those they queue in turn), returning how many ran.
    pub(crate) fn run_queued(&self) -> usize {
        if DRAINING.with(Cell::get) {
            return 0;
        }
        DRAINING.with(|draining| draining.set(true));
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                DRAINING.with(|draining| draining.set(false));
            }
        }
        let _reset = Reset;

        let mut budget = lock(&self.queue).len();
        let mut ran = 0;
        while budget > 0 {
            budget -= 1;
            // Pop under the lock, run without it: callbacks may call back into the connector.
            let Some(event) = lock(&self.queue).pop_front() else {
                break;
            };
            self.run(event);
            ran += 1;
        }
        ran
    }

    /// Runs an event on the connector's own task: a panicking user callback is logged instead of
    /// taking the connection task down with it.
    fn run_caught(&self, event: Event) {
        if catch_unwind(AssertUnwindSafe(|| self.run(event))).is_err() {
            tracing::error!("a connector callback panicked");
        }
    }

    fn run(&self, event: Event) {
        match event {
            Event::Connect(ok) => {
                if let Some(handler) = get(&self.connect) {
                    (lock(&handler))(ok);
                }
            }
            Event::Disconnect => {
                if let Some(handler) = get(&self.disconnect) {
                    (lock(&handler))();
                }
            }
            Event::Session(event) => {
                if let Some(handler) = get(&self.session) {
                    (lock(&handler))(event);
                }
            }
            Event::Receive {
                stage_id,
                stage_type,
                packet,
            } => {
                if let Some(handler) = get(&self.receive) {
                    (lock(&handler))(stage_id, &stage_type, packet);
                }
            }
            Event::Error {
                stage_id,
                stage_type,
                code,
                request,
            } => {
                if let Some(handler) = get(&self.error) {
                    (lock(&handler))(stage_id, &stage_type, code, request);
                }
            }
            Event::Reply { callback, result } => callback(result),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn queued_events_wait_for_run_queued() {
        let callbacks = Callbacks::new(true, 16, None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        callbacks.set_connect(Box::new(move |ok| lock(&log).push(ok)));
        callbacks.emit(Event::Connect(true));
        callbacks.emit(Event::Connect(false));
        assert!(lock(&seen).is_empty());
        assert_eq!(callbacks.run_queued(), 2);
        assert_eq!(*lock(&seen), vec![true, false]);
        assert_eq!(callbacks.run_queued(), 0);
    }

    #[test]
    fn every_drain_runs_what_was_queued_since_the_last() {
        let callbacks = Callbacks::new(true, 16, None);
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        callbacks.set_disconnect(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        for round in 1..=3 {
            callbacks.emit(Event::Disconnect);
            assert_eq!(callbacks.run_queued(), 1, "drain {round}");
            assert_eq!(count.load(Ordering::SeqCst), round);
        }
    }

    #[test]
    fn events_a_callback_queues_wait_for_the_next_drain() {
        let callbacks = Arc::new(Callbacks::new(true, 16, None));
        let count = Arc::new(AtomicUsize::new(0));
        let (cb, counter) = (Arc::clone(&callbacks), Arc::clone(&count));
        callbacks.set_disconnect(Box::new(move || {
            // Bounded, so that a drain running what it queues ends (and the test fails).
            if counter.fetch_add(1, Ordering::SeqCst) < 10 {
                cb.emit(Event::Disconnect);
            }
        }));
        callbacks.emit(Event::Disconnect);
        assert_eq!(callbacks.run_queued(), 1);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(callbacks.run_queued(), 1);
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_full_queue_drops_new_events() {
        let callbacks = Callbacks::new(true, 2, None);
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        callbacks.set_disconnect(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        for _ in 0..5 {
            callbacks.emit(Event::Disconnect);
        }
        assert_eq!(callbacks.run_queued(), 2);
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn direct_mode_runs_on_emit() {
        let callbacks = Callbacks::new(false, 16, None);
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        callbacks.emit(Event::Reply {
            callback: Box::new(move |result| {
                assert!(matches!(result, Err(ConnectorError::RequestTimeout)));
                counter.fetch_add(1, Ordering::SeqCst);
            }),
            result: Err(ConnectorError::RequestTimeout),
        });
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(callbacks.run_queued(), 0);
    }

    #[test]
    fn a_handler_may_replace_itself_and_reenter() {
        let callbacks = Arc::new(Callbacks::new(true, 16, None));
        let count = Arc::new(AtomicUsize::new(0));
        let (cb, counter) = (Arc::clone(&callbacks), Arc::clone(&count));
        callbacks.set_disconnect(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            // Re-entering the drain is a no-op; replacing the handler takes effect next time.
            assert_eq!(cb.run_queued(), 0);
            let counter = Arc::clone(&counter);
            cb.set_disconnect(Box::new(move || {
                counter.fetch_add(100, Ordering::SeqCst);
            }));
        }));
        callbacks.emit(Event::Disconnect);
        callbacks.emit(Event::Disconnect);
        assert_eq!(callbacks.run_queued(), 2);
        assert_eq!(count.load(Ordering::SeqCst), 101);
    }

    #[test]
    fn a_panicking_callback_on_the_task_is_contained() {
        let callbacks = Callbacks::new(false, 16, None);
        callbacks.set_connect(Box::new(|_| panic!("user bug")));
        callbacks.emit(Event::Connect(true));
        // The handler's mutex is poisoned but still usable.
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        callbacks.set_connect(Box::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        callbacks.emit(Event::Connect(true));
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
