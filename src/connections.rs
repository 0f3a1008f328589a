//! The cap on open connections, per process and per client address.
//!
//! Every open connection holds a file descriptor. Without a cap, a client that opens connections
//! and sends nothing exhausts the process's descriptors: `accept` then fails and legitimate
//! clients wait in the kernel's backlog until they time out. With the cap below the descriptor
//! limit the server keeps accepting: a connection past the cap is answered at once with a short
//! refusal (503, or 429 for one address's cap) and closed, and admitted ones are served.
//!
//! A slot is held by the connection's socket itself ([`Counted`]), so a connection upgraded to a
//! WebSocket keeps its slot until the socket closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Descriptors kept for everything but client connections: the database pool (a SQLite
/// connection holds three: the database, its WAL and shared memory), the listener, the runtime's
/// own, logs, the secret file.
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// Refusals in progress at once (see [`Refusals`]); each holds a descriptor.
pub const REFUSALS_IN_FLIGHT: usize = 32;

/// How long a refused connection may take to send its request's head and read the answer.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// The cap that fits in `descriptor_limit` (the soft `RLIMIT_NOFILE`; none: unlimited or
/// unknown): the configured one, or less, leaving [`RESERVED_DESCRIPTORS`] and the refusals'
/// share. Never below 16, so a tiny limit still serves someone (and the accept loop survives
/// running out of descriptors anyway).
pub fn fit_to_descriptors(configured: usize, descriptor_limit: Option<u64>) -> usize {
    let Some(limit) = descriptor_limit else { return configured };
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS + REFUSALS_IN_FLIGHT as u64);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX)).max(16)
}

/// The soft limit on this process's open files, if there is one.
pub fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The process holds `max_connections` already.
    Full,
    /// This client address holds `max_connections_per_ip` already.
    AddressFull,
}

/// The open connections, counted in total and per client address.
pub struct Admission {
    max_total: usize,
    max_per_address: usize,
    /// Addresses (trusted proxies) held to the total cap only: every user behind them shares
    /// their address.
    exempt: crate::client_address::TrustedProxies,
    open: Mutex<Open>,
    refused: AtomicU64,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize, exempt: crate::client_address::TrustedProxies) -> Arc<Admission> {
        Arc::new(Admission { max_total, max_per_address, exempt, open: Mutex::new(Open::default()), refused: AtomicU64::new(0) })
    }

    /// A slot for a connection from `peer`, released when the returned guard drops.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let peer = peer.to_canonical();
        let capped = !self.exempt.contains(peer);
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let refusal = if open.total >= self.max_total {
            Some(Refusal::Full)
        } else if capped && open.per_address.get(&peer).is_some_and(|n| *n >= self.max_per_address) {
            Some(Refusal::AddressFull)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(open);
            self.note_refusal(peer, refusal);
            return Err(refusal);
        }
        open.total += 1;
        *open.per_address.entry(peer).or_insert(0) += 1;
        Ok(Slot { admission: self.clone(), peer })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).total
    }

    /// A refusal is logged the first time and then once per thousand, so a flood cannot flood the
    /// log too.
    fn note_refusal(&self, peer: IpAddr, refusal: Refusal) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if refused == 1 || refused.is_multiple_of(1000) {
            tracing::warn!(
                client.ip = %peer,
                reason = ?refusal,
                connections.max = self.max_total,
                connections.max_per_ip = self.max_per_address,
                connections.refused = refused,
                "connection refused: at the connection cap"
            );
        }
    }

    fn release(&self, peer: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_address.get_mut(&peer) {
            *count -= 1;
            if *count == 0 {
                open.per_address.remove(&peer);
            }
        }
    }
}

/// One admitted connection's place under the caps.
pub struct Slot {
    admission: Arc<Admission>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.peer);
    }
}

