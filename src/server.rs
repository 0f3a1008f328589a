//! The accept loop: HTTP/1.1 connections under the connection caps, with a deadline for each
//! request's headers.
//!
//! `axum::serve` has no settings, and its connections wait for headers forever; this is the same
//! loop (hyper under axum, upgrades for WebSockets, graceful shutdown, `ConnectInfo`) with:
//! - the connection caps of `crate::connections`, checked before any byte is read;
//! - hyper's header read timeout: a client must send a request's headers within it, counted from
//!   the connection's start or from the end of the previous response; so it is also how long an
//!   idle keep-alive connection is kept.
//!
//! The body's deadline is `crate::body_timeout`, inside the router.

use crate::connections::{Admission, Counted, Refusals};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// What the loop enforces, from `app::Security`.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub header_timeout: Duration,
    /// Already fitted to the descriptor limit (`connections::fit_to_descriptors`).
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub trusted_proxies: crate::client_address::TrustedProxies,
    /// How long a shutdown waits for in-flight requests and WebSockets (`crate::drain`).
    pub drain_timeout: Duration,
}

pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    drain: crate::drain::Drain,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admission = Admission::new(settings.max_connections, settings.max_connections_per_ip, settings.trusted_proxies.clone());
    let refusals = Arc::new(Refusals::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(settings.header_timeout);
    // On shutdown the drain tells every connection to finish its request and close (and every
    // WebSocket to close, `ws`); each holds the drain until it has, so shutdown can wait for them.
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after_accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                refusals.refuse(stream, refusal);
                continue;
            }
        };
        // Responses larger than a TCP segment (a page of history, a subscription's frames) would
        // otherwise send their tail only after the client's delayed ACK (the same 40 ms stall
        // as the database connections had: docs/benchmarks.md, change 5).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY on a connection");
        }
        let io = TokioIo::new(Counted::new(stream, slot));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let http = http.clone();
        let stopped = drain.stopped();
        let hold = drain.hold();
        tokio::spawn(async move {
            let connection = http.serve_connection(io, service).with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let mut told = false;
            let mut stopped = std::pin::pin!(stopped);
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            // Header timeouts, resets, malformed requests: the client's doing.
                            tracing::debug!(error = %e, client.ip = %peer.ip(), "connection ended with an error");
                        }
                        break;
                    }
                    () = &mut stopped, if !told => {
                        told = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(hold);
        });
    }
    // New connections are refused from here on.
    drop(listener);
    drain.stop();
    let open = drain.holding();
    tracing::info!(open, bound_s = settings.drain_timeout.as_secs(), "draining: finishing in-flight requests, closing WebSockets");
    if tokio::time::timeout(settings.drain_timeout, drain.finished()).await.is_err() {
        tracing::warn!(
            left = drain.holding(),
            bound_s = settings.drain_timeout.as_secs(),
            "drain: shutdown_timeout_seconds passed with connections still open; they are cut"
        );
    }
    Ok(())
}

/// Accept fails when the process is out of descriptors (which the cap should prevent) or a
/// connection was reset before it was accepted. Pausing a little avoids spinning on the former.
async fn pause_after_accept_error(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(error.kind(), ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused) {
        return;
    }
    tracing::warn!(error = %error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
