//! A throw-away PostgreSQL cluster for the tests, from the system's PostgreSQL binaries (`initdb`,
//! `pg_ctl`, `postgres`, `createdb`), found on PATH, in `pg_config --bindir` or under
//! `/usr/lib/postgresql/*/bin`. One cluster per test process, on a free port in a temp dir; each
//! test gets its own database. A watchdog shell stops the cluster when the test process exits,
//! however it exits, so no server outlives the run.
//!
//! When the binaries are missing, the PostgreSQL tests fail with a message saying what to
//! install: CI sets nothing that lets them skip.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

pub struct Cluster {
    port: u16,
    bindir: PathBuf,
    /// Kept so the directory lives as long as the process.
    _dir: tempfile::TempDir,
    run_as: Option<String>,
}

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres, createdb) were not found on PATH, \
     in `pg_config --bindir` or under /usr/lib/postgresql/*/bin. Install them: on Debian/Ubuntu \
     `apt-get install -y postgresql`; on macOS `brew install postgresql@15`. The README's test \
     command installs them itself when run as root on Debian.";

fn find_bindir() -> Option<PathBuf> {
    let has_all =
        |dir: &Path| ["initdb", "pg_ctl", "postgres", "createdb"].iter().all(|b| dir.join(b).exists());
    if let Ok(dir) = std::env::var("HOOKLINE_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_all(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    if let Some(dir) = versions.into_iter().rev().find(|d| has_all(d)) {
        return Some(dir);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path).find(|dir| has_all(dir))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let binary = self.bindir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.arg("-u").arg(user).arg("--").arg(binary);
                command
            }
            None => Command::new(binary),
        }
    }

    fn start() -> Cluster {
        let bindir = find_bindir().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        // PostgreSQL refuses to run as root: use the `postgres` system user (or nobody).
        let run_as = is_root().then(|| {
            let has_postgres = Command::new("id").arg("postgres").output().is_ok_and(|o| o.status.success());
            if has_postgres { "postgres".to_owned() } else { "nobody".to_owned() }
        });
        let dir = tempfile::Builder::new().prefix("hookline-pg-").tempdir().expect("temp dir");
        if let Some(user) = &run_as {
            let status = Command::new("chown").arg("-R").arg(user).arg(dir.path()).status().expect("chown");
            assert!(status.success(), "chown of the PostgreSQL temp dir failed");
        }
        let port = free_port();
        let cluster = Cluster { port, bindir, _dir: dir, run_as };
        let data = cluster._dir.path().join("data");
        let output = cluster
            .command("initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C"])
            .output()
            .expect("running initdb");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));

        // Tests trade durability for speed; the benchmark measures PostgreSQL as production
        // runs it (its defaults: fsync, synchronous commit, full-page writes).
        let durability = if DURABLE.get().copied().unwrap_or(false) {
            "-c shared_buffers=128MB"
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB"
        };
        // The server runs under a watchdog that stops it when this test process is gone (statics
        // are never dropped, so no destructor could). It signals the postmaster itself: runuser
        // does not forward SIGINT.
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 {durability}",
            cluster._dir.path().display()
        );
        let postgres = cluster.bindir.join("postgres");
        let server = match &cluster.run_as {
            Some(user) => {
                format!("runuser -u {user} -- {} -D {} {options}", postgres.display(), data.display())
            }
            None => format!("{} -D {} {options}", postgres.display(), data.display()),
        };
        let log = cluster._dir.path().join("postgres.log");
        let script = format!(
            "{server} > {log} 2>&1 & pg=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.5; done; \
             kill -INT $(head -n 1 {data}/postmaster.pid) 2>/dev/null; wait $pg; rm -rf {dir}",
            log = log.display(),
            parent = std::process::id(),
            data = data.display(),
            dir = cluster._dir.path().display(),
        );
        // Deliberately never waited on: the watchdog must outlive this process to clean up after it.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting postgres");

        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start within 30 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("hookline_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = self
                .command("createdb")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", &name])
                .output()
                .expect("running createdb");
            if output.status.success() {
                break;
            }
            // Just after start the server may still refuse connections ("starting up").
            assert!(
                Instant::now() < deadline,
                "createdb failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs SQL with psql and returns its unaligned output.
    pub fn psql(&self, database_url: &str, sql: &str) -> String {
        let psql = self.bindir.join("psql");
        let program = if psql.exists() { psql } else { PathBuf::from("psql") };
        let output = Command::new(program)
            .args(["-X", "-A", "-t", "-d", database_url, "-c", sql])
            .output()
            .expect("running psql");
        assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

static DURABLE: OnceLock<bool> = OnceLock::new();

/// Makes the cluster this process starts durable (PostgreSQL's defaults) instead of the tests'
/// fsync-off settings. Takes effect only before the first [`cluster`] call.
pub fn use_durable_cluster() {
    let _ = DURABLE.set(true);
}

/// The cluster of this test process, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}
