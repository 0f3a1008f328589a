//! The transport under GraphQL (issue 17, items 5 and 6c): connections that send their headers or
//! body too slowly, or nothing at all, are closed; open connections are capped per process and per
//! address, with a quick answer past the cap; forwarding headers are believed from trusted proxies
//! only. Each attack is made with raw sockets against the real server, with short timeouts set for
//! the test (the bounds below detect a hang; no test asserts how long something took).

use crate::on_both;
use crate::support::{Backend, TestApp, TestDb, error_code};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for anything the server should do promptly; a hang fails the test.
const BOUND: Duration = Duration::from_secs(15);

fn socket_address(app_address: &str) -> SocketAddr {
    app_address.trim_start_matches("http://").parse().expect("the test app's address")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A raw connection from a chosen loopback address (Linux routes all of 127.0.0.0/8 to `lo`), so
/// one test can play several clients.
async fn connect_from(server: SocketAddr, from: IpAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).expect("bind a loopback source address");
    socket.connect(server).await.expect("the server accepts the TCP connection")
}

/// Everything the server sends until it closes the connection; fails the test if it never does.
async fn read_until_closed(mut stream: impl AsyncReadExt + Unpin, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    // A reset after the server closes is a close too; what arrived before it is kept.
    let closed = tokio::time::timeout(BOUND, stream.read_to_end(&mut received)).await;
    assert!(closed.is_ok(), "the server never closed {what}");
    received
}

/// A client with its own source address and no pooled connections.
fn client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(from).pool_max_idle_per_host(0).timeout(BOUND).build().unwrap()
}

/// A query answered through the server: (status, body).
async fn query(app: &TestApp, client: &reqwest::Client, token: &str) -> (u16, Value) {
    query_at(&app.address, client, token).await
}

async fn query_at(address: &str, client: &reqwest::Client, token: &str) -> (u16, Value) {
    let response = client
        .post(format!("{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": "{ plans { code } }" }))
        .send()
        .await
        .expect("the server answers within the bound");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// Polls until the query is answered 200: a slot frees up once the server has seen a closed
/// socket, which happens on its own schedule.
async fn answered_eventually(app: &TestApp, client: &reqwest::Client) -> Value {
    answered_eventually_at(&app.address, client, &app.service).await
}

async fn answered_eventually_at(address: &str, client: &reqwest::Client, token: &str) -> Value {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let (status, body) = query_at(address, client, token).await;
        if status == 200 {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "still refused: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `bytes` a few at a time, every 100 ms, until the server closes the connection; returns
/// what the server sent.
async fn trickle(stream: TcpStream, head: &[u8], bytes: &'static [u8], what: &str) -> Vec<u8> {
    let (reader, mut writer) = stream.into_split();
    writer.write_all(head).await.unwrap();
    let writing = tokio::spawn(async move {
        for chunk in bytes.chunks(2).cycle() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(chunk).await.is_err() {
                return;
            }
        }
    });
    let received = read_until_closed(reader, what).await;
    writing.abort();
    received
}

/// One whole HTTP/1.1 response with a `content-length`, leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let length = head
            .lines()
            .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
            .expect("a content-length");
        if body.len() >= length {
            return text;
        }
    }
}

const GRAPHQL_BODY: &str = r#"{"query":"{ plans { code } }"}"#;

/// Silent connections, headers that never end (even while bytes keep coming), bodies trickled
/// under the size limit, and idle keep-alive connections are all closed after their timeouts,
/// while a legitimate query made meanwhile is answered.
async fn slow_and_idle_connections_are_closed(backend: Backend) {
    let security =
        credits::app::Security { header_timeout: Duration::from_secs(1), body_timeout: Duration::from_secs(2), ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(backend).await, backend, crate::support::LEDGER_PROGRAM, security).await;
    let server = socket_address(&app.address);
    let from = ip("127.0.0.1");

    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(connect_from(server, from).await);
    }
    let mut attacks = Vec::new();
    for i in 0..10 {
        let stream = connect_from(server, from).await;
        attacks.push(tokio::spawn(async move {
            let head = b"POST /graphql HTTP/1.1\r\nhost: credits\r\ncontent-type: application/json\r\n";
            let received = trickle(stream, head, b"x-slow: header-line-that-never-ends\r\n", &format!("unfinished headers {i}")).await;
            ("headers", received)
        }));
    }
    for i in 0..10 {
        let stream = connect_from(server, from).await;
        attacks.push(tokio::spawn(async move {
            let head =
                "POST /graphql HTTP/1.1\r\nhost: credits\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n{\"query\":\"";
            let received = trickle(stream, head.as_bytes(), b"          ", &format!("slow body {i}")).await;
            ("body", received)
        }));
    }
    let mut kept_alive = Vec::new();
    for _ in 0..5 {
        let mut stream = connect_from(server, from).await;
        let request = format!(
            "POST /graphql HTTP/1.1\r\nhost: credits\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{GRAPHQL_BODY}",
            GRAPHQL_BODY.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(BOUND, read_response(&mut stream)).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "a keep-alive connection's first request is served: {answer}");
        assert!(!answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
        kept_alive.push(stream);
    }

    // Meanwhile the service answers.
    let (status, body) = query(&app, &client_from(from), &app.service).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["plans"].is_array(), "{body}");

    for (i, stream) in silent.into_iter().enumerate() {
        assert!(read_until_closed(stream, &format!("silent connection {i}")).await.is_empty(), "a silent connection gets no answer");
    }
    for (i, stream) in kept_alive.into_iter().enumerate() {
        assert!(read_until_closed(stream, &format!("idle keep-alive connection {i}")).await.is_empty());
    }
    for attack in attacks {
        let (kind, received) = attack.await.unwrap();
        let received = String::from_utf8_lossy(&received);
        match kind {
            "headers" => assert!(received.is_empty(), "no request was read, so no answer: {received}"),
            _ => {
                assert!(received.starts_with("HTTP/1.1 408"), "a body past its deadline is answered 408: {received}");
                assert!(received.contains("\"TIMEOUT\""), "with a code: {received}");
            }
        }
    }
    // The server is none the worse.
    let (status, _) = query(&app, &app.client, &app.service).await;
    assert_eq!(status, 200);
}

