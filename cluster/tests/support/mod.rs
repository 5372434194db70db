//! Records the checker tests write their histories from.

#![allow(dead_code, unreachable_pub)]

use playhouse_cluster::history::Record;

/// When the histories start (ms).
pub const T0: u64 = 1_000_000;

/// `player`'s epoch 1 starts at [`T0`] with room 1 on play-1.
pub fn login(player: &str, resumable: bool) -> Record {
    Record::Login {
        player: player.to_owned(),
        epoch: 1,
        resumable,
        play: "play-1".to_owned(),
        stage: 1,
        t: T0,
    }
}

/// `player`'s `Add` number `seq`, sent at `sent` and done `took` ms later: applied with the
/// player's tally `ptally`, or failed with `code`.
pub fn add(
    player: &str,
    seq: u64,
    sent: u64,
    took: u64,
    ptally: Option<u64>,
    code: Option<u16>,
) -> Record {
    Record::Add {
        player: player.to_owned(),
        epoch: 1,
        seq,
        sent,
        done: sent + took,
        ptally,
        code,
    }
}
