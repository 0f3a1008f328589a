//! Draining a server on SIGTERM: what is in flight finishes, nothing new starts, and the process
//! exits within a bound (`shutdown_timeout_seconds`).
//!
//! `server::serve` stops accepting (the listener closes, so a new connection is refused) and
//! calls `stop`: each HTTP connection is told to finish the request it is in and close, and each
//! WebSocket (`ws`) sends a close frame with 1001 (Going Away), so its client knows to reconnect
//! elsewhere rather than report an error. Each of them holds a `Hold` until it has ended; the
//! server waits for the last one, or for the bound, whichever comes first.

use std::sync::Arc;
use tokio::sync::watch;

/// The close code a WebSocket is sent when the server shuts down (RFC 6455: the endpoint is
/// going away).
pub const CLOSE_GOING_AWAY: u16 = 1001;

#[derive(Clone)]
pub struct Drain {
    stopping: Arc<watch::Sender<bool>>,
    /// Every `Hold` is a receiver of this; it is closed once the last one is dropped.
    holds: Arc<watch::Sender<()>>,
}

/// Something that must end before the server does (a connection, a WebSocket session).
pub struct Hold {
    _held: watch::Receiver<()>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl Drain {
    pub fn new() -> Drain {
        Drain { stopping: Arc::new(watch::channel(false).0), holds: Arc::new(watch::channel(()).0) }
    }

    pub fn hold(&self) -> Hold {
        Hold { _held: self.holds.subscribe() }
    }

    /// Tells every holder to finish.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once `stop` was called (at once if it already was).
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    }

    /// Resolves once every `Hold` is dropped.
    pub async fn finished(&self) {
        self.holds.closed().await;
    }

    /// Holds not yet dropped.
    pub fn holding(&self) -> usize {
        self.holds.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn finished_waits_for_the_last_hold_and_stopped_for_stop() {
        let drain = Drain::new();
        let (first, second) = (drain.hold(), drain.hold());
        let stopped = tokio::spawn(drain.stopped());
        assert_eq!(drain.holding(), 2);
        assert!(tokio::time::timeout(Duration::from_millis(50), drain.finished()).await.is_err(), "two holds left");
        drain.stop();
        stopped.await.unwrap();
        drop(first);
        assert!(tokio::time::timeout(Duration::from_millis(50), drain.finished()).await.is_err(), "one hold left");
        drop(second);
        tokio::time::timeout(Duration::from_secs(1), drain.finished()).await.expect("none left");
        // A late subscriber of `stopped` is told at once.
        tokio::time::timeout(Duration::from_secs(1), drain.stopped()).await.expect("already stopped");
    }
}
