//! The framework commands a Play server answers (create / get-or-create / destroy stage),
//! generated from `proto/route_header.proto`. The route header itself is the node's business:
//! senders and receivers see it as a [`Route`](crate::route::Route).

pub use crate::wire::{
    CreateStageReq, CreateStageRes, DestroyStageReq, DestroyStageRes, GetOrCreateStageReq,
    GetOrCreateStageRes,
};
