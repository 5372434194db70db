//! The workload, run inside the client's namespace by `cluster-driver`: Connector players in
//! `TallyRoom`s (resumable and not) sending one-way `Bump`s and `Add` requests tagged with
//! their sequence numbers; get-or-create races through the API server's HTTP; mesh requests
//! from the API server to the rooms, and from room to room (`Ask`); the Play servers' stage lists (`GET /admin/state`).
//! Rooms that a drain moves are followed ([`crate::rooms`]). Every operation and its outcome
//! goes to the history.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use playhouse_connector::{Connector, ConnectorConfig, Packet, SessionEvent};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::history::{Record, Writer, now_ms};
use crate::rooms::{Room, Rooms};

/// The Connector's request timeout: no request may take longer (plus [`SLACK`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an HTTP call may take: the mesh's request timeout (10 s) plus a margin.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Scheduling slack allowed on top of a timeout.
pub const SLACK: Duration = Duration::from_secs(2);
/// How often each player plays a round (one `Bump`, one `Add`).
const ROUND: Duration = Duration::from_millis(100);
/// Every how many rounds a player's room asks the next slot's room over the mesh.
const ASK_EVERY: u64 = 3;
/// How often the Play servers' stage lists are read.
const STAGES_EVERY: Duration = Duration::from_millis(500);

/// Where the servers are, and for how long to play.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The API server's HTTP address.
    pub api: String,
    /// `(server id, client TCP address)` of each Play server.
    pub plays: Vec<(String, String)>,
    /// `(server id, admin address)` of each Play server.
    pub admins: Vec<(String, String)>,
    /// The Play servers' admin token.
    pub token: String,
    /// Rooms per Play server.
    pub rooms: i64,
    /// How long to play.
    pub duration: Duration,
}

/// One HTTP/1.1 POST with a JSON body; the status and the parsed body, or why there was no
/// answer.
pub async fn post(addr: &str, path: &str, body: &Value) -> Result<(u16, Value), String> {
    let body = body.to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, head).await
}

/// One HTTP/1.1 GET with a bearer token; the status and the parsed body.
pub async fn get(addr: &str, path: &str, token: &str) -> Result<(u16, Value), String> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    exchange(addr, head).await
}

/// Sends `request` on a fresh connection and reads the answer to its end.
async fn exchange(addr: &str, request: String) -> Result<(u16, Value), String> {
    let call = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad response {response:?}"))?;
        let json = response.split("\r\n\r\n").nth(1).unwrap_or("null");
        Ok((status, serde_json::from_str(json).unwrap_or(Value::Null)))
    };
    match tokio::time::timeout(HTTP_TIMEOUT + SLACK, call).await {
        Ok(result) => result,
        Err(_) => Err("no answer".to_owned()),
    }
}

/// One HTTP operation against the API server, recorded.
async fn http_op(history: &Writer, api: &str, op: &str, play: &str, stage: i64) -> Option<Value> {
    let (path, body) = if op == "request" {
        let body = json!({"play_id": play, "stage_id": stage, "msg_id": "Tally"});
        ("/api/stages/request", body)
    } else {
        let body = json!({"play_id": play, "stage_id": stage, "stage_type": "TallyRoom"});
        ("/api/stages/get-or-create", body)
    };
    let sent = now_ms();
    let result = post(api, path, &body).await;
    let done = now_ms();
    let (status, body, error) = match result {
        Ok((status, body)) => (status, body, None),
        Err(error) => (0, Value::Null, Some(error)),
    };
    history.write(&Record::Http {
        op: op.to_owned(),
        play: play.to_owned(),
        stage,
        sent,
        done,
        status,
        created: body["created"].as_bool(),
        code: body["error_code"].as_u64().map(|c| c as u16),
        error,
    });
    (status == 200).then_some(body)
}

/// `"<room> <player> <tag>"` of a `TallyRoom` answer: the player tally and the tag.
fn answer(packet: &Packet) -> Option<(u64, u64)> {
    let text = String::from_utf8_lossy(&packet.payload);
    let mut parts = text.split(' ').skip(1);
    let player = parts.next()?.parse().ok()?;
    let tag = parts.next()?.parse().ok()?;
    Some((player, tag))
}

