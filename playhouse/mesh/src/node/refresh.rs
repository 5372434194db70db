//! The node and the directory: publishing this server, reading who else is up, and
//! (re)connecting or dropping peers to match; on a timer, and sooner when asked.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::shared::Shared;
use crate::config::{DIRECTORY_RETRY, DIRECTORY_RETRY_MAX};
use crate::directory::DirectoryError;

impl Shared {
    /// Publishes this server, reads the directory and (re)connects or drops peers (see
    /// [`Mesh::refresh`](super::Mesh::refresh)).
    pub(super) async fn refresh(&self) -> Result<(), DirectoryError> {
        let ttl = self.config.directory_ttl;
        let info = self.info();
        let listed = async {
            self.directory.publish(&info, ttl).await?;
            self.directory.list().await
        };
        let list = match listed.await {
            Ok(list) => list,
            Err(error) => {
                self.directory_failed.store(true, Ordering::Relaxed);
                return Err(error);
            }
        };
        let now = tokio::time::Instant::now();
        if self.directory_failed.swap(false, Ordering::Relaxed) {
            self.center.directory_back(now);
        }
        let link = &self.link;
        let (changed, removed) = self
            .center
            .update(list, now, ttl, |id| link.is_connected(id));
        for server in removed {
            self.lost().remove(&server.server_id);
            tracing::info!(peer = %server.server_id, "mesh peer left the directory");
            self.link.disconnect(&server.server_id);
            self.cache.fail_target(&server.server_id);
        }
        for server in changed {
            tracing::debug!(peer = %server.server_id, address = %server.address, "mesh peer");
            self.lost().remove(&server.server_id);
            self.link.connect(&server.server_id, &server.address);
        }
        Ok(())
    }

    /// Refreshes the directory on a task, unless such a refresh is already under way.
    pub(super) fn refresh_soon(self: &Arc<Self>) {
        if self.refresh_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let _ = shared.refresh().await;
            shared.refresh_pending.store(false, Ordering::Release);
        });
    }
}

/// Refreshes every `refresh_interval`; after a failure, sooner (from [`DIRECTORY_RETRY`],
/// doubling up to [`DIRECTORY_RETRY_MAX`]) until the directory answers, so the server is
/// back in it within one retry step of the directory coming back (e.g. an empty Redis
/// restart), not a whole interval later.
pub(super) async fn refresh_loop(shared: Arc<Shared>, mut healthy: bool) {
    let period = shared.config.refresh_interval;
    let max_retry = DIRECTORY_RETRY_MAX.min(period);
    let mut retry = DIRECTORY_RETRY.min(max_retry);
    loop {
        let wait = if healthy { period } else { retry };
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match shared.refresh().await {
            Ok(()) => {
                if !healthy {
                    tracing::info!("directory reachable again; this server is published");
                }
                healthy = true;
                retry = DIRECTORY_RETRY.min(max_retry);
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(%error, "directory refresh failed; retrying");
                } else {
                    tracing::debug!(%error, "directory refresh failed again");
                    retry = (retry * 2).min(max_retry);
                }
                healthy = false;
            }
        }
    }
}
