//! SessionResume: a connector that opts in to resumable sessions (`ConnectorConfig::resume`)
//! rides out a dropped connection. Over TCP, TLS and WebSocket the socket is cut under it
//! while the stage streams numbered pushes and requests are running, either from the client's
//! side (over TCP the connector's own socket, over TLS and WebSocket the client-facing end of a
//! relay) or from the server's side (the relay closes the server-facing end first). The client
//! must see `Reconnecting` then `Resumed` and no disconnect, every push once and in order,
//! every request answered once with its own reply; and the stage, asked afterwards, must have
//! handled each request once and seen no drop. Two cuts in a row hold too. A resume with a
//! token the server never issued, or a forged one, gets SESSION_LOST (23); a connector that
//! does not opt in never sees a grant or an acknowledgement on the wire; past the resume
//! window (a temporary Play server with a short one) the session is lost on the client:
//! `Lost`, and the pending request fails with SessionLost.

mod cut_run;
mod cutting;
mod tokens;
mod watch;
mod window;
mod wire;

use std::time::Duration;

use cut_run::cut_run;
use cutting::{Run, Side, Transport};
use tokens::{forged_token, unknown_token};
use window::past_the_window;
use wire::wire;

use crate::runner::{Category, TestCase};

/// The SessionResume category (stage ids 27000..).
pub(super) fn category() -> Category {
    let slow = Duration::from_secs(30);
    Category {
        name: "SessionResume",
        base: 27_000,
        tests: vec![
            TestCase::new("Tcp_ClientCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(1, Transport::Tcp, Side::Client)))
            })
            .timeout(slow),
            TestCase::new("Tls_ClientCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(2, Transport::Tls, Side::Client)))
            })
            .timeout(slow),
            TestCase::new("WebSocket_ClientCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(3, Transport::WebSocket, Side::Client)))
            })
            .timeout(slow),
            TestCase::new("Tcp_ServerCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(4, Transport::Tcp, Side::Server)))
            })
            .timeout(slow),
            TestCase::new("Tls_ServerCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(5, Transport::Tls, Side::Server)))
            })
            .timeout(slow),
            TestCase::new("WebSocket_ServerCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(6, Transport::WebSocket, Side::Server)))
            })
            .timeout(slow),
            TestCase::new("Tcp_TwoClientCutsInARow_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(
                    t,
                    Run::new(7, Transport::Tcp, Side::Client).cuts(2),
                ))
            })
            .timeout(slow),
            TestCase::new(
                "WebSocket_TwoServerCutsInARow_NothingLostNothingTwice",
                |t| {
                    Box::pin(cut_run(
                        t,
                        Run::new(8, Transport::WebSocket, Side::Server).cuts(2),
                    ))
                },
            )
            .timeout(slow),
            TestCase::new("Resume_UnknownToken_SessionLost", |t| {
                Box::pin(unknown_token(t))
            }),
            TestCase::new("Resume_ForgedToken_SessionLost_SessionUnharmed", |t| {
                Box::pin(forged_token(t))
            }),
            TestCase::new("NotOptedIn_NoGrantNoAckOnTheWire", |t| {
                Box::pin(wire(t, false))
            }),
            TestCase::new("OptedIn_GrantAndAcksOnTheWire", |t| Box::pin(wire(t, true))),
            TestCase::new("PastTheWindow_Lost_PendingRequestFailsSessionLost", |t| {
                Box::pin(past_the_window(t))
            }),
        ],
    }
}
