//! The Redis directory against a real `redis-server` (`bash ci/redis.sh` installs and starts
//! one on 127.0.0.1:6379; `PLAYHOUSE_REDIS_URL` points elsewhere). Every test writes under its
//! own random key prefix, so runs never collide. The restart test runs a private
//! `redis-server` on a free port, so killing it disturbs no one.
#![cfg(feature = "redis")]

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use playhouse_mesh::{
    Directory, DirectoryError, InboundHandler, Mesh, MeshConfig, RedisDirectory,
    RedisDirectoryConfig, Route, RoutePacket, ServerInfo, ServerState, ServerType, TcpLink,
    TcpLinkConfig,
};
use playhouse_protocol::ErrorCode;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

const HOW_TO_START: &str = "run `bash ci/redis.sh` (installs and starts redis-server on 127.0.0.1:6379) \
     or point PLAYHOUSE_REDIS_URL at a running Redis";

fn redis_url() -> String {
    std::env::var("PLAYHOUSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test or run uses.
fn unique_prefix(test: &str) -> String {
    let nonce = RandomState::new().hash_one((std::process::id(), SystemTime::now()));
    format!("playhouse-test:{test}:{nonce:016x}:")
}

async fn directory_at(url: &str, prefix: &str) -> RedisDirectory {
    let config = RedisDirectoryConfig::new().key_prefix(prefix);
    match RedisDirectory::connect(url, config).await {
        Ok(directory) => directory,
        Err(error) => panic!("no Redis answers at {url} ({error}): {HOW_TO_START}"),
    }
}

async fn connect(prefix: &str) -> RedisDirectory {
    directory_at(&redis_url(), prefix).await
}

/// A plain connection for reading and writing raw keys, independent of the directory.
async fn raw() -> MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("PLAYHOUSE_REDIS_URL is a Redis URL");
    let connecting = client.get_multiplexed_async_connection();
    match tokio::time::timeout(Duration::from_secs(2), connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => panic!("no Redis answers at {url} ({error}): {HOW_TO_START}"),
        Err(_) => panic!("no Redis answers at {url} (timed out): {HOW_TO_START}"),
    }
}

async fn command<T: redis::FromRedisValue>(
    connection: &mut MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(connection)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn info(id: &str, server_type: ServerType, port: u16) -> ServerInfo {
    ServerInfo {
        server_type,
        service_id: match server_type {
            ServerType::Play => 1,
            ServerType::Api => 2,
        },
        server_id: id.to_owned(),
        address: format!("tcp://127.0.0.1:{port}"),
        state: ServerState::Running,
        weight: 100,
        moved_in: Vec::new(),
    }
}

const TTL: Duration = Duration::from_secs(10);

#[tokio::test]
async fn publish_list_remove_round_trip() {
    let prefix = unique_prefix("round-trip");
    let directory = connect(&prefix).await;
    assert!(directory.list().await.unwrap().is_empty());

    let play = info("play-1", ServerType::Play, 5001);
    let api = info("api-1", ServerType::Api, 5002);
    directory.publish(&play, TTL).await.unwrap();
    directory.publish(&api, TTL).await.unwrap();
    assert_eq!(
        directory.list().await.unwrap(),
        vec![api.clone(), play.clone()]
    );

    // Republishing replaces the entry.
    let draining = ServerInfo {
        state: ServerState::Disabled,
        weight: 7,
        ..play.clone()
    };
    directory.publish(&draining, TTL).await.unwrap();
    assert_eq!(
        directory.list().await.unwrap(),
        vec![api.clone(), draining.clone()]
    );

    // Another prefix is another directory.
    let other = connect(&unique_prefix("round-trip-other")).await;
    assert!(other.list().await.unwrap().is_empty());

    directory.remove("play-1").await.unwrap();
    assert_eq!(directory.list().await.unwrap(), vec![api.clone()]);
    directory.remove("never-published").await.unwrap();
    directory.remove("api-1").await.unwrap();
    assert!(directory.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn lists_more_entries_than_one_scan_page() {
    let prefix = unique_prefix("many");
    let directory = connect(&prefix).await;
    let mut expected: Vec<ServerInfo> = (0..250)
        .map(|i| info(&format!("api-{i:03}"), ServerType::Api, 6000 + i))
        .collect();
    for entry in &expected {
        directory.publish(entry, TTL).await.unwrap();
    }
    expected.sort_by(|a, b| a.server_id.cmp(&b.server_id));
    assert_eq!(directory.list().await.unwrap(), expected);
    for entry in &expected {
        directory.remove(&entry.server_id).await.unwrap();
    }
}

#[tokio::test]
async fn the_value_is_the_documented_json_under_prefix_plus_server_id() {
    let prefix = unique_prefix("schema");
    let directory = connect(&prefix).await;
    let mut redis = raw().await;

    directory
        .publish(&info("play-1", ServerType::Play, 5000), TTL)
        .await
        .unwrap();
    let key = format!("{prefix}play-1");
    assert_eq!(directory.key("play-1"), key);
    let value: Option<String> = command(&mut redis, &["GET", &key]).await;
    assert_eq!(
        value.as_deref(),
        Some(
            r#"{"server_type":"play","service_id":1,"server_id":"play-1","address":"tcp://127.0.0.1:5000","state":"running","weight":100}"#
        )
    );
    // Nothing else is written under the prefix.
    let (_, keys): (u64, Vec<String>) = command(
        &mut redis,
        &["SCAN", "0", "MATCH", &format!("{prefix}*"), "COUNT", "1000"],
    )
    .await;
    assert_eq!(keys, vec![key]);

    // A tool that writes the documented JSON joins the directory.
    command::<()>(
        &mut redis,
        &[
            "SET",
            &format!("{prefix}api-9"),
            r#"{"server_type":"api","service_id":2,"server_id":"api-9","address":"tcp://10.0.0.9:7000","state":"disabled","weight":3}"#,
            "PX",
            "10000",
        ],
    )
    .await;
    let listed = directory.list().await.unwrap();
    assert_eq!(
        listed[0],
        ServerInfo {
            server_type: ServerType::Api,
            service_id: 2,
            server_id: "api-9".to_owned(),
            address: "tcp://10.0.0.9:7000".to_owned(),
            state: ServerState::Disabled,
            weight: 3,
            moved_in: Vec::new(),
        }
    );
    assert_eq!(listed.len(), 2);

    // The default prefix is `playhouse:server:`.
    let default = RedisDirectory::connect(&redis_url(), RedisDirectoryConfig::new())
        .await
        .unwrap();
    assert_eq!(default.key_prefix(), "playhouse:server:");
    assert_eq!(default.key("play-1"), "playhouse:server:play-1");

    directory.remove("play-1").await.unwrap();
    directory.remove("api-9").await.unwrap();
}

#[tokio::test]
async fn entries_carry_a_ttl_and_expire_unless_refreshed() {
    let prefix = unique_prefix("ttl");
    let directory = connect(&prefix).await;
    let mut redis = raw().await;

    let long = info("long", ServerType::Play, 5000);
    directory.publish(&long, TTL).await.unwrap();
    let pttl: i64 = command(&mut redis, &["PTTL", &directory.key("long")]).await;
    assert!(
        pttl > 0 && pttl <= TTL.as_millis() as i64,
        "PTTL {pttl} not in (0, {TTL:?}]"
    );

    let short = info("short", ServerType::Api, 5001);
    let ttl = Duration::from_millis(300);
    // Refreshed more often than its TTL, the entry stays.
    for _ in 0..6 {
        directory.publish(&short, ttl).await.unwrap();
        let listed = directory.list().await.unwrap();
        assert!(
            listed.contains(&short),
            "refreshed entry missing: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No longer refreshed, it goes; the other entry stays.
    let last_refresh = Instant::now();
    directory.publish(&short, ttl).await.unwrap();
    loop {
        let listed = directory.list().await.unwrap();
        if !listed.contains(&short) {
            assert_eq!(listed, vec![long.clone()]);
            break;
        }
        assert!(
            last_refresh.elapsed() < Duration::from_secs(5),
            "entry with a {ttl:?} TTL still listed after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        last_refresh.elapsed() >= Duration::from_millis(250),
        "expired too early: {:?}",
        last_refresh.elapsed()
    );
    let exists: i64 = command(&mut redis, &["EXISTS", &directory.key("short")]).await;
    assert_eq!(exists, 0);
    directory.remove("long").await.unwrap();
}

#[tokio::test]
async fn unusable_entries_under_the_prefix_are_skipped() {
    let prefix = unique_prefix("junk");
    let directory = connect(&prefix).await;
    let mut redis = raw().await;
    let good = info("good", ServerType::Play, 5000);
    directory.publish(&good, TTL).await.unwrap();

    let junk = format!("{prefix}junk");
    command::<()>(&mut redis, &["SET", &junk, "not json", "PX", "60000"]).await;
    let partial = format!("{prefix}partial");
    command::<()>(
        &mut redis,
        &["SET", &partial, r#"{"server_id":"partial"}"#, "PX", "60000"],
    )
    .await;
    // Valid JSON under another server's key: its owner could never remove it.
    let misfiled = format!("{prefix}misfiled");
    let other = serde_json::to_string(&info("someone-else", ServerType::Api, 1)).unwrap();
    command::<()>(&mut redis, &["SET", &misfiled, &other, "PX", "60000"]).await;
    // Not a string at all: MGET reads it as nil.
    let hash = format!("{prefix}hash");
    command::<()>(&mut redis, &["HSET", &hash, "field", "value"]).await;
    command::<()>(&mut redis, &["PEXPIRE", &hash, "60000"]).await;

    assert_eq!(directory.list().await.unwrap(), vec![good]);

    command::<()>(&mut redis, &["DEL", &junk, &partial, &misfiled, &hash]).await;
    directory.remove("good").await.unwrap();
}

#[tokio::test]
async fn calls_fail_with_a_backend_error_when_redis_is_unreachable() {
    // Nothing listens on the port of a listener just closed.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let config = RedisDirectoryConfig::new().timeout(Duration::from_millis(500));
    let started = Instant::now();
    let error = RedisDirectory::connect(&url, config.clone())
        .await
        .unwrap_err();
    assert!(matches!(error, DirectoryError::Backend(_)), "{error:?}");

    // Lazy: starts without Redis, each call fails within the timeout.
    let lazy = RedisDirectory::connect_lazy(&url, config).unwrap();
    let error = lazy.list().await.unwrap_err();
    assert!(matches!(error, DirectoryError::Backend(_)), "{error:?}");
    let error = lazy
        .publish(&info("x", ServerType::Api, 1), TTL)
        .await
        .unwrap_err();
    assert!(matches!(error, DirectoryError::Backend(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    assert!(matches!(
        RedisDirectory::connect("not a url", RedisDirectoryConfig::new()).await,
        Err(DirectoryError::Backend(_))
    ));
}

/// Echoes every request.
struct Echo;

impl InboundHandler for Echo {
    fn handle(&self, mesh: &Mesh, packet: RoutePacket) {
        let _ = mesh.reply(&packet.route, ErrorCode::SUCCESS, packet.packet());
    }
}

async fn node(id: &str, directory: RedisDirectory) -> Mesh {
    node_refreshing(id, directory, Duration::from_millis(100), TTL).await
}

async fn node_refreshing(
    id: &str,
    directory: RedisDirectory,
    refresh_interval: Duration,
    directory_ttl: Duration,
) -> Mesh {
    let link = TcpLink::bind(id, "127.0.0.1:0", None, TcpLinkConfig::default())
        .await
        .unwrap();
    let mut config = MeshConfig::new(id, ServerType::Api);
    config.refresh_interval = refresh_interval;
    config.directory_ttl = directory_ttl;
    Mesh::start(config, Arc::new(link), Arc::new(directory), Arc::new(Echo)).await
}

fn header(msg_id: &str) -> Route {
    Route::new(msg_id)
}

#[tokio::test]
async fn two_meshes_find_each_other_through_redis_only() {
    let prefix = unique_prefix("mesh");
    // Separate directories (separate connections): Redis is all the nodes share.
    let a = node("a", connect(&prefix).await).await;
    let b = node("b", connect(&prefix).await).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = a
            .request_with_timeout(
                "b",
                header("Echo"),
                Bytes::from_static(b"over redis"),
                Duration::from_millis(500),
            )
            .await;
        match reply {
            Ok(reply) => break reply,
            Err(error) if Instant::now() > deadline => panic!("a never reached b: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_eq!(&reply.payload[..], b"over redis");
    assert_eq!(reply.route.from(), "b");
    assert_eq!(
        a.servers().get("b").map(|s| s.address),
        Some(b.address().to_owned())
    );

    // The way back works too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b
            .request_with_timeout(
                "a",
                header("Echo"),
                Bytes::new(),
                Duration::from_millis(500),
            )
            .await
        {
            Ok(_) => break,
            Err(error) if Instant::now() > deadline => panic!("b never reached a: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }

    // A graceful stop removes the entry at once; the other node's view follows.
    b.shutdown().await;
    let mut redis = raw().await;
    let exists: i64 = command(&mut redis, &["EXISTS", &format!("{prefix}b")]).await;
    assert_eq!(exists, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.servers().get("b").is_some() {
        assert!(Instant::now() < deadline, "b never left a's view");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private `redis-server` this test may kill; killed when dropped.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    async fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): {HOW_TO_START}"));
        let server = PrivateRedis { port, child };
        let client = redis::Client::open(server.url().as_str()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Ok(mut connection)) = tokio::time::timeout(
                Duration::from_millis(500),
                client.get_multiplexed_async_connection(),
            )
            .await
            {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut connection).await;
                if pong.is_ok() {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "private redis-server on port {port} never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Publishes and lists until both work again, within `limit`.
async fn until_working(directory: &RedisDirectory, entry: &ServerInfo, limit: Duration) {
    let started = Instant::now();
    loop {
        let attempt = async {
            directory.publish(entry, TTL).await?;
            directory.list().await
        };
        match attempt.await {
            Ok(listed) if listed == vec![entry.clone()] => return,
            Ok(listed) => panic!("unexpected list after reconnecting: {listed:?}"),
            Err(error) => assert!(
                started.elapsed() < limit,
                "directory still failing after {limit:?}: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn survives_a_redis_restart_and_killed_connections() {
    let port = free_port();
    let mut redis = PrivateRedis::start(port).await;
    let prefix = unique_prefix("restart");
    let config = RedisDirectoryConfig::new()
        .key_prefix(&prefix)
        .timeout(Duration::from_secs(1));
    let directory = RedisDirectory::connect(&redis.url(), config).await.unwrap();
    let entry = info("play-1", ServerType::Play, 5000);
    directory.publish(&entry, TTL).await.unwrap();

    // Down: calls fail (bounded by the timeout), never hang.
    redis.kill();
    let started = Instant::now();
    assert!(directory.publish(&entry, TTL).await.is_err());
    assert!(directory.list().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3));

    // Back (empty: no persistence): the same directory works again within a few seconds.
    let _restarted = PrivateRedis::start(port).await;
    until_working(&directory, &entry, Duration::from_secs(5)).await;

    // The server drops every client connection: reconnects as well.
    let mut admin = redis::Client::open(redis.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1, "the directory's connection was not killed");
    until_working(&directory, &entry, Duration::from_secs(5)).await;
}

/// Requests `to` from `from` until the peer answers.
async fn until_reachable(from: &Mesh, to: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = from
            .request_with_timeout(to, header("Echo"), Bytes::new(), Duration::from_millis(500))
            .await;
        match reply {
            Ok(_) => return,
            Err(error) if Instant::now() > deadline => {
                panic!("{} never reached {to}: {error}", from.server_id())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Requests from `from` to `to`, one after another, until stopped; every failure is kept.
struct Traffic {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl Traffic {
    fn start(from: &Mesh, to: &str) -> Traffic {
        let stop = Arc::new(tokio::sync::Notify::new());
        let (mesh, to, stopped) = (from.clone(), to.to_owned(), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let (mut sent, mut failures) = (0, Vec::new());
            let stopped = stopped.notified();
            tokio::pin!(stopped);
            loop {
                let request = mesh.request_with_timeout(
                    &to,
                    header("Echo"),
                    Bytes::new(),
                    Duration::from_secs(1),
                );
                tokio::select! {
                    _ = &mut stopped => return (sent, failures),
                    reply = request => {
                        sent += 1;
                        if let Err(error) = reply {
                            failures.push(format!("{} -> {to}: {error}", mesh.server_id()));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Traffic { stop, task }
    }

    /// Stops; returns (requests made, failures).
    async fn stop(self) -> (usize, Vec<String>) {
        self.stop.notify_one();
        self.task.await.unwrap()
    }
}

/// Waits until `keys` all exist, within `limit`; returns how long it took.
async fn until_keys(
    redis: &mut MultiplexedConnection,
    keys: &[String],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let mut args = vec!["EXISTS"];
        args.extend(keys.iter().map(String::as_str));
        let exists: usize = command(redis, &args).await;
        if exists == keys.len() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{keys:?} not all back within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn lost_entries_do_not_cut_live_servers_off() {
    let prefix = unique_prefix("lost");
    // a refreshes often, b seldom: a sees b's entry missing long before b re-publishes it.
    const B_INTERVAL: Duration = Duration::from_secs(2);
    let a = node_refreshing("a", connect(&prefix).await, Duration::from_millis(50), TTL).await;
    let b_started = Instant::now();
    let b = node_refreshing("b", connect(&prefix).await, B_INTERVAL, TTL).await;
    a.refresh().await.unwrap();
    until_reachable(&a, "b").await;
    until_reachable(&b, "a").await;
    let traffic = [Traffic::start(&a, "b"), Traffic::start(&b, "a")];

    // Every entry under the prefix vanishes (what an empty Redis restart or FLUSHALL does to
    // them, without disturbing other users of this Redis), right after b's refresh.
    tokio::time::sleep_until(b_started + B_INTERVAL + Duration::from_millis(300)).await;
    let mut redis = raw().await;
    let keys = [format!("{prefix}a"), format!("{prefix}b")];
    let deleted: usize = command(&mut redis, &["DEL", &keys[0], &keys[1]]).await;
    assert_eq!(deleted, 2);
    // a is back at its next refresh, which finds b missing: b stays routable meanwhile.
    until_keys(&mut redis, &keys[..1], Duration::from_secs(1)).await;
    let deadline = Instant::now() + Duration::from_secs(1);
    while a.servers().unlisted().is_empty() {
        assert!(
            Instant::now() < deadline,
            "a never listed the directory without b"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        a.servers().get("b").map(|s| s.address),
        Some(b.address().to_owned())
    );
    // b is back within its interval.
    until_keys(&mut redis, &keys, B_INTERVAL * 2).await;
    // Some more traffic once both are listed again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for traffic in traffic {
        let (sent, failures) = traffic.stop().await;
        assert!(sent > 10, "only {sent} requests made");
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(a.servers().get("b").is_some() && b.servers().get("a").is_some());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn an_empty_redis_restart_drops_no_live_server_and_both_re_publish_at_once() {
    let port = free_port();
    let mut redis = PrivateRedis::start(port).await;
    let prefix = unique_prefix("empty-restart");
    let directory = || async {
        let config = RedisDirectoryConfig::new()
            .key_prefix(&prefix)
            .timeout(Duration::from_millis(300));
        RedisDirectory::connect(&redis.url(), config).await.unwrap()
    };
    // A long refresh interval: waiting for the next one after Redis is back would take 5 s.
    const INTERVAL: Duration = Duration::from_secs(6);
    let started = Instant::now();
    let a = node_refreshing("a", directory().await, INTERVAL, INTERVAL * 3).await;
    let b = node_refreshing("b", directory().await, INTERVAL, INTERVAL * 3).await;
    a.refresh().await.unwrap();
    until_reachable(&a, "b").await;
    until_reachable(&b, "a").await;
    let traffic = [Traffic::start(&a, "b"), Traffic::start(&b, "a")];

    // Redis dies; the refreshes due at `started + INTERVAL` fail; it comes back empty in
    // between two intervals.
    redis.kill();
    tokio::time::sleep_until(started + INTERVAL + Duration::from_secs(1)).await;
    let restarted = PrivateRedis::start(port).await;
    let mut raw = redis::Client::open(restarted.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys = [format!("{prefix}a"), format!("{prefix}b")];
    let took = until_keys(&mut raw, &keys, Duration::from_secs(6)).await;
    assert!(
        took < Duration::from_secs(3),
        "re-published {took:?} after Redis came back (the next interval was 5 s away)"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for traffic in traffic {
        let (sent, failures) = traffic.stop().await;
        assert!(sent > 10, "only {sent} requests made");
        assert!(failures.is_empty(), "{failures:?}");
    }
    a.shutdown().await;
    b.shutdown().await;
}
