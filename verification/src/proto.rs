//! The verification messages, generated from `proto/test_messages.proto` at build time
//! (package `playhouse.verification`; each message's wire id is its short type name).

#![allow(missing_docs, unreachable_pub, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/playhouse.verification.rs"));