/// A body over the size limit sent in chunks (no length to refuse upfront) is still refused, with
/// its code, by the body deadline's reader.
async fn a_chunked_body_over_the_limit_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut stream = connect_from(socket_address(&app.address), ip("127.0.0.1")).await;
    let chunk = "x".repeat(16 * 1024);
    let mut request =
        "POST /graphql HTTP/1.1\r\nhost: credits\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_string();
    for _ in 0..5 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    // The server may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(request.as_bytes()).await;
    let received = String::from_utf8_lossy(&read_until_closed(stream, "an oversized chunked body").await).to_string();
    assert!(received.starts_with("HTTP/1.1 413"), "{received}");
    assert!(received.contains("BAD_USER_INPUT"), "{received}");
}

/// Past the per-address cap a connection is answered 429 at once while other addresses are
/// served; a WebSocket holds its slot for as long as it is open.
async fn connections_per_address_are_capped(backend: Backend) {
    let security = credits::app::Security { max_connections_per_ip: 4, ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(backend).await, backend, crate::support::LEDGER_PROGRAM, security).await;
    let server = socket_address(&app.address);
    let crowded = ip("127.0.0.1");

    // One upgraded WebSocket (sending nothing) and three idle sockets fill the address's slots.
    let url = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut websocket, _) = tokio_tungstenite::connect_async(request).await.expect("the WebSocket connects");
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(connect_from(server, crowded).await);
    }

    let (status, body) = query(&app, &client_from(crowded), &app.service).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(error_code(&body), "TOO_MANY_ATTEMPTS", "{body}");
    let (status, body) = query(&app, &client_from(ip("127.0.0.2")), &app.service).await;
    assert_eq!((status, body["data"]["plans"].is_array()), (200, true), "another address is served: {body}");

    // Closing the WebSocket gives its slot back.
    websocket.close(None).await.unwrap();
    drop(websocket);
    let body = answered_eventually(&app, &client_from(crowded)).await;
    assert!(body["data"]["plans"].is_array(), "{body}");
    drop(idle);
}

/// Past the process's cap every new connection is answered 503 at once; when the idle ones are
/// closed by their header timeout, queries are served again.
async fn connections_per_process_are_capped(backend: Backend) {
    let security = credits::app::Security { max_connections: 16, header_timeout: Duration::from_secs(2), ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(backend).await, backend, crate::support::LEDGER_PROGRAM, security).await;
    let server = socket_address(&app.address);
    let mut idle = Vec::new();
    for i in 0..16u8 {
        idle.push(connect_from(server, IpAddr::from([127, 0, 2, i % 4 + 1])).await);
    }
    let client = client_from(ip("127.0.0.1"));
    let (status, body) = query(&app, &client, &app.service).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "UNAVAILABLE", "{body}");
    let body = answered_eventually(&app, &client).await;
    assert!(body["data"]["plans"].is_array(), "{body}");
    for (i, stream) in idle.into_iter().enumerate() {
        read_until_closed(stream, &format!("idle connection {i}")).await;
    }
}

async fn claim(app: &TestApp, account: &str, forwarded_for: &str) -> Value {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(app.user(account))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({
            "query": "mutation($a: ID!) { redeemCoupon(input: {accountId: $a, code: \"NO-SUCH-CODE\", idempotencyKey: \"k\"}) { amount } }",
            "variables": { "a": account },
        }))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

