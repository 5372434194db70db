//! The client side of resumable sessions (`playhouse_protocol::ResumeGrant` documents the
//! wire): what a session keeps, how a new connection takes it over, and the backoff between
//! attempts.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use playhouse_protocol::{
    Capabilities, ClientCodec, ClientFrame, CodecConfig, Encoder, ErrorCode, MOVE_MSG_ID,
    MoveNotice, RESUME_MSG_ID, ResumeGrant, ResumeRequest, ResumeStreams, read_count,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::codec::FramedRead;

use crate::config::ReconnectPolicy;

/// A byte stream of any transport.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

/// A connection, type-erased so a session can move from one transport's stream to another's.
pub(crate) type BoxIo = Pin<Box<dyn Io>>;

/// A connection being opened.
pub(crate) type Dialing = Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>>;

/// Opens a new connection to the server that holds the session.
#[derive(Clone)]
pub(crate) enum Dialer {
    /// The application's dialer of one place
    /// ([`Connector::connect_with`](crate::Connector::connect_with)): it cannot be told to dial
    /// elsewhere, so it cannot follow a move.
    Fixed(Arc<dyn Fn() -> Dialing + Send + Sync>),
    /// Dials the endpoint (`host:port`) it is given: what the connector was given, then
    /// wherever the server moved the session.
    Endpoint {
        dial: Arc<dyn Fn(&str) -> Dialing + Send + Sync>,
        /// Where the session lives now.
        endpoint: Arc<str>,
    },
}

impl Dialer {
    /// Opens a connection to where the session lives now.
    pub(crate) fn dial(&self) -> Dialing {
        match self {
            Dialer::Fixed(dial) => dial(),
            Dialer::Endpoint { dial, endpoint } => dial(endpoint),
        }
    }

    /// The endpoint dialed, when the connector knows it.
    pub(crate) fn endpoint(&self) -> Option<Arc<str>> {
        match self {
            Dialer::Fixed(_) => None,
            Dialer::Endpoint { endpoint, .. } => Some(Arc::clone(endpoint)),
        }
    }

    /// Dials `to` from now on; `false` when this dialer cannot dial elsewhere.
    pub(crate) fn move_to(&mut self, to: Arc<str>) -> bool {
        match self {
            Dialer::Fixed(_) => false,
            Dialer::Endpoint { endpoint, .. } => {
                *endpoint = to;
                true
            }
        }
    }
}

/// The reading half of a connection, framed.
pub(crate) type Reader = FramedRead<ReadHalf<BoxIo>, ClientCodec>;
/// The writing half of a connection.
pub(crate) type Writer = WriteHalf<BoxIo>;

/// What a connection needs to resume its session elsewhere.
#[derive(Clone)]
pub(crate) struct ResumeSetup {
    pub(crate) dial: Dialer,
    pub(crate) policy: ReconnectPolicy,
    /// Bounds one attempt (dial plus handshake); zero: only the resume window bounds it.
    pub(crate) attempt_timeout: Duration,
}

impl std::fmt::Debug for ResumeSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeSetup")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A resumable session as the client keeps it.
#[derive(Debug)]
pub(crate) struct ClientSession {
    pub(crate) grant: ResumeGrant,
    pub(crate) streams: ResumeStreams<ClientFrame>,
}

impl ClientSession {
    /// The session the server granted; `logged` are the frames sent since the authenticate
    /// request (the server counts them too).
    pub(crate) fn start(grant: ResumeGrant, logged: Vec<ClientFrame>) -> Self {
        let mut streams = ResumeStreams::new(grant.ack_every);
        for frame in logged {
            streams.sent(frame);
        }
        ClientSession { grant, streams }
    }
}

/// How a resume attempt on a new connection ended.
pub(crate) enum Handshake {
    /// The server took the connection; it had received this many of our frames.
    Resumed {
        reader: Reader,
        writer: Writer,
        server_received: u64,
    },
    /// The server no longer has the session.
    Lost,
    /// The session's stage moved while we were away: it resumes at this endpoint.
    Moved(Arc<str>),
}

