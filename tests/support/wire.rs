//! A TCP proxy that reads the PostgreSQL protocol a client sends through it and counts its
//! exchanges with the server: what the round trips of a transaction are, seen from outside the
//! driver (`round_trips`). Each `Sync` and each simple `Query` is answered by one
//! `ReadyForQuery`, so each is one exchange. A `Sync` with nothing before it since the last one
//! is a ping; a simple `Query` of `BEGIN` is a `BEGIN` sent on its own.
//!
//! The client must not ask for TLS (`sslmode=disable`): the proxy reads the stream in clear.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the clients have sent since the proxy started or since the last `take`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections opened through the proxy.
    pub connections: u64,
    /// Messages the server answers with a `ReadyForQuery`: `Sync`s and simple `Query`s.
    pub exchanges: u64,
    /// `Sync`s with nothing before them: pings.
    pub pings: u64,
    /// Simple `Query`s of `BEGIN`: transactions begun with a round trip of their own.
    pub begins_alone: u64,
}

pub struct WireCount {
    pub port: u16,
    counts: Arc<Mutex<Counts>>,
    accept: tokio::task::JoinHandle<()>,
}

impl WireCount {
    /// Listens on a free port of 127.0.0.1 and forwards to `target` (host:port).
    pub async fn start(target: &str) -> WireCount {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port for the proxy");
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Mutex::new(Counts::default()));
        let target = target.to_string();
        let accept = {
            let counts = counts.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(&target).await else { continue };
                    counts.lock().unwrap().connections += 1;
                    let counts = counts.clone();
                    tokio::spawn(carry(client, server, counts));
                }
            })
        };
        WireCount { port, counts, accept }
    }

    pub fn counts(&self) -> Counts {
        *self.counts.lock().unwrap()
    }

    /// The counts so far, and zero from now on.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl Drop for WireCount {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways, reading the client's half as it goes.
async fn carry(client: TcpStream, server: TcpStream, counts: Arc<Mutex<Counts>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut reader = Reader::default();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            reader.read(&chunk[..n], &counts);
            if server_write.write_all(&chunk[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// The client's stream, message by message: the first message (the startup packet) has no type
/// byte, every later one has.
#[derive(Default)]
struct Reader {
    buffer: Vec<u8>,
    started: bool,
    /// Whether anything but a `Sync` came since the last `Sync`.
    work_since_sync: bool,
}

impl Reader {
    fn read(&mut self, bytes: &[u8], counts: &Mutex<Counts>) {
        self.buffer.extend_from_slice(bytes);
        loop {
            if !self.started {
                let Some(length) = self.buffer.get(..4).map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize) else { return };
                if self.buffer.len() < length {
                    return;
                }
                self.buffer.drain(..length);
                self.started = true;
                continue;
            }
            let Some(length) = self.buffer.get(1..5).map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize) else { return };
            if self.buffer.len() < 1 + length {
                return;
            }
            let message: Vec<u8> = self.buffer.drain(..1 + length).collect();
            let mut counts = counts.lock().unwrap();
            match message[0] {
                b'S' => {
                    counts.exchanges += 1;
                    if !self.work_since_sync {
                        counts.pings += 1;
                    }
                    self.work_since_sync = false;
                }
                b'Q' => {
                    counts.exchanges += 1;
                    let text = String::from_utf8_lossy(&message[5..]);
                    if text.trim_end_matches('\0').trim().eq_ignore_ascii_case("BEGIN") {
                        counts.begins_alone += 1;
                    }
                }
                b'X' => {}
                _ => self.work_since_sync = true,
            }
        }
    }
}