/// The per-address claim budget: a forwarded address from an untrusted peer is ignored (every
/// claim counts against the peer); from a trusted proxy, two forwarded addresses have a budget
/// each, and entries the client wrote left of the proxy's own are not believed.
async fn forwarded_addresses_count_only_from_trusted_proxies(backend: Backend) {
    let untrusted = credits::app::Security { claims_per_minute_per_ip: 2, ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(backend).await, backend, "arkain", untrusted).await;
    for account in ["a", "b", "c"] {
        app.create_account(account).await;
    }
    assert_eq!(error_code(&claim(&app, "a", "203.0.113.1").await), "COUPON_NOT_FOUND");
    assert_eq!(error_code(&claim(&app, "b", "203.0.113.2").await), "COUPON_NOT_FOUND");
    let spoofed = claim(&app, "c", "203.0.113.3").await;
    assert_eq!(error_code(&spoofed), "TOO_MANY_ATTEMPTS", "the peer's budget, whatever the header says: {spoofed}");

    let trusted = credits::app::Security {
        claims_per_minute_per_ip: 2,
        trusted_proxies: credits::client_address::TrustedProxies::parse(&["127.0.0.1"], Default::default()).unwrap(),
        ..Default::default()
    };
    let app = TestApp::spawn_secured(TestDb::new(backend).await, backend, "arkain", trusted).await;
    for account in ["a", "b", "c", "d", "e", "f", "g"] {
        app.create_account(account).await;
    }
    assert_eq!(error_code(&claim(&app, "a", "203.0.113.1").await), "COUPON_NOT_FOUND");
    assert_eq!(error_code(&claim(&app, "b", "203.0.113.1").await), "COUPON_NOT_FOUND");
    let third = claim(&app, "c", "203.0.113.1").await;
    assert_eq!(error_code(&third), "TOO_MANY_ATTEMPTS", "203.0.113.1 spent its own budget: {third}");
    assert_eq!(error_code(&claim(&app, "d", "203.0.113.2").await), "COUPON_NOT_FOUND", "203.0.113.2 has its own");
    // The client prepends a fresh address; the proxy appends the one it saw, which is what counts.
    let prepended = claim(&app, "e", "198.51.100.7, 203.0.113.1").await;
    assert_eq!(error_code(&prepended), "TOO_MANY_ATTEMPTS", "{prepended}");
    // A malformed hop: the claim counts against the proxy itself, which has a budget of its own.
    assert_eq!(error_code(&claim(&app, "f", "not-an-address").await), "COUPON_NOT_FOUND");
    assert_eq!(error_code(&claim(&app, "g", "203.0.113.2").await), "COUPON_NOT_FOUND");
    app.assert_audit_clean().await;
}

/// `credits serve` with its stderr collected, killed when dropped.
struct Server {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn credits_command(data_dir: &std::path::Path, shell: &str, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(shell)
        .arg(env!("CARGO_BIN_EXE_credits"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CREDITS_AUTH_SECRET")
        .env_remove("CREDITS_CONFIG")
        .env("CREDITS_DATA_DIR", data_dir)
        .env("RUST_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .current_dir(data_dir);
    command
}

/// A typo in `trusted_proxies` stops the start instead of silently trusting nobody (or anybody).
#[test]
fn a_malformed_trusted_proxy_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value) in [("CREDITS_TRUSTED_PROXIES", "10.0.0.0/8, 10.0.0.0/33"), ("CREDITS_TRUSTED_PROXY_HEADER", "x-real-ip")] {
        let out =
            credits_command(dir.path(), "exec \"$0\" \"$@\"", &["serve", "--bind", "127.0.0.1:0"]).env(variable, value).output().unwrap();
        assert!(!out.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("trusted_prox"), "{stderr}");
    }
}

/// Starts the binary under `ulimit -n 1024` and waits for its address.
fn serve_with_1024_descriptors(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (Server, String) {
    use std::io::BufRead;
    let mut command = credits_command(data_dir, "ulimit -n 1024 && exec \"$0\" \"$@\"", &["serve", "--bind", "127.0.0.1:0"]);
    command.envs(env.iter().copied()).stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("credits serve starts");
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (found, address) = std::sync::mpsc::channel();
    let collected = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let port: String = line.split("127.0.0.1:").nth(1).unwrap_or_default().chars().take_while(char::is_ascii_digit).collect();
                let _ = found.send(format!("http://127.0.0.1:{port}"));
            }
            collected.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let server = Server { child, log };
    let address = address.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no address: {}", server.log.lock().unwrap()));
    (server, address)
}

/// The most descriptors a process held while watched, with what they were at that moment
/// (sockets and pipes counted, files by path): what a test that finds the process ran out of
/// them says about where they went.
struct DescriptorPeak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<(usize, String)>,
}

impl DescriptorPeak {
    fn watch(pid: u32) -> DescriptorPeak {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = (0, String::new());
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let (open, kinds) = open_descriptors(pid);
                if open > peak.0 {
                    peak = (open, kinds);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        DescriptorPeak { stop, sampler }
    }

    fn stop(self) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (open, kinds) = self.sampler.join().unwrap();
        format!("{open} descriptors, {kinds}")
    }
}

/// How many descriptors `pid` holds, and of which kind.
fn open_descriptors(pid: u32) -> (usize, String) {
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    let Ok(listed) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return (0, String::new()) };
    for entry in listed.flatten() {
        let target = std::fs::read_link(entry.path()).map(|t| t.display().to_string()).unwrap_or_else(|_| "(gone)".into());
        let kind = match target.split_once(':') {
            Some((kind @ ("socket" | "pipe"), _)) => kind.to_string(),
            _ => target,
        };
        *kinds.entry(kind).or_default() += 1;
    }
    (kinds.values().sum(), format!("{kinds:?}"))
}

