//! A recording webhook receiver on 127.0.0.1: records every request (path, headers, body, time of
//! receipt) and answers as the test tells it to (status, delay, headers). Also verifies Standard
//! Webhooks signatures independently of Hookline's own code.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone, Debug)]
pub struct Received {
    /// `POST` for a delivery; `OPTIONS` for a CloudEvents handshake.
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The sender's address: one per connection (how many connections a sender opened).
    pub peer: Option<std::net::SocketAddr>,
    /// The status the receiver answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn msg_id(&self) -> &str {
        self.header("webhook-id").unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How to answer one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, delay: Duration::ZERO, headers: Vec::new(), body: "ok".to_owned() }
    }

    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Reply {
        self.body = body.to_string();
        self.header("content-type", "application/json")
    }
}

/// Decides the reply from the request and how many requests with the same `webhook-id` came
/// before it (0 for the first attempt).
pub type Behaviour = Arc<dyn Fn(&Received, usize) -> Reply + Send + Sync>;

struct State {
    received: Vec<Received>,
    per_message: HashMap<String, usize>,
    behaviour: Behaviour,
}

/// How much of each request the receiver keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recording {
    /// Path, every header and the body: what the tests look at.
    Full,
    /// Path, the `webhook-id` header, time, peer and status: what the benchmark's figures use.
    /// The benchmark shares two cores with the server, so a receiver that copies every header
    /// (two allocations each) and every body takes CPU the server would otherwise have.
    Light,
}

pub struct Receiver {
    pub base_url: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop without waiting: the runtime may be shutting down.
        std::mem::drop(handle.stop(false));
    }
}

async fn record(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
    recording: web::Data<Recording>,
) -> HttpResponse {
    let text = |v: &actix_web::http::header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let (headers, body) = match **recording {
        Recording::Full => {
            (req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), text(v))).collect(), body.to_vec())
        }
        Recording::Light => (
            req.headers().get("webhook-id").map(|v| ("webhook-id".to_owned(), text(v))).into_iter().collect(),
            Vec::new(),
        ),
    };
    let received = Received {
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
        peer: req.peer_addr(),
        status: 0,
    };
    let reply = {
        let mut state = state.lock().unwrap();
        let seen = state.per_message.entry(received.msg_id().to_owned()).or_default();
        let before = *seen;
        *seen += 1;
        let reply = (state.behaviour)(&received, before);
        let mut received = received;
        received.status = reply.status;
        state.received.push(received);
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in reply.headers {
        response.insert_header((name, value));
    }
    response.body(reply.body)
}

impl Receiver {
    /// Starts a receiver that answers 200 to everything.
    pub fn start() -> Receiver {
        Receiver::start_with(Arc::new(|_, _| Reply::ok()), 2)
    }

    pub fn start_with(behaviour: Behaviour, workers: usize) -> Receiver {
        Receiver::start_recording(behaviour, workers, Recording::Full)
    }

    /// Like [`Receiver::start_with`], keeping only as much of each request as `recording` says.
    pub fn start_recording(behaviour: Behaviour, workers: usize, recording: Recording) -> Receiver {
        let state =
            Arc::new(Mutex::new(State { received: Vec::new(), per_message: HashMap::new(), behaviour }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let data = web::Data::new(state.clone());
        let recording = web::Data::new(recording);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(recording.clone())
                // Claim-checked payloads go up to the enterprise plan's 20 MiB.
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(record))
        })
        .workers(workers)
        .backlog(4096)
        .max_connection_rate(4096)
        .disable_signals()
        .listen(listener)
        .expect("listening")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { base_url, state, handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = behaviour;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Runs `f` over the requests received from index `from` on, under the lock, without copying
    /// them: for callers that poll often while thousands of requests arrive (the benchmark).
    pub fn inspect_from<T>(&self, from: usize, f: impl FnOnce(&[Received]) -> T) -> T {
        let state = self.state.lock().unwrap();
        f(state.received.get(from..).unwrap_or_default())
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// Waits until at least `n` requests arrived (or panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests within {timeout:?}, got {}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `predicate` holds for the received requests.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        predicate: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if predicate(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; got {} requests",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Verifies a Standard Webhooks signature header against a `whsec_` secret: true when any `v1,`
/// signature matches `HMAC-SHA256(secret, "{id}.{timestamp}.{body}")`.
pub fn verify_signature(secret: &str, received: &Received) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("a whsec_ secret")).expect("base64");
    let (Some(id), Some(timestamp), Some(signatures)) = (
        received.header("webhook-id"),
        received.header("webhook-timestamp"),
        received.header("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&received.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    signatures.split(' ').any(|s| s == expected)
}

/// Verifies a `v1a` (Ed25519) signature of the request with the public key `whpk_…`, as a
/// consumer would.
pub fn verify_ed25519_signature(public_key: &str, received: &Received) -> bool {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let key: [u8; 32] = STANDARD
        .decode(public_key.strip_prefix("whpk_").expect("a whpk_ public key"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let key = VerifyingKey::from_bytes(&key).expect("a valid public key");
    let (Some(id), Some(timestamp), Some(signatures)) = (
        received.header("webhook-id"),
        received.header("webhook-timestamp"),
        received.header("webhook-signature"),
    ) else {
        return false;
    };
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&received.body);
    signatures.split(' ').filter_map(|s| s.strip_prefix("v1a,")).any(|encoded| {
        STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .is_some_and(|signature| key.verify(&signed, &signature).is_ok())
    })
}
