//! The framework commands a Play server answers (create / get-or-create / destroy / move stage, relay a player),
//! generated from `proto/route_header.proto`. The route header itself is the node's business:
//! senders and receivers see it as a [`Route`](crate::route::Route).

pub use crate::wire::{
    ClientBoundFrame, CreateStageReq, CreateStageRes, DestroyStageReq, DestroyStageRes,
    GetOrCreateStageReq, GetOrCreateStageRes, HeldMessage, MoveStageReq, MoveStageRes,
    MoveStatusReq, MovedActor, MovedSession, RelayToClient, RelayToStage, RelayedFrom, RouteHeader,
    relay_to_client,
};