/// `"<tally> <stage id> <tag>"` of a `Peeked` answer: the stage id, when the tag is `tag`.
fn peeked(packet: &Packet, tag: u64) -> Option<i64> {
    let text = String::from_utf8_lossy(&packet.payload);
    let mut parts = text.split(' ').skip(1);
    let stage = parts.next()?.parse().ok()?;
    (parts.next()?.parse::<u64>().ok()? == tag).then_some(stage)
}

/// One player: logs in to its slot's room, plays rounds until its connection (or session)
/// ends or its slot starts a fresh room, logs in again.
struct Player {
    name: String,
    resumable: bool,
    slot: usize,
}

/// A logged-in player's connector and what its callbacks tell the rounds.
struct Login {
    connector: Connector,
    /// Set when the connection (plain) or the session (resumable) ended.
    ended: Arc<AtomicBool>,
    /// When the session last followed a move (ms; 0: not since last looked at).
    moved: Arc<AtomicU64>,
    room: Room,
}

impl Player {
    fn config(&self) -> ConnectorConfig {
        ConnectorConfig::default()
            .resume(self.resumable)
            .use_main_thread_callbacks(false)
            .request_timeout(REQUEST_TIMEOUT)
            .heartbeat_interval(Duration::from_secs(1))
            .heartbeat_timeout(Duration::from_secs(4))
            .connect_timeout(Duration::from_secs(3))
    }

    /// A connected, authenticated connector for epoch `epoch`, in its slot's room wherever
    /// it lives (the get-or-create's `play_id` says where).
    async fn log_in(
        &self,
        history: &Arc<Writer>,
        api: &str,
        rooms: &Rooms,
        epoch: u64,
    ) -> Option<Login> {
        let mut room = rooms.room(self.slot);
        let created = http_op(history, api, "get_or_create", &room.at, room.stage).await?;
        let at = created["play_id"].as_str().unwrap_or(&room.at).to_owned();
        rooms.located(room.stage, &at);
        room.at = at;
        let tcp = rooms.tcp(&room.at)?;
        let connector = Connector::new(self.config());
        let ended = Arc::new(AtomicBool::new(false));
        let moved = Arc::new(AtomicU64::new(0));
        connector.on_receive({
            let (history, player) = (Arc::clone(history), self.name.clone());
            move |_, _, packet| {
                if let ("Bumped", Some((ptally, seq))) = (&*packet.msg_id, answer(&packet)) {
                    let (player, t) = (player.clone(), now_ms());
                    history.write(&Record::Push {
                        player,
                        epoch,
                        seq,
                        ptally,
                        t,
                    });
                }
            }
        });
        let name = self.name.clone();
        let session = move |event: &str| Record::Session {
            player: name.clone(),
            epoch,
            event: event.to_owned(),
            t: now_ms(),
        };
        connector.on_session({
            let (history, ended, moved, session) = (
                Arc::clone(history),
                Arc::clone(&ended),
                Arc::clone(&moved),
                session.clone(),
            );
            move |event| {
                let name = match event {
                    SessionEvent::Reconnecting => "reconnecting",
                    SessionEvent::Resumed => "resumed",
                    SessionEvent::Lost => {
                        ended.store(true, Ordering::SeqCst);
                        "lost"
                    }
                    SessionEvent::Moved => {
                        // Recorded with where to by the rounds (`Record::Moved`).
                        moved.store(now_ms(), Ordering::SeqCst);
                        return;
                    }
                    _ => "other",
                };
                history.write(&session(name));
            }
        });
        connector.on_disconnect({
            let (history, ended, resumable) =
                (Arc::clone(history), Arc::clone(&ended), self.resumable);
            move || {
                if !resumable {
                    ended.store(true, Ordering::SeqCst);
                }
                history.write(&session("disconnect"));
            }
        });
        let (host, port) = tcp.rsplit_once(':')?;
        let port = port.parse().ok()?;
        connector
            .connect(host, port, room.stage, "TallyRoom")
            .await
            .ok()?;
        let auth = Packet::new("AuthenticateRequest", self.name.clone());
        let logged = tokio::time::timeout(REQUEST_TIMEOUT, connector.authenticate(auth)).await;
        if !matches!(logged, Ok(Ok(_))) {
            connector.disconnect().await;
            return None;
        }
        history.write(&Record::Login {
            player: self.name.clone(),
            epoch,
            resumable: self.resumable,
            play: room.at.clone(),
            stage: room.stage,
            t: now_ms(),
        });
        Some(Login {
            connector,
            ended,
            moved,
            room,
        })
    }

