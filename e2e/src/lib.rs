//! Black-box test support: builds and starts the real `hookline` binary on a free port against
//! a fresh database (SQLite in a temp dir, or a database in a throw-away PostgreSQL cluster), with
//! typed helpers for the API.
//!
//! Every database-facing test is written once as `async fn scenario(db: Backend)` and run on both
//! backends with [`both_databases!`].

pub mod browser;
pub mod dashboard;
pub mod fake_stripe;
pub mod postgres;
pub mod receiver;
pub mod s3;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Which database a test server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Instantiates `async fn $name(db: Backend)` as two tests, `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await;
            }
        }
    )*};
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e lives in the workspace").to_path_buf()
}

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// Uses this binary instead of building one (the benchmark runs the release build).
pub fn set_binary(path: PathBuf) {
    let _ = BINARY.set(path);
}

/// The `hookline` binary, built once per test process so a test never runs a stale one.
pub fn binary() -> &'static Path {
    BINARY.get_or_init(|| {
        if let Ok(path) = std::env::var("HOOKLINE_BIN") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "hookline"])
            .current_dir(workspace_root())
            .status()
            .expect("running cargo build -p hookline");
        assert!(status.success(), "cargo build -p hookline failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target"));
        let path = target.join("debug").join("hookline");
        assert!(path.exists(), "{} does not exist after building", path.display());
        path
    })
}

/// A running `hookline serve` with its own data directory and database. Killed on drop.
pub struct TestServer {
    pub base_url: String,
    pub backend: Backend,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    child: Child,
    client: reqwest::Client,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options for starting a server.
#[derive(Default, Clone)]
pub struct ServerOptions {
    pub env: Vec<(String, String)>,
    /// The role to run instead of `serve`: `api` (migrated first, as an operator would).
    pub role: Option<&'static str>,
    /// Whether the server's log (stderr) goes to `server.log` in its data directory
    /// ([`TestServer::log`]) instead of the test's output.
    pub log_to_file: bool,
}

impl ServerOptions {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the server's log to a file the test can read ([`TestServer::log`]).
    pub fn log_to_file(mut self) -> Self {
        self.log_to_file = true;
        self
    }

    /// Runs `hookline api` (the database migrated first) instead of `serve`: no engine in it.
    pub fn api_only(mut self) -> Self {
        self.role = Some("api");
        self
    }
}

/// The binary on a data directory and database, with nothing else from the environment.
fn hookline_command(data_dir: &Path, database_url: &str) -> Command {
    let mut command = Command::new(binary());
    command
        .current_dir(data_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKLINE_DATA_DIR", data_dir)
        .env("HOOKLINE_DATABASE_URL", database_url)
        .env("HOOKLINE_LOG", "warn");
    command
}

/// The URL a starting process prints on its piped stdout after `announce` (within 60 s); the
/// rest of its output is read and dropped, so the process never blocks on a full pipe.
fn announced_url(child: &mut Child, announce: &'static str) -> Option<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(url) = line.strip_prefix(announce) {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).ok()
}

/// The tests' HTTP client for the API. It drops a connection idle for 2 s: the server closes
/// one idle for 5 s (actix-web's keep-alive), and a request sent on a connection the server is
/// closing at that moment fails with `IncompleteMessage` (seen when a test waited for deliveries
/// between two bursts of requests).
fn api_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("the test client's configuration is valid")
}

/// A fresh database URL for one test.
pub fn fresh_database(backend: Backend, data_dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", data_dir.join("hookline.db").display()),
        Backend::Postgres => postgres::cluster().create_database(),
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, ServerOptions::default()).await
    }

    pub async fn start_with(backend: Backend, options: ServerOptions) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let database_url = fresh_database(backend, data_dir.path());
        TestServer::spawn(backend, data_dir, database_url, options)
    }

    /// Starts the binary on an existing data directory and database (e.g. after a restart).
    pub fn spawn(
        backend: Backend,
        data_dir: tempfile::TempDir,
        database_url: String,
        options: ServerOptions,
    ) -> TestServer {
        let role = options.role.unwrap_or("serve");
        if role != "serve" {
            let migrated = hookline_command(data_dir.path(), &database_url)
                .arg("migrate")
                .status()
                .expect("running hookline migrate");
            assert!(migrated.success(), "hookline migrate failed");
        }
        let mut command = hookline_command(data_dir.path(), &database_url);
        command
            .arg(role)
            .env("HOOKLINE_LISTEN", "127.0.0.1:0")
            .env("HOOKLINE_DASHBOARD_DIR", workspace_root().join("frontend/dist"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if options.log_to_file {
            let log = std::fs::File::create(data_dir.path().join("server.log")).expect("creating server.log");
            command.stderr(log);
        }
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("starting hookline");
        let base_url = announced_url(&mut child, "hookline listening on ")
            .unwrap_or_else(|| panic!("hookline did not start within 60 s (backend {backend:?})"));
        TestServer { base_url, backend, data_dir, database_url, child, client: api_client() }
    }

    /// What the server has logged so far (started with [`ServerOptions::log_to_file`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Kills the process and hands back its data directory and database, to start it again.
    pub fn stop(mut self) -> (tempfile::TempDir, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let placeholder = tempfile::tempdir().expect("temp dir");
        (std::mem::replace(&mut self.data_dir, placeholder), self.database_url.clone())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit and returns whether it exited successfully.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<bool> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Starts an extra `hookline worker` process on this server's database and data directory.
    pub fn spawn_worker(&self, options: &ServerOptions) -> ChildGuard {
        ChildGuard(
            self.worker_command(options).stdout(Stdio::null()).spawn().expect("starting hookline worker"),
        )
    }

    /// Like [`TestServer::spawn_worker`], with `HOOKLINE_WORKER_LISTEN` set to a free port:
    /// returns the worker and the base URL of its health and metrics routes.
    pub fn spawn_listening_worker(&self, options: &ServerOptions) -> (ChildGuard, String) {
        let mut command = self.worker_command(options);
        command.env("HOOKLINE_WORKER_LISTEN", "127.0.0.1:0").stdout(Stdio::piped());
        let mut child = command.spawn().expect("starting hookline worker");
        let url = announced_url(&mut child, "hookline worker listening on ");
        let guard = ChildGuard(child);
        (guard, url.expect("the worker did not listen within 60 s"))
    }

    fn worker_command(&self, options: &ServerOptions) -> Command {
        let mut command = hookline_command(self.data_dir.path(), &self.database_url);
        command.arg("worker").stderr(Stdio::inherit());
        for (name, value) in &options.env {
            command.env(name, value);
        }
        command
    }

    /// Runs a `hookline` subcommand against this server's configuration; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = hookline_command(self.data_dir.path(), &self.database_url)
            .args(args)
            .output()
            .expect("running hookline");
        assert!(
            output.status.success(),
            "hookline {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// Creates a tenant through the operator CLI and returns a client with its API key.
    /// A tenant on the enterprise plan (limits out of the way of tests that are not about
    /// limits), with a client holding its API key.
    pub fn tenant(&self, name: &str) -> Client {
        self.tenant_on(name, "enterprise")
    }

    /// A tenant on `plan` (free, pro, enterprise) through the operator CLI.
    pub fn tenant_on(&self, name: &str, plan: &str) -> Client {
        let output = self.cli(&[
            "tenant",
            "create",
            "--name",
            name,
            "--email",
            &format!("ops@{name}.test"),
            "--plan",
            plan,
        ]);
        let key = output.lines().last().expect("the key is on the last line").trim().to_owned();
        assert!(key.starts_with("hl_live_"), "unexpected key line: {key}");
        self.client_with_key(&key)
    }

    pub fn client_with_key(&self, key: &str) -> Client {
        Client {
            base_url: self.base_url.clone(),
            http: self.client.clone(),
            auth: Auth::Bearer(key.to_owned()),
        }
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Client {
        Client { base_url: self.base_url.clone(), http: self.client.clone(), auth: Auth::None }
    }
}

/// A child process killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    /// A session cookie and, when sent, the CSRF token.
    Session {
        cookie: String,
        csrf: Option<String>,
    },
}

/// A typed API client for one set of credentials.
#[derive(Clone)]
pub struct Client {
    pub base_url: String,
    pub http: reqwest::Client,
    pub auth: Auth,
}

/// A response: status, headers and the body parsed as JSON (Null when empty or not JSON).
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self.body
    }

    /// Asserts an error status and code, and returns the body.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        assert_eq!(self.body["code"], code, "unexpected code; body: {}", self.text);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "error without detail: {}",
            self.text
        );
        self.body
    }

    /// The `loc` paths of a validation error, joined with dots.
    pub fn error_locs(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        e["loc"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| p.as_str().unwrap().to_owned())
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Client {
    pub fn with_auth(&self, auth: Auth) -> Client {
        Client { auth, ..self.clone() }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self.http.request(method, format!("{}{}", self.base_url, path));
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(key) => request = request.bearer_auth(key),
            Auth::Session { cookie, csrf } => {
                request = request.header("Cookie", cookie);
                if let Some(csrf) = csrf {
                    request = request.header("X-CSRF-Token", csrf);
                }
            }
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response { status, headers, body, text }
    }

    /// The API key of a bearer client.
    pub fn api_key(&self) -> &str {
        match &self.auth {
            Auth::Bearer(key) => key,
            other => panic!("not an API-key client: {other:?}"),
        }
    }

    /// A POST with a raw body and content type, for malformed input.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> Response {
        let headers = [("content-type", content_type)];
        let mut request = self.http.post(format!("{}{}", self.base_url, path)).body(body.to_owned());
        if let Auth::Bearer(key) = &self.auth {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response { status, headers, body, text }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(&body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(&body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path, None, &[]).await
    }

    // ----- typed helpers for common set-up --------------------------------------------------

    pub async fn create_app(&self, name: &str, uid: Option<&str>) -> Value {
        self.post("/api/v1/app", json!({"name": name, "uid": uid})).await.expect(201)
    }

    pub async fn create_endpoint(&self, app: &str, url: &str) -> Value {
        self.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url})).await.expect(201)
    }

    pub async fn send_message(&self, app: &str, event_type: &str, payload: Value) -> Value {
        self.post(&format!("/api/v1/app/{app}/msg"), json!({"event_type": event_type, "payload": payload}))
            .await
            .expect(202)
    }
}

/// The id in a response body.
pub fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("no id in {value}")).to_owned()
}

/// Counts every item of a list route by following its cursor (250 a page).
pub async fn count_all(client: &Client, path: &str) -> usize {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut count = 0;
    let mut iterator: Option<String> = None;
    loop {
        let url = match &iterator {
            Some(it) => format!("{path}{separator}limit=250&iterator={it}"),
            None => format!("{path}{separator}limit=250"),
        };
        let page = client.get(&url).await.expect(200);
        count += page["data"].as_array().map_or(0, Vec::len);
        match page["iterator"].as_str() {
            Some(next) if page["done"] == false => iterator = Some(next.to_owned()),
            _ => return count,
        }
    }
}

/// CPU time (user + system) process `pid` has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process's /proc entry");
    Duration::from_millis(cpu_ticks(&stat).expect("a stat line") * 10) // USER_HZ is 100 on Linux.
}

/// User + system CPU ticks (1/100 s) from a `/proc/…/stat` line, of a process or of one of its
/// threads (`/proc/<pid>/task/<tid>/stat`).
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
