//! Trace ids across the mesh: a W3C `traceparent`-shaped context
//! (`00-<32 hex trace id>-<16 hex span id>-01`) carried in the route header's `traceparent`
//! field, so the log lines of every server one call crosses can be joined on `trace_id`.
//!
//! A message sent while a trace is current (a handler or stage handling a traced message;
//! see [`TraceContext::scope`]) continues it with a new span id; any other message starts a
//! trace. Replies and liveness messages carry none. Receivers log the trace id on their
//! handling spans. Old servers ignore the field (protobuf), and a message without it is
//! simply untraced.
//!
//! An exporter of spans (the `otlp` feature of `playhouse`) registers a [`SpanSource`] with
//! [`TraceContext::set_span_source`]: a message sent inside an exported span of the current
//! trace then names that span as its parent, so the receiver's span hangs under it. Without
//! one, nothing changes (one atomic load per message sent).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::OnceLock;

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The exported span current on this thread, as a trace context (its trace id and span id),
/// if there is one (see [`TraceContext::set_span_source`]).
pub type SpanSource = fn() -> Option<TraceContext>;

static SPAN_SOURCE: OnceLock<SpanSource> = OnceLock::new();

/// One hop of a trace: the trace it belongs to and this hop's span.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

thread_local! {
    /// Each thread's SplitMix64 state, seeded once from std's random hash keys.
    static RANDOM: std::cell::Cell<u64> =
        std::cell::Cell::new(RandomState::new().hash_one(std::time::SystemTime::now()));
}

/// 64 bits that differ from call to call, never 0 (SplitMix64: ids need to be unlikely to
/// collide, not unguessable; every request sent makes some, so no clock read or hash each).
fn random_u64() -> u64 {
    RANDOM.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).max(1)
    })
}

impl TraceContext {
    /// A new trace.
    pub fn new_root() -> TraceContext {
        let trace_id = (u128::from(random_u64()) << 64) | u128::from(random_u64());
        TraceContext {
            trace_id,
            span_id: random_u64(),
        }
    }

    /// The next hop of this trace: same trace id, a new span id.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: random_u64(),
        }
    }

    /// The trace current on this task ([`TraceContext::scope`]), if any.
    pub fn current() -> Option<TraceContext> {
        CURRENT.try_with(|t| *t).ok()
    }

    /// A context from its ids (`None` if either is zero, which W3C calls invalid).
    pub fn from_ids(trace_id: u128, span_id: u64) -> Option<TraceContext> {
        (trace_id != 0 && span_id != 0).then_some(TraceContext { trace_id, span_id })
    }

    /// The trace id as a number.
    pub fn trace_id_u128(&self) -> u128 {
        self.trace_id
    }

    /// This hop's span id as a number (the parent span of whoever receives it).
    pub fn span_id_u64(&self) -> u64 {
        self.span_id
    }

    /// Registers where [`TraceContext::for_send`] finds the exported span current when a
    /// message is sent (once per process; later calls are ignored).
    pub fn set_span_source(source: SpanSource) {
        let _ = SPAN_SOURCE.set(source);
    }

    /// What a message sent now carries: the current trace's next hop, or a new trace. With a
    /// [`SpanSource`], the exported span current now, when it belongs to the current trace
    /// (or there is none): the receiver's span then continues it as its child.
    pub fn for_send() -> TraceContext {
        let current = TraceContext::current();
        if let Some(source) = SPAN_SOURCE.get()
            && let Some(span) = source()
            && current.is_none_or(|c| c.trace_id == span.trace_id)
        {
            return span;
        }
        current.map_or_else(TraceContext::new_root, |t| t.child())
    }

    /// Runs `future` with this trace current (messages it sends continue the trace).
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// Parses a `traceparent` (version 00; an all-zero id is invalid).
    pub fn parse(traceparent: &str) -> Option<TraceContext> {
        // `00-` 32 digits `-` 16 digits `-` 2 digits: read at fixed places (every mesh
        // request that reaches a stage carries one).
        let text = traceparent.as_bytes();
        if text.len() != 55 || &text[..3] != b"00-" || text[35] != b'-' || text[52] != b'-' {
            return None;
        }
        hex_value(&text[53..])?;
        let trace_id = hex_value(&text[3..35])?;
        let span_id = u64::try_from(hex_value(&text[36..52])?).ok()?;
        TraceContext::from_ids(trace_id, span_id)
    }

    /// The `traceparent` form (sampled flag set).
    pub fn traceparent(&self) -> String {
        // Every request sent carries one: written into a buffer of its length, then copied
        // into a string of that capacity (no formatting machinery, one allocation).
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
        hex_into(&mut text[3..35], self.trace_id);
        hex_into(&mut text[36..52], u128::from(self.span_id));
        String::from(std::str::from_utf8(&text).expect("hex digits are ASCII"))
    }

    /// The trace id, 32 hex digits (what log lines carry as `trace_id`).
    pub fn trace_id(&self) -> String {
        let mut text = [b'0'; 32];
        hex_into(&mut text, self.trace_id);
        String::from(std::str::from_utf8(&text).expect("hex digits are ASCII"))
    }
}

/// Writes the low `out.len()` hex digits of `value` into `out`, most significant first.
/// The value of up to 32 hex digits (either case); `None` if any is not one.
fn hex_value(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |value, &digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return None,
        };
        Some(value << 4 | u128::from(nibble))
    })
}

fn hex_into(out: &mut [u8], mut value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_the_w3c_form_in_lowercase_hex() {
        let context =
            TraceContext::from_ids(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331).unwrap();
        assert_eq!(
            context.traceparent(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(context.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        let small = TraceContext::from_ids(1, 2).unwrap();
        assert_eq!(
            small.traceparent(),
            "00-00000000000000000000000000000001-0000000000000002-01"
        );
    }

    #[test]
    fn new_traces_do_not_repeat_and_are_valid() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let root = TraceContext::new_root();
            assert!(TraceContext::parse(&root.traceparent()).is_some());
            assert!(seen.insert(root.trace_id_u128()), "a trace id repeated");
        }
    }

    #[test]
    fn traceparents_round_trip_and_children_keep_the_trace() {
        let root = TraceContext::new_root();
        let text = root.traceparent();
        assert_eq!(text.len(), 55);
        assert_eq!(TraceContext::parse(&text), Some(root));
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.traceparent(), root.traceparent());
        assert_ne!(TraceContext::new_root().trace_id(), root.trace_id());
        let not_hex = format!("{}g{}", &text[..10], &text[11..]);
        let sign = format!("{}+{}", &text[..36], &text[37..]);
        let dash = format!("{}x{}", &text[..35], &text[36..]);
        let flags = format!("{}-0z", &text[..52]);
        let long = format!("{text}-");
        for bad in ["", "01-", &text[..54], &text.replace("00-", "01-")] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        for bad in [&not_hex, &sign, &dash, &flags, &long] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        let upper = text.to_uppercase();
        assert_eq!(TraceContext::parse(&upper), Some(root), "{upper}");
        let zero = format!("00-{}-{}-01", "0".repeat(32), "1".repeat(16));
        assert_eq!(TraceContext::parse(&zero), None);
    }

    #[tokio::test]
    async fn a_scope_makes_a_trace_current() {
        assert_eq!(TraceContext::current(), None);
        let root = TraceContext::new_root();
        let seen = root.scope(async { TraceContext::for_send() }).await;
        assert_eq!(seen.trace_id(), root.trace_id());
        assert_ne!(TraceContext::for_send().trace_id(), root.trace_id());
    }
}
