//! The Redis directory: servers on different machines find each other through one Redis.
//!
//! The schema is public so that other tools (dashboards, scripts, servers in other languages)
//! can read and join the directory:
//!
//! ```text
//! key    playhouse:server:{server_id}            (prefix configurable)
//! value  {"server_type":"play","service_id":1,"server_id":"play-1",
//!         "address":"tcp://10.0.0.5:5000","state":"running","weight":100}
//! write  SET key value PX ttl                    (TTL 10 s by default, refreshed every 3 s)
//! list   SCAN 0 MATCH {prefix}* COUNT 100 ... then MGET the keys found
//! remove DEL key
//! ```
//!
//! Listing never uses `KEYS` (it blocks Redis); entries that vanish between `SCAN` and `MGET`
//! are skipped, and so are values that are not a [`ServerInfo`] (with a warning).

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::directory::{Directory, DirectoryError, ServerInfo};

/// Keys asked for per `SCAN` round trip.
const SCAN_COUNT: usize = 100;
/// Keys fetched per `MGET`, so one huge directory never makes one huge reply.
const MGET_CHUNK: usize = 100;

/// Settings of a [`RedisDirectory`].
///
/// The entry TTL is not here: it is the `ttl` argument of [`Directory::publish`] (the mesh's
/// `MeshConfig::directory_ttl`, 10 s by default).
#[derive(Clone, Debug)]
pub struct RedisDirectoryConfig {
    /// Prepended to a server id to make its key.
    key_prefix: String,
    /// Bound on every call (connect, publish, list, remove).
    timeout: Duration,
}

impl Default for RedisDirectoryConfig {
    fn default() -> Self {
        RedisDirectoryConfig {
            key_prefix: "playhouse:server:".to_owned(),
            timeout: Duration::from_secs(2),
        }
    }
}

impl RedisDirectoryConfig {
    /// The defaults: prefix `playhouse:server:`, timeout 2 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key prefix; a server's key is `prefix + server_id`. Default: `playhouse:server:`.
    /// Servers that should see each other use the same prefix.
    ///
    /// ```
    /// # use playhouse_mesh::RedisDirectoryConfig;
    /// let config = RedisDirectoryConfig::new().key_prefix("staging:server:");
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one call (connect, publish, list, remove) may take before it fails with
    /// [`DirectoryError::Backend`]. Also bounds each connection attempt and each Redis reply.
    /// Default: 2 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use playhouse_mesh::RedisDirectoryConfig;
    /// let config = RedisDirectoryConfig::new().timeout(Duration::from_millis(500));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A [`Directory`] kept in Redis (see the module docs for the schema). Cheap to clone; clones
/// share one multiplexed connection, which reconnects by itself after Redis restarts or drops
/// the connection (the call that saw the failure still fails; later ones succeed).
#[derive(Clone)]
pub struct RedisDirectory {
    /// Multiplexed, reconnecting connection.
    connection: ConnectionManager,
    /// Key prefix, e.g. `playhouse:server:`.
    prefix: String,
    /// `SCAN MATCH` pattern: the prefix with glob characters escaped, then `*`.
    pattern: String,
    /// Bound on every call.
    timeout: Duration,
}

impl fmt::Debug for RedisDirectory {
    // Not the connection: its info may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDirectory")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisDirectory {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`), failing with
    /// [`DirectoryError::Backend`] when the URL is invalid or Redis does not answer within the
    /// configured timeout.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), playhouse_mesh::DirectoryError> {
    /// use playhouse_mesh::{RedisDirectory, RedisDirectoryConfig};
    /// let directory =
    ///     RedisDirectory::connect("redis://127.0.0.1:6379", RedisDirectoryConfig::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str, config: RedisDirectoryConfig) -> Result<Self, DirectoryError> {
        let client = open(url)?;
        // One plain attempt first: the manager retries its first connection with backoff,
        // which would turn "connection refused" into a bare timeout.
        let probe = client.get_multiplexed_async_connection();
        drop(bounded("connect", config.timeout, probe).await?);
        let connecting = ConnectionManager::new_with_config(client, manager_config(&config));
        let connection = bounded("connect", config.timeout, connecting).await?;
        Ok(Self::with_connection(connection, config))
    }