/// The reported attack on the real binary with a 1,024 descriptor limit: 1,050 connections from
/// many addresses that send nothing. Before, `accept` ran out of descriptors and legitimate
/// queries timed out. Now the cap is fitted under the limit (with a warning), the surplus is
/// refused at once, a legitimate query gets an answer or a fast refusal, the idle connections
/// are closed by the header timeout, and then queries are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_idle_connections_under_1024_descriptors_do_not_stop_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let token = credits_command(dir.path(), "exec \"$0\" \"$@\"", &["token", "--role", "service"]).output().unwrap();
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let (server, address) = serve_with_1024_descriptors(
        dir.path(),
        &[("CREDITS_HEADER_TIMEOUT_SECONDS", "8"), ("CREDITS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.9")],
    );
    let client = client_from(ip("127.0.0.1"));
    let (status, body) = query_at(&address, &client, &token).await;
    assert_eq!(status, 200, "{body}");

    let target = socket_address(&address);
    let peak = DescriptorPeak::watch(server.child.id());
    let mut idle = Vec::new();
    for i in 0..1050u32 {
        // 105 from each of ten addresses: under the per-address cap, so the total cap is what holds.
        let from = IpAddr::from([127, 0, 1, (i % 10) as u8 + 1]);
        idle.push(connect_from(target, from).await);
    }
    let hurried = reqwest::Client::builder().local_address(ip("127.0.0.1")).timeout(Duration::from_secs(5)).build().unwrap();
    let response = hurried
        .post(format!("{address}/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ plans { code } }" }))
        .send()
        .await
        .expect("a query is answered (served or refused) within 5 s, not left to time out");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    match status {
        200 => assert!(body["data"]["plans"].is_array(), "{body}"),
        503 => assert_eq!(error_code(&body), "UNAVAILABLE", "{body}"),
        other => panic!("{other}: {body}"),
    }

    // Every one of them is closed: the surplus at once, the admitted ones by the header timeout.
    for (i, stream) in idle.into_iter().enumerate() {
        read_until_closed(stream, &format!("idle connection {i}")).await;
    }
    let body = answered_eventually_at(&address, &client, &token).await;
    assert!(body["data"]["plans"].is_array(), "{body}");

    // SIGTERM still stops the server gracefully, an idle keep-alive connection notwithstanding.
    let mut kept_alive = connect_from(target, ip("127.0.0.1")).await;
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: credits\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{GRAPHQL_BODY}",
        GRAPHQL_BODY.len()
    );
    kept_alive.write_all(request.as_bytes()).await.unwrap();
    let answer = tokio::time::timeout(BOUND, read_response(&mut kept_alive)).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut server = server;
    let signalled = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(signalled.success());
    let deadline = std::time::Instant::now() + BOUND;
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit}");
    read_until_closed(kept_alive, "the keep-alive connection at shutdown").await;

    // The reader thread may still be copying the last lines.
    let deadline = std::time::Instant::now() + BOUND;
    while !server.log.lock().unwrap().contains("stopped") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("does not fit under the open-file limit"), "the lowered cap is announced: {log}");
    assert!(log.contains("connections.max=864"), "1,024 less the reserve: {log}");
    assert!(log.contains("at the connection cap"), "{log}");
    let peak = peak.stop();
    assert!(!log.contains("Too many open files"), "the process never ran out of descriptors (its most open: {peak}): {log}");
    assert!(log.contains("stopped"), "{log}");
}

on_both!(
    slow_and_idle_connections_are_closed,
    a_chunked_body_over_the_limit_is_refused,
    connections_per_address_are_capped,
    connections_per_process_are_capped,
    forwarded_addresses_count_only_from_trusted_proxies
);