    /// Records a move the session followed since last looked at: where to, from the
    /// connector's endpoint.
    fn followed(&self, history: &Writer, rooms: &Rooms, login: &Login, epoch: u64) {
        let t = login.moved.swap(0, Ordering::SeqCst);
        if t == 0 {
            return;
        }
        let to = login
            .connector
            .endpoint()
            .and_then(|e| rooms.play_at(&e))
            .unwrap_or_else(|| "?".to_owned());
        rooms.located(login.room.stage, &to);
        history.write(&Record::Moved {
            player: self.name.clone(),
            epoch,
            to,
            t,
        });
    }

    /// A stage-to-stage request: asks the player's room to `Peek` another slot's room (a
    /// resumable player the next slot's, often on the same Play server; a plain player the
    /// one half the slots on, on another server when there are two).
    async fn ask(
        &self,
        history: &Writer,
        rooms: &Rooms,
        connector: &Connector,
        epoch: u64,
        tag: u64,
    ) {
        let step = if self.resumable {
            1
        } else {
            1 + rooms.len() / 2
        };
        let Some(room) = rooms.created((self.slot + step) % rooms.len()) else {
            return;
        };
        let sent = now_ms();
        let payload = format!("{} {} {tag}", room.at, room.stage);
        let reply = connector.request(Packet::new("Ask", payload)).await;
        let done = now_ms();
        let (answered, code) = match &reply {
            Ok(packet) => (peeked(packet, tag), None),
            Err(error) => (None, Some(error.code().0)),
        };
        history.write(&Record::Ask {
            player: self.name.clone(),
            epoch,
            tag,
            play: room.at,
            stage: room.stage,
            sent,
            done,
            answered,
            code,
        });
    }

    async fn run(self, history: Arc<Writer>, api: String, rooms: Arc<Rooms>, until: Instant) {
        let mut epoch = 0;
        while Instant::now() < until {
            epoch += 1;
            let Some(login) = self.log_in(&history, &api, &rooms, epoch).await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let connector = &login.connector;
            let ended = &login.ended;
            let current = || rooms.room(self.slot).generation == login.room.generation;
            let mut seq = 0;
            let mut tick = tokio::time::interval(ROUND);
            while Instant::now() < until && !ended.load(Ordering::SeqCst) && current() {
                tick.tick().await;
                self.followed(&history, &rooms, &login, epoch);
                seq += 1;
                let sent = now_ms();
                let code = connector
                    .send(Packet::new("Bump", seq.to_string()))
                    .err()
                    .map(|e| e.code().0);
                let (player, bump_seq) = (self.name.clone(), seq);
                history.write(&Record::Bump {
                    player,
                    epoch,
                    seq: bump_seq,
                    sent,
                    code,
                });
                seq += 1;
                let sent = now_ms();
                let reply = connector.request(Packet::new("Add", seq.to_string())).await;
                let done = now_ms();
                let (ptally, code) = match &reply {
                    Ok(packet) => (answer(packet).map(|a| a.0), None),
                    Err(error) => (None, Some(error.code().0)),
                };
                history.write(&Record::Add {
                    player: self.name.clone(),
                    epoch,
                    seq,
                    sent,
                    done,
                    ptally,
                    code,
                });
                if seq % (2 * ASK_EVERY) == 0 {
                    self.ask(&history, &rooms, connector, epoch, seq / 2).await;
                }
            }
            self.followed(&history, &rooms, &login, epoch);
            if ended.load(Ordering::SeqCst) {
                // Why it ended: what the Connector answers a use of the ended connection.
                if let Err(error) = connector.send(Packet::empty("Gone")) {
                    history.write(&Record::Ended {
                        player: self.name.clone(),
                        epoch,
                        code: error.code().0,
                        t: now_ms(),
                    });
                }
            } else {
                // The last pushes are on their way: wait for them before closing.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            history.write(&Record::Session {
                player: self.name.clone(),
                epoch,
                event: "closing".to_owned(),
                t: now_ms(),
            });
            connector.disconnect().await;
        }
    }
}