/// A socket that holds its slot until it is dropped, wherever it goes (hyper hands an upgraded
/// connection's socket on to the WebSocket task).
pub struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl Counted {
    pub fn new(stream: TcpStream, slot: Slot) -> Counted {
        Counted { stream, _slot: slot }
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The answer a refused connection gets, in GraphQL's error shape with a code, like every other
/// refusal; `Retry-After` since the cap frees up as connections close.
fn refusal_response(refusal: Refusal) -> Vec<u8> {
    use crate::graphql::error::code;
    let (status, message, code) = match refusal {
        Refusal::Full => ("503 Service Unavailable", "the server is at its connection limit: retry shortly", code::UNAVAILABLE),
        Refusal::AddressFull => {
            ("429 Too Many Requests", "too many open connections from this address: close some, then retry", code::TOO_MANY_ATTEMPTS)
        }
    };
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }).to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The connections being refused. Each is answered once its request's head has arrived (an
/// answer sent before the request confuses HTTP clients), so a refusal holds a descriptor for a
/// moment, or up to [`REFUSAL_TIME`] for a client that sends nothing. At most
/// [`REFUSALS_IN_FLIGHT`] are held: a new one drops the oldest, so a flood of silent connections
/// cannot keep a real client, which sends its request at once, from hearing why it was refused.
#[derive(Default)]
pub struct Refusals {
    in_flight: Mutex<std::collections::VecDeque<(u64, tokio::task::AbortHandle)>>,
    next: AtomicU64,
}

impl Refusals {
    pub fn refuse(self: &Arc<Self>, stream: TcpStream, refusal: Refusal) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if in_flight.len() >= REFUSALS_IN_FLIGHT
            && let Some((_, oldest)) = in_flight.pop_front()
        {
            oldest.abort();
        }
        let refusals = self.clone();
        let task = tokio::spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_TIME, answer(stream, refusal)).await;
            refusals.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|(other, _)| *other != id);
        });
        in_flight.push_back((id, task.abort_handle()));
    }
}

/// Reads the request's head, answers, and reads (discarding) whatever else the client sends until
/// it closes: closing with unread data would reset the connection, and a reset can destroy the
/// answer before the client reads it.
async fn answer(mut stream: TcpStream, refusal: Refusal) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..n]);
    }
    stream.write_all(&refusal_response(refusal)).await?;
    stream.shutdown().await?;
    while stream.read(&mut buffer).await? > 0 {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_address::{ForwardedHeader, TrustedProxies};

    #[test]
    fn the_cap_fits_under_the_descriptor_limit() {
        assert_eq!(fit_to_descriptors(2048, None), 2048);
        assert_eq!(fit_to_descriptors(2048, Some(1024)), 1024 - 128 - 32);
        assert_eq!(fit_to_descriptors(100, Some(1024)), 100);
        assert_eq!(fit_to_descriptors(2048, Some(65_536)), 2048);
        assert_eq!(fit_to_descriptors(2048, Some(50)), 16);
    }

    #[test]
    fn slots_are_counted_per_address_and_in_total_and_released_on_drop() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let admission = Admission::new(4, 2, TrustedProxies::parse(&[proxy.to_string()], ForwardedHeader::XForwardedFor).unwrap());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = admission.admit(a).unwrap();
        let _a2 = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).err(), Some(Refusal::AddressFull));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(admission.admit(mapped).err(), Some(Refusal::AddressFull), "the same address through an IPv6 socket");
        let _b1 = admission.admit(b).unwrap();
        let _p1 = admission.admit(proxy).unwrap();
        assert_eq!(admission.admit(b).err(), Some(Refusal::Full));
        assert_eq!(admission.open(), 4);
        drop(a1);
        assert_eq!(admission.open(), 3);
        let _p2 = admission.admit(proxy).expect("a trusted proxy is held to the total cap only");
        assert_eq!(admission.admit(proxy).err(), Some(Refusal::Full));
    }

    #[test]
    fn refusals_carry_a_status_and_a_code() {
        let full = String::from_utf8(refusal_response(Refusal::Full)).unwrap();
        assert!(full.starts_with("HTTP/1.1 503 "), "{full}");
        let (head, body) = full.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAVAILABLE");
        let address = String::from_utf8(refusal_response(Refusal::AddressFull)).unwrap();
        assert!(address.starts_with("HTTP/1.1 429 ") && address.contains("TOO_MANY_ATTEMPTS"), "{address}");
    }
}