    /// Like [`connect`](Self::connect) but without waiting for Redis: the connection is made
    /// by the first call, so a server can start while Redis is still down. Fails only on an
    /// invalid URL. Must be called within a tokio runtime.
    pub fn connect_lazy(url: &str, config: RedisDirectoryConfig) -> Result<Self, DirectoryError> {
        let client = open(url)?;
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config(&config))
            .map_err(|e| backend("connect", &e))?;
        Ok(Self::with_connection(connection, config))
    }

    fn with_connection(connection: ConnectionManager, config: RedisDirectoryConfig) -> Self {
        RedisDirectory {
            connection,
            pattern: format!("{}*", escape_glob(&config.key_prefix)),
            prefix: config.key_prefix,
            timeout: config.timeout,
        }
    }

    /// The key prefix, e.g. `playhouse:server:`.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of `server_id`'s entry: `prefix + server_id`.
    pub fn key(&self, server_id: &str) -> String {
        format!("{}{server_id}", self.prefix)
    }

    /// Decodes the values found under the prefix, skipping vanished and unusable entries.
    fn decode(&self, keys: &[Vec<u8>], values: Vec<Option<Vec<u8>>>) -> Vec<ServerInfo> {
        let mut list = Vec::with_capacity(values.len());
        for (key, value) in keys.iter().zip(values) {
            // Expired or removed between SCAN and MGET (or not a string).
            let Some(value) = value else { continue };
            let key = String::from_utf8_lossy(key);
            match serde_json::from_slice::<ServerInfo>(&value) {
                // The key names the entry: an entry stored under another server's key could
                // never be removed by its owner, so it is not trusted.
                Ok(info) if key.strip_prefix(self.prefix.as_str()) == Some(&info.server_id) => {
                    list.push(info);
                }
                Ok(info) => tracing::warn!(
                    %key,
                    server_id = %info.server_id,
                    "redis directory: entry's server id does not match its key; skipped"
                ),
                Err(error) => tracing::warn!(
                    %key,
                    %error,
                    "redis directory: unparsable entry skipped"
                ),
            }
        }
        list.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        list
    }
}

impl Directory for RedisDirectory {
    fn publish<'a>(
        &'a self,
        info: &'a ServerInfo,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), DirectoryError>> {
        Box::pin(async move {
            let value =
                serde_json::to_string(info).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
            // PX takes whole, positive milliseconds.
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut connection = self.connection.clone();
            let mut set = redis::cmd("SET");
            set.arg(self.key(&info.server_id))
                .arg(value)
                .arg("PX")
                .arg(ttl_ms);
            bounded("SET", self.timeout, set.query_async(&mut connection)).await
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ServerInfo>, DirectoryError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let read = async {
                let mut keys: Vec<Vec<u8>> = Vec::new();
                // SCAN may return a key more than once.
                let mut seen = HashSet::new();
                let mut cursor = 0_u64;
                loop {
                    let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&self.pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut connection)
                        .await?;
                    keys.extend(batch.into_iter().filter(|key| seen.insert(key.clone())));
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                let mut values = Vec::with_capacity(keys.len());
                for chunk in keys.chunks(MGET_CHUNK) {
                    let batch: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                        .arg(chunk)
                        .query_async(&mut connection)
                        .await?;
                    values.extend(batch);
                }
                Ok((keys, values))
            };
            let (keys, values) = bounded("SCAN/MGET", self.timeout, read).await?;
            Ok(self.decode(&keys, values))
        })
    }

    fn remove<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut del = redis::cmd("DEL");
            del.arg(self.key(server_id));
            bounded("DEL", self.timeout, del.query_async(&mut connection)).await
        })
    }
}

fn open(url: &str) -> Result<redis::Client, DirectoryError> {
    redis::Client::open(url).map_err(|e| backend("invalid url", &e))
}

fn manager_config(config: &RedisDirectoryConfig) -> ConnectionManagerConfig {
    // Reconnect quickly and keep trying at least once a second, so a restarted Redis is
    // picked up within about a refresh interval.
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(config.timeout))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1))
}

/// Runs `call` within `timeout`, mapping a Redis error or the timeout to
/// [`DirectoryError::Backend`].
async fn bounded<T>(
    what: &str,
    timeout: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, DirectoryError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(backend(what, &error)),
        Err(_) => Err(DirectoryError::Backend(format!(
            "redis {what}: no answer within {timeout:?}"
        ))),
    }
}

fn backend(what: &str, error: &redis::RedisError) -> DirectoryError {
    DirectoryError::Backend(format!("redis {what}: {error}"))
}

/// Escapes Redis glob characters so that `SCAN MATCH` treats the prefix literally.
fn escape_glob(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_the_prefix_are_literal() {
        assert_eq!(escape_glob("playhouse:server:"), "playhouse:server:");
        assert_eq!(escape_glob(r"a*b?c[d]e\f^"), r"a\*b\?c\[d\]e\\f\^");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = RedisDirectoryConfig::default();
        assert_eq!(config.key_prefix, "playhouse:server:");
        assert_eq!(config.timeout, Duration::from_secs(2));
    }
}
