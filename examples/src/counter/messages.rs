//! The messages of the counter game. A real game generates these from `.proto` files with
//! prost-build (`enable_type_names()` writes the `prost::Name` impls); here they are written
//! out so the example stands alone.

/// The login: the player's name (sent under the server's authenticate message id).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Login {
    /// The player's name; empty names are refused.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// A click: adds one to the room's counter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Click {}

/// The count after a click: the reply to the clicker, and a broadcast to the room.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Clicked {
    /// The room's count after this click.
    #[prost(uint64, tag = "1")]
    pub count: u64,
    /// Who clicked.
    #[prost(string, tag = "2")]
    pub by: String,
}

/// The room's timer, once a second: the count and the seconds the room has run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tick {
    /// The room's count.
    #[prost(uint64, tag = "1")]
    pub count: u64,
    /// Seconds since the room was created.
    #[prost(uint64, tag = "2")]
    pub seconds: u64,
}

macro_rules! named {
    ($($name:ident),*) => {
        $(impl prost::Name for $name {
            const NAME: &'static str = stringify!($name);
            const PACKAGE: &'static str = "counter";
        })*
    };
}
named!(Login, Click, Clicked, Tick);
