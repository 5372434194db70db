//! Generated protobuf types of `proto/route_header.proto`.
#![allow(missing_docs, unreachable_pub, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/playhouse.mesh.rs"));