/// Dials and asks to resume: hello (with `capabilities`), then `@Resume@`, then waits for the
/// answer. Frames after the answer (the replay) are left in `reader` for the connection task.
pub(crate) async fn handshake(
    dial: &Dialer,
    codec: CodecConfig,
    capabilities: Capabilities,
    request: ResumeRequest,
) -> io::Result<Handshake> {
    let stream = dial.dial().await?;
    let (read, mut writer) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read, ClientCodec::new(codec));
    let mut out = BytesMut::new();
    let mut encoder = ClientCodec::new(codec);
    for frame in [
        ClientFrame::hello(0, capabilities),
        ClientFrame::resume(1, request),
    ] {
        encoder.encode(frame, &mut out).map_err(io::Error::other)?;
    }
    writer.write_all_buf(&mut out).await?;
    writer.flush().await?;
    loop {
        let frame = match reader.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Err(io::Error::other(error.to_string())),
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
        };
        if frame.msg_id == MOVE_MSG_ID
            && let Some(notice) = MoveNotice::from_payload(&frame.payload)
        {
            return Ok(Handshake::Moved(Arc::from(notice.endpoint)));
        }
        if frame.msg_id != RESUME_MSG_ID || frame.msg_seq != 1 {
            if frame.is_control() {
                continue; // a heartbeat echo, say
            }
            return Err(io::Error::other("a data frame before the resume answer"));
        }
        if frame.error_code != ErrorCode::SUCCESS {
            tracing::debug!(code = %frame.error_code, "the server cannot resume the session");
            return Ok(Handshake::Lost);
        }
        let server_received = read_count(&frame.payload)
            .ok_or_else(|| io::Error::other("a resume answer without a count"))?;
        return Ok(Handshake::Resumed {
            reader,
            writer,
            server_received,
        });
    }
}

/// Exponential backoff with jitter (see [`ReconnectPolicy`]).
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: ReconnectPolicy,
    next: Duration,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(policy: ReconnectPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            next: policy.initial_delay,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next.min(self.policy.max_delay);
        self.next = base.saturating_mul(2).min(self.policy.max_delay);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = u64::try_from(base.as_micros() / 2).unwrap_or(u64::MAX);
        base + Duration::from_micros(self.rng % (half + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
            jitter_seed: None,
        };
        let mut backoff = Backoff::new(policy, 42);
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        let bases = [100, 200, 400, 800, 800, 800];
        for (delay, base) in delays.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(
                *delay >= base && *delay <= base + base / 2,
                "{delay:?} vs {base:?}"
            );
        }
        // The same seed, the same delays; another seed, others.
        let mut again = Backoff::new(policy, 42);
        assert_eq!(
            (0..6).map(|_| again.next_delay()).collect::<Vec<_>>(),
            delays
        );
        let mut other = Backoff::new(policy, 7);
        assert_ne!(
            (0..6).map(|_| other.next_delay()).collect::<Vec<_>>(),
            delays
        );
    }

    /// Jitter keeps varying along one client's attempts (a generator stuck on one value would
    /// make clients that dropped together retry together forever).
    #[test]
    fn jitter_varies_from_one_attempt_to_the_next() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_millis(800),
            max_delay: Duration::from_millis(800),
            jitter_seed: None,
        };
        for seed in [1, 42, 0xdead_beef] {
            let mut backoff = Backoff::new(policy, seed);
            let mut delays: Vec<Duration> = (0..2000).map(|_| backoff.next_delay()).collect();
            // Late in a long run too: a generator that decays into a short cycle fails here.
            let mut tail = delays.split_off(1000);
            tail.sort();
            tail.dedup();
            assert!(tail.len() >= 900, "seed {seed}: {} distinct", tail.len());
        }
    }

    /// A zero delay (retry at once) is a valid policy, not a division by zero.
    #[test]
    fn a_zero_delay_policy_retries_at_once() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            jitter_seed: None,
        };
        let mut backoff = Backoff::new(policy, 9);
        for _ in 0..4 {
            assert_eq!(backoff.next_delay(), Duration::ZERO);
        }
    }
}