/// Reads each Play server's stage list every [`STAGES_EVERY`] until `until`.
async fn stage_lists(
    history: Arc<Writer>,
    admins: Vec<(String, String)>,
    token: String,
    until: Instant,
) {
    let mut tick = tokio::time::interval(STAGES_EVERY);
    while Instant::now() < until {
        tick.tick().await;
        for (play, admin) in &admins {
            let Ok((200, state)) = get(admin, "/admin/state", &token).await else {
                continue;
            };
            let ids = state["stages"]
                .as_array()
                .map(|stages| stages.iter().filter_map(|s| s["id"].as_i64()).collect())
                .unwrap_or_default();
            history.write(&Record::Stages {
                play: play.clone(),
                ids,
                t: now_ms(),
            });
        }
    }
}

/// Plays `workload`, writing to `history`; returns when its duration is over.
pub async fn run(workload: Workload, history: Arc<Writer>) {
    let until = Instant::now() + workload.duration;
    let rooms = Arc::new(Rooms::new(&workload.plays, workload.rooms));
    let mut tasks = Vec::new();
    for slot in 0..rooms.len() {
        let stage = rooms.room(slot).stage;
        for resumable in [true, false] {
            let kind = if resumable { 'r' } else { 'n' };
            let player = Player {
                name: format!("p{stage}{kind}"),
                resumable,
                slot,
            };
            tasks.push(tokio::spawn(player.run(
                Arc::clone(&history),
                workload.api.clone(),
                Arc::clone(&rooms),
                until,
            )));
        }
    }
    for (play, _) in &workload.plays {
        // API-to-stage mesh requests to the rooms of this Play server's slots, wherever they
        // live, one at a time.
        let slots: Vec<usize> = (0..rooms.len())
            .filter(|s| rooms.home(*s) == *play)
            .collect();
        let (history, api, rooms) = (
            Arc::clone(&history),
            workload.api.clone(),
            Arc::clone(&rooms),
        );
        tasks.push(tokio::spawn(async move {
            // The players create the rooms first.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let mut n = 0;
            while Instant::now() < until {
                n += 1;
                // A slot's fresh room is asked once its players have created it.
                if let Some(room) = rooms.created(slots[n % slots.len()]) {
                    http_op(&history, &api, "request", &room.at, room.stage).await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }
    tasks.push(tokio::spawn({
        let rooms = Arc::clone(&rooms);
        async move {
            while Instant::now() < until {
                rooms.rehome();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }));
    tasks.push(tokio::spawn(stage_lists(
        Arc::clone(&history),
        workload.admins.clone(),
        workload.token.clone(),
        until,
    )));
    // Get-or-create races: three calls at once for a fresh id, every few seconds.
    let (history_races, api, plays) = (
        Arc::clone(&history),
        workload.api.clone(),
        workload.plays.clone(),
    );
    tasks.push(tokio::spawn(async move {
        let mut id = 10_000;
        while Instant::now() < until {
            id += 1;
            let play = plays[(id as usize) % plays.len()].0.clone();
            let racers: Vec<_> = (0..3)
                .map(|_| {
                    let (history, api, play) =
                        (Arc::clone(&history_races), api.clone(), play.clone());
                    tokio::spawn(async move { http_op(&history, &api, "race", &play, id).await })
                })
                .collect();
            for racer in racers {
                let _ = racer.await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }));
    for task in tasks {
        let _ = task.await;
    }
}
