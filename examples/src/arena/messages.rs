//! The arena's messages, generated from `proto/arena.proto` by prost-build (with `protox`, no
//! system `protoc`); the TypeScript page uses the same file.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/arena.rs"));
