//! A TCP proxy between the service and its database, for the fault tests that cut connections
//! without stopping the server: `cut` closes every connection it carries and refuses new ones
//! (each accepted socket is closed at once, as a dead link or a restarting load balancer would
//! look to the client) until `heal`. The database never notices anything but clients leaving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    refusing: Arc<AtomicBool>,
    /// Bumped by `cut`: every connection made under an older generation ends.
    generation: watch::Sender<u64>,
    carried: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target` (host:port).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port for the proxy");
        let port = listener.local_addr().unwrap().port();
        let refusing = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let carried = Arc::new(AtomicU64::new(0));
        let target = target.to_string();
        let accept = {
            let refusing = refusing.clone();
            let generation = generation.clone();
            let carried = carried.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let mut ended = generation.subscribe();
                    let born = *ended.borrow_and_update();
                    let target = target.clone();
                    carried.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&target).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = ended.wait_for(|g| *g != born) => {}
                        }
                        // Both sockets drop here: the client sees its connection end mid-use.
                    });
                }
            })
        };
        Proxy { port, refusing, generation, carried, accept }
    }

    /// Ends every connection now and refuses new ones until `heal`.
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Carries new connections again.
    pub fn heal(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }

    /// Connections carried so far (a check that the service really went through the proxy).
    pub fn carried(&self) -> u64 {
        self.carried.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}
