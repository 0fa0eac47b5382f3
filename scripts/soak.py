#!/usr/bin/env python3
"""Crash soak for Hookline: SIGKILL the server's processes during a message burst, then check
that no accepted message was lost and no delivery stayed stuck in `sending`.

What it does (one run, everything in temp dirs, nothing shared with ./data):

  * starts a webhook receiver on 127.0.0.1 that answers 200 at once and counts receipts per
    message id (the `webhook-id` header of every delivery carries the message id);
  * PostgreSQL (default): starts a throw-away cluster from the system's binaries (initdb/pg_ctl,
    as the `postgres` user when run as root), runs `hookline migrate`, then `hookline api` and
    `hookline worker` as two separate processes. SQLite (`--db sqlite`): one `hookline serve`;
  * creates a tenant (CLI), an application and an endpoint pointing at the receiver (API);
  * bursts `--messages` messages from `--clients` threads while a killer thread runs `--cycles`
    cycles; a cycle SIGKILLs the API and then the worker (PostgreSQL) or `serve` (SQLite),
    restarting each at once with the same configuration and data directory. Cycles not done
    when the burst ends go on while the deliveries drain;
  * waits until every accepted message has been received at least once (`--drain-timeout`),
    lets the database settle, then counts deliveries stuck in `sending` (lease expired more than
    one lease ago) and messages without a succeeded delivery;
  * prints a summary (and writes JSON with `--report PATH`). Exit status 0 only when no accepted
    message was lost, no delivery is stuck, every message was accepted, every kill cycle ran and
    no step failed.
    Duplicate receipts are expected (at-least-once delivery) and only reported.

Why the client sends an `Idempotency-Key` ("soak-<n>") with every message: a request cut off by
a killed API may or may not have been committed. Retrying with the same key returns the original
message when its response was stored, so "accepted" means one known message id per number and a
retry never silently creates a second message. A key whose first request died mid-flight stays
`pending` on the server for five minutes (ingest::idempotency::PENDING_TIMEOUT) and meanwhile
answers 409 `idempotency_in_flight`; the client puts such numbers back in the queue and tries them
again every few seconds, so a run with API kills usually takes at least five minutes. After the
takeover the request runs again: if the dead request had committed its message, that first
message is an "orphan" (delivered, but not the id the client was given); the report counts them.

Why the short lease (HOOKLINE_DELIVERY_LEASE_SECONDS, default 5 here, 30 in production): a killed
worker's `sending` deliveries only come back when their lease expires; a short lease keeps the
drain short and lets the stuck check run soon after it. The retry schedule is shortened too
(HOOKLINE_RETRY_SCHEDULE=1,2,5,10,30,60) so that a failed attempt does not wait minutes.

Usage (build first: `cargo build --release -p hookline`):

  scripts/soak.py                          # PostgreSQL, 20 000 messages, 20 cycles
  scripts/soak.py --db sqlite --report /tmp/soak-sqlite.json
  scripts/soak.py --messages 2000 --cycles 3 --keep   # quick run, keep logs and data

Python 3.11 standard library only. PostgreSQL mode needs the server binaries (Debian:
`apt-get install postgresql`) and psql.
"""

import argparse
import base64
import heapq
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_UID = "soak"
EVENT_TYPE = "soak.tick"
# Per-request timeout of the burst's HTTP client: generous, the machine is loaded.
CLIENT_TIMEOUT = 15.0
# Back-off before retrying a request that hit a dead or restarting API (the brief's 0.2 s).
RETRY_BACKOFF = 0.2
# How soon a number whose key answered 409 idempotency_in_flight is tried again.
IN_FLIGHT_RETRY = 3.0
# How long a restarted process may take to answer /readyz.
READY_TIMEOUT = 60.0
# A restarted worker has no listener to ask: it counts as up when it still runs after this.
WORKER_SETTLE = 1.0
RETRY_SCHEDULE = "1,2,5,10,30,60"

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[soak {time.monotonic() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ----- receiver -----------------------------------------------------------------------------


class Receipts:
    """Every delivery the receiver got, by message id (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.n_of: dict[str, int | None] = {}  # message id -> payload's "n"
        self.total = 0
        self.without_id = 0

    def record(self, msg_id: str | None, n: int | None) -> None:
        with self.lock:
            self.total += 1
            if not msg_id:
                self.without_id += 1
                return
            self.counts[msg_id] = self.counts.get(msg_id, 0) + 1
            if self.n_of.get(msg_id) is None:
                self.n_of[msg_id] = n

    def unique(self) -> int:
        with self.lock:
            return len(self.counts)

    def missing(self, ids) -> list[str]:
        with self.lock:
            return [i for i in ids if i not in self.counts]

    def snapshot(self) -> tuple[dict[str, int], dict[str, int | None], int, int]:
        with self.lock:
            return dict(self.counts), dict(self.n_of), self.total, self.without_id


def payload_n(body: bytes) -> int | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict):
        if isinstance(doc.get("n"), int):
            return doc["n"]
        data = doc.get("data")
        if isinstance(data, dict) and isinstance(data.get("n"), int):
            return data["n"]
    return None


class ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the worker pools its connections

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self._read_body()
        # Counted once the whole request arrived, before answering: a worker killed after this
        # point sent the webhook even if it never recorded the attempt (a later duplicate).
        self.server.receipts.record(self.headers.get("webhook-id"), payload_n(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's signature)
        pass


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, receipts: Receipts) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.receipts = receipts

    def handle_error(self, request, client_address) -> None:
        # Connections of a SIGKILLed worker are reset mid-request: expected, not worth a trace.
        pass


# ----- PostgreSQL ---------------------------------------------------------------------------


def find_pg_bindir() -> Path | None:
    """Like e2e/src/postgres.rs: HOOKLINE_PG_BINDIR, `pg_config --bindir`, the newest
    /usr/lib/postgresql/*/bin, then PATH."""
    needed = ("initdb", "pg_ctl", "postgres", "createdb")

    def has_all(d: Path) -> bool:
        return all((d / b).exists() for b in needed)

    if os.environ.get("HOOKLINE_PG_BINDIR"):
        return Path(os.environ["HOOKLINE_PG_BINDIR"])
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and has_all(Path(out.stdout.strip())):
            return Path(out.stdout.strip())
    except OSError:
        pass

    def version(p: Path) -> tuple:
        return tuple(int(x) if x.isdigit() else 0 for x in p.parent.name.split("."))

    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for d in sorted((p / "bin" for p in root.iterdir()), key=version, reverse=True):
            if has_all(d):
                return d
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if d and has_all(Path(d)):
            return Path(d)
    return None


class PgCluster:
    """A throw-away cluster in a temp dir on a free port; stopped and removed by the caller."""

    def __init__(self, bindir: Path, keep: bool) -> None:
        self.bindir = bindir
        self.keep = keep
        self.dir: Path | None = None
        self.port = 0
        self.started = False
        self.run_as: str | None = None
        self.psql_path = bindir / "psql" if (bindir / "psql").exists() else shutil.which("psql")
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: use the `postgres` system user (or nobody).
            has_postgres = subprocess.run(["id", "postgres"], capture_output=True).returncode == 0
            self.run_as = "postgres" if has_postgres else "nobody"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/hookline"

    def command(self, program: str) -> list[str]:
        binary = str(self.bindir / program)
        return ["runuser", "-u", self.run_as, "--", binary] if self.run_as else [binary]

    def _run(self, args: list[str], what: str) -> None:
        # Output to a file, not a pipe: `pg_ctl start` leaves a postmaster behind that must not
        # hold our pipe open.
        log = self.dir / f"{what}.out"
        with open(log, "ab") as out:
            rc = subprocess.run(args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, timeout=120, check=False).returncode
        if rc != 0:
            raise RuntimeError(f"{what} failed (exit {rc}):\n{tail(log)}")

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hookline-soak-pg-"))
        if self.run_as:
            subprocess.run(["chown", "-R", self.run_as, str(self.dir)], check=True)
        self.port = free_port()
        self._run(self.command("initdb") + ["-D", str(self.data), "-U", "postgres", "-A", "trust",
                                            "-E", "UTF8", "--no-sync", "--locale=C"], "initdb")
        # PostgreSQL itself is never killed here, so its own durability settings do not change
        # what the soak measures; they are relaxed as in the e2e tests to spare the disk.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=300 -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off")
        self.started = True  # from here on, stop() has something to stop
        self._run(self.command("pg_ctl") + ["-D", str(self.data), "-l", str(self.dir / "postgres.log"),
                                            "-w", "-t", "60", "-o", options, "start"], "pg_ctl-start")
        deadline = time.monotonic() + 30
        while True:  # just after start the server may still answer "starting up"
            out = subprocess.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                  "-U", "postgres", "hookline"], capture_output=True, text=True, check=False)
            if out.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"createdb failed: {out.stderr}")
            time.sleep(0.3)

    def stop_shell(self) -> str:
        """The shell command that stops the cluster (for the watchdog)."""
        return shlex.join(self.command("pg_ctl") + ["-D", str(self.data), "-m", "immediate", "stop"])

    def stop(self) -> None:
        if self.started:
            subprocess.run(self.command("pg_ctl") + ["-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"],
                           cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            self.started = False

    def psql(self, sql: str) -> list[list[str]]:
        out = subprocess.run([str(self.psql_path), "-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                              "-d", self.url, "-c", sql], capture_output=True, text=True, timeout=120, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


# ----- hookline processes -------------------------------------------------------------------


def http_ready(url_host: str, port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(url_host, port, timeout=2)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False


class Managed:
    """One hookline process (serve, api or worker), restartable with the same configuration."""

    def __init__(self, name: str, binary: Path, env: dict[str, str], cwd: Path, log_dir: Path,
                 run_dir: Path, ready_port: int | None) -> None:
        self.name = name
        self.binary = binary
        self.env = env
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.pid_file = run_dir / f"{name}.pid"
        self.ready_port = ready_port  # None: no /readyz to ask (the worker)
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.closed = False
        self.kills = 0
        self.starts = 0
        self.unexpected_exits: list[int] = []

    def start(self) -> None:
        with self.lock:
            if self.closed:
                return
            with open(self.log_path, "ab") as log:
                log.write(f"\n===== start {self.starts + 1} at {datetime.now().isoformat()} =====\n".encode())
                log.flush()
                # Own session: a Ctrl-C in the terminal reaches only this script, which then
                # stops its children itself.
                self.proc = subprocess.Popen([str(self.binary), self.name], env=self.env, cwd=self.cwd,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            self.pid_file.write_text(str(self.proc.pid))
            self.starts += 1

    def wait_ready(self, abort: threading.Event) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        if self.ready_port is None:
            abort.wait(WORKER_SETTLE)
        while not abort.is_set():
            proc = self.proc
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {proc.returncode} while starting; "
                                   f"its log ends:\n{tail(self.log_path)}")
            if self.ready_port is None or http_ready("127.0.0.1", self.ready_port):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready within {READY_TIMEOUT:.0f} s; "
                                   f"its log ends:\n{tail(self.log_path)}")
            time.sleep(0.1)

    def kill9(self) -> None:
        with self.lock:
            if self.closed or self.proc is None:
                return
            try:
                os.kill(self.proc.pid, signal.SIGKILL)  # our own child, by its pid
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.kills += 1

    def ensure_running(self, abort: threading.Event) -> None:
        """Restarts the process if it stopped on its own (recorded as an unexpected exit)."""
        proc = self.proc
        if self.closed or proc is None or proc.poll() is None:
            return
        self.unexpected_exits.append(proc.returncode)
        say(f"{self.name} exited on its own with {proc.returncode}; restarting it")
        self.start()
        self.wait_ready(abort)

    def stop(self) -> None:
        with self.lock:
            self.closed = True
            proc = self.proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.pid_file.unlink(missing_ok=True)


# ----- API client ---------------------------------------------------------------------------


def api_call(port: int, method: str, path: str, key: str, body: dict | None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        try:
            return resp.status, json.loads(text) if text else {}
        except ValueError:
            return resp.status, {"raw": text.decode(errors="replace")}
    finally:
        conn.close()


class WorkQueue:
    """Message numbers to send, earliest due first; a number can come back later (deferred)."""

    def __init__(self, count: int) -> None:
        self.heap = [(0.0, n) for n in range(count)]  # already a heap: all due at once, by n
        self.cv = threading.Condition()
        self.outstanding = count

    def get(self, stop: threading.Event) -> int | None:
        with self.cv:
            while not stop.is_set() and self.outstanding > 0:
                if self.heap:
                    due, n = self.heap[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self.heap)
                        return n
                    self.cv.wait(min(wait, 0.5))
                else:
                    self.cv.wait(0.5)  # the rest is in other clients' hands, and may come back
            return None

    def defer(self, n: int, delay: float) -> None:
        with self.cv:
            heapq.heappush(self.heap, (time.monotonic() + delay, n))
            self.cv.notify()

    def done(self) -> None:
        with self.cv:
            self.outstanding -= 1
            if self.outstanding == 0:
                self.cv.notify_all()


class Burst:
    """`clients` threads posting messages 0..count-1, each until accepted (or refused for good)."""

    def __init__(self, count: int, port: int, key: str, stop: threading.Event) -> None:
        self.count = count
        self.port = port
        self.key = key
        self.stop = stop
        self.queue = WorkQueue(count)
        self.lock = threading.Lock()
        self.accepted: dict[int, str] = {}  # n -> message id
        self.rejected: dict[int, str] = {}  # n -> "status body"
        self.stats = {"posts": 0, "transient_errors": 0, "in_flight_conflicts": 0,
                      "replayed_responses": 0, "rate_limited": 0}
        self.keys_in_flight: set[int] = set()

    def progress(self) -> tuple[int, int]:
        """Messages accepted, and numbers whose key answered 409 in flight and are not accepted yet."""
        with self.lock:
            return len(self.accepted), len(self.keys_in_flight - self.accepted.keys())

    def bump(self, name: str) -> None:
        with self.lock:
            self.stats[name] += 1

    def client(self) -> None:
        conn: http.client.HTTPConnection | None = None
        path = f"/api/v1/app/{APP_UID}/msg"
        while (n := self.queue.get(self.stop)) is not None:
            body = json.dumps({"event_type": EVENT_TYPE, "payload": {"n": n}}).encode()
            # The same key for every try of this number: see the module docstring.
            headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                       "Idempotency-Key": f"soak-{n}"}
            while not self.stop.is_set():
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
                    self.bump("posts")
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    text = resp.read()
                    status = resp.status
                    replayed = (resp.getheader("idempotent-replayed") or "").lower() == "true"
                    retry_after = resp.getheader("retry-after")
                except (OSError, http.client.HTTPException):
                    # The API was killed or is restarting, or the request timed out: retry
                    # with the same key until the API is back.
                    if conn is not None:
                        conn.close()
                    conn = None
                    self.bump("transient_errors")
                    time.sleep(RETRY_BACKOFF)
                    continue
                try:
                    doc = json.loads(text) if text else {}
                except ValueError:
                    doc = {}
                if status in (200, 202) and isinstance(doc, dict) and isinstance(doc.get("id"), str):
                    with self.lock:
                        self.accepted[n] = doc["id"]
                        if replayed:
                            self.stats["replayed_responses"] += 1
                    self.queue.done()
                    break
                if status == 409 and isinstance(doc, dict) and doc.get("code") == "idempotency_in_flight":
                    # The key's first request died with a killed API (or still runs): the key
                    # stays pending until the server's timeout. Try other numbers meanwhile.
                    with self.lock:
                        self.stats["in_flight_conflicts"] += 1
                        self.keys_in_flight.add(n)
                    self.queue.defer(n, IN_FLIGHT_RETRY)
                    break
                if status == 429:
                    self.bump("rate_limited")
                    try:
                        time.sleep(min(float(retry_after or 0.5), 5.0))
                    except ValueError:
                        time.sleep(0.5)
                    continue
                if status >= 500 or status in (200, 202):
                    self.bump("transient_errors")
                    time.sleep(RETRY_BACKOFF)
                    continue
                with self.lock:
                    self.rejected[n] = f"{status} {text[:300].decode(errors='replace')}"
                self.queue.done()
                break
        if conn is not None:
            conn.close()


# ----- database checks ----------------------------------------------------------------------


def parse_ts(value) -> datetime | None:
    """A timestamp as SQLite holds it (RFC 3339 text, maybe with a space or nanoseconds)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    text = str(value).strip().replace("Z", "+00:00")
    text = re.sub(r"\s+([+-]\d\d:?\d\d)$", r"\1", text)
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def db_state(args, pg: PgCluster | None, sqlite_path: Path | None) -> dict:
    """Deliveries in `sending` (all, and stuck: lease expired over one lease ago, or no lease),
    messages and those without a succeeded delivery, the fan-out queue, deliveries by status."""
    lease = args.lease_seconds
    without_success = ("SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM deliveries d "
                       "WHERE d.message_id = m.id AND d.status = 'succeeded')")
    if pg is not None:
        row = pg.psql(
            "SELECT (SELECT count(*) FROM messages), "
            f"({without_success}), "
            "(SELECT count(*) FROM deliveries WHERE status = 'sending'), "
            "(SELECT count(*) FROM deliveries WHERE status = 'sending' AND (lease_until IS NULL "
            f"OR lease_until < now() - make_interval(secs => {lease}))), "
            "(SELECT count(*) FROM fanout_queue)")[0]
        by_status = {r[0]: int(r[1]) for r in pg.psql("SELECT status, count(*) FROM deliveries GROUP BY status")}
        messages, no_success, sending, stuck, fanout = (int(x) for x in row)
    else:
        uri = f"file:{urllib.parse.quote(str(sqlite_path))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
            no_success = conn.execute(without_success).fetchone()[0]
            leases = [r[0] for r in conn.execute("SELECT lease_until FROM deliveries WHERE status = 'sending'")]
            fanout = conn.execute("SELECT count(*) FROM fanout_queue").fetchone()[0]
            by_status = dict(conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
        finally:
            conn.close()
        # Compared here, not in SQL: SQLite keeps timestamps as text.
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=lease)
        sending = len(leases)
        stuck = sum(1 for v in leases if (t := parse_ts(v)) is None or t < cutoff)
    return {"messages_in_db": messages, "messages_without_succeeded_delivery": no_success,
            "sending_rows": sending, "stuck_sending": stuck, "fanout_queue": fanout,
            "deliveries_by_status": by_status}


# ----- the soak -----------------------------------------------------------------------------


class Soak:
    def __init__(self, args) -> None:
        self.args = args
        self.abort = threading.Event()         # stop everything (error, Ctrl-C)
        self.clients_stop = threading.Event()  # stop the burst (done, timeout or abort)
        self.report: dict = {"db": args.db, "binary": str(args.binary), "messages_sent": args.messages,
                             "cycles_requested": args.cycles, "lease_seconds": args.lease_seconds,
                             "loadavg_start": list(os.getloadavg())}
        self.base: Path | None = None
        self.pg: PgCluster | None = None
        self.receiver: ReceiverServer | None = None
        self.procs: list[Managed] = []
        self.watchdog: subprocess.Popen | None = None
        self.killer_thread: threading.Thread | None = None
        self.killer_error: BaseException | None = None
        self.cycles_done = 0
        self.burst: Burst | None = None
        self.receipts = Receipts()
        self.pg_bindir: Path | None = None  # set by main() for --db postgres
        self.master_key = ""
        self.api_port = 0
        self.key = ""

    # -- set-up --

    def start_watchdog(self) -> None:
        """A shell that cleans up if this script dies without its finally block (SIGKILL):
        it kills the hookline processes named in run/*.pid and stops the cluster."""
        run_dir = self.base / "run"
        steps = [f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done",
                 f'for f in {shlex.quote(str(run_dir))}/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done']
        has_pg = self.pg is not None and self.pg.dir is not None
        if has_pg:
            steps.append(f"{self.pg.stop_shell()} >/dev/null 2>&1")
        if not self.args.keep:
            dirs = [self.base] + ([self.pg.dir] if has_pg else [])
            steps.append("rm -rf " + " ".join(shlex.quote(str(d)) for d in dirs))
        self.watchdog = subprocess.Popen(["sh", "-c", "; ".join(steps)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)

    def hookline_env(self, db_url: str, listen_port: int) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOOKLINE_LISTEN": f"127.0.0.1:{listen_port}",
            # The same data dir and master key for every restart: secrets stay decryptable.
            "HOOKLINE_DATA_DIR": str(self.base / "data"),
            "HOOKLINE_DATABASE_URL": db_url,
            "HOOKLINE_MASTER_KEY": self.master_key,
            # The receiver is on loopback, which the SSRF rules refuse otherwise.
            "HOOKLINE_SSRF_ALLOW": "127.0.0.1/32",
            # Short lease and retries: see the module docstring.
            "HOOKLINE_DELIVERY_LEASE_SECONDS": str(self.args.lease_seconds),
            "HOOKLINE_RETRY_SCHEDULE": RETRY_SCHEDULE,
            "HOOKLINE_LOG": "warn",
        }
        dashboard = REPO / "frontend" / "dist"
        if dashboard.is_dir():
            env["HOOKLINE_DASHBOARD_DIR"] = str(dashboard)
        for item in self.args.set:
            name, _, value = item.partition("=")
            env[name] = value
        return env

    def cli(self, env: dict[str, str], *cli_args: str) -> str:
        out = subprocess.run([str(self.args.binary), *cli_args], env=env, cwd=self.base / "data",
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"hookline {' '.join(cli_args)} failed (exit {out.returncode}):\n{out.stderr}")
        return out.stdout

    def set_up(self) -> None:
        args = self.args
        self.base = Path(tempfile.mkdtemp(prefix="hookline-soak-"))
        for sub in ("data", "logs", "run"):
            (self.base / sub).mkdir()
        self.master_key = base64.b64encode(os.urandom(32)).decode()
        say(f"work dir {self.base}")

        self.receiver = ReceiverServer(self.receipts)
        threading.Thread(target=self.receiver.serve_forever, kwargs={"poll_interval": 0.2},
                         name="receiver", daemon=True).start()
        receiver_url = f"http://127.0.0.1:{self.receiver.server_address[1]}/hook"
        say(f"receiver on {receiver_url}")

        if args.db == "postgres":
            self.pg = PgCluster(self.pg_bindir, args.keep)
            say(f"starting PostgreSQL from {self.pg_bindir}" + (f" as {self.pg.run_as}" if self.pg.run_as else ""))
            try:
                self.pg.start()
            finally:
                self.start_watchdog()  # as soon as there is something to clean up
            db_url = self.pg.url
            say(f"PostgreSQL on port {self.pg.port} ({self.pg.dir})")
        else:
            self.start_watchdog()
            db_url = f"sqlite://{self.base / 'data' / 'hookline.db'}"

        self.api_port = free_port()
        api_env = self.hookline_env(db_url, self.api_port)
        if self.pg is not None:
            say("hookline migrate")
            self.cli(api_env, "migrate")
        out = self.cli(api_env, "tenant", "create", "--name", "soak", "--email", "ops@soak.test",
                       "--plan", "enterprise")
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        if not lines:
            raise RuntimeError("tenant create printed no API key")
        self.key = lines[-1]

        logs, run = self.base / "logs", self.base / "run"
        data = self.base / "data"
        if self.pg is not None:
            # Separate processes; the worker gets a listen address of its own, which it ignores
            # (it binds nothing without HOOKLINE_WORKER_LISTEN), so no port is shared.
            self.procs = [
                Managed("api", args.binary, api_env, data, logs, run, self.api_port),
                Managed("worker", args.binary, self.hookline_env(db_url, free_port()), data, logs, run, None),
            ]
        else:
            self.procs = [Managed("serve", args.binary, api_env, data, logs, run, self.api_port)]
        for proc in self.procs:
            proc.start()
        for proc in self.procs:
            proc.wait_ready(self.abort)
        say("running: " + ", ".join(f"{p.name} (pid {p.proc.pid})" for p in self.procs))

        status, body = api_call(self.api_port, "POST", "/api/v1/app", self.key, {"name": "Soak", "uid": APP_UID})
        if status != 201:
            raise RuntimeError(f"creating the application answered {status}: {body}")
        status, body = api_call(self.api_port, "POST", f"/api/v1/app/{APP_UID}/endpoint", self.key,
                                {"url": receiver_url})
        if status != 201:
            raise RuntimeError(f"creating the endpoint answered {status}: {body}")

    # -- killer --

    def killer(self) -> None:
        rng = random.Random(self.args.seed)
        try:
            for cycle in range(1, self.args.cycles + 1):
                for proc in self.procs:  # postgres: the API, then the worker; sqlite: serve
                    # Pause first, so the first kill lands in the middle of the burst.
                    if self.abort.wait(rng.uniform(0.5, 1.5)):
                        return
                    proc.ensure_running(self.abort)
                    proc.kill9()
                    proc.start()
                    proc.wait_ready(self.abort)
                self.cycles_done = cycle
        except BaseException as err:  # noqa: BLE001 (reported by the main thread)
            self.killer_error = err
            self.abort.set()
            self.clients_stop.set()

    def kills(self) -> str:
        return " ".join(f"{p.name}={p.kills}" for p in self.procs)

    def check_killer(self) -> None:
        if self.killer_error is not None:
            raise RuntimeError(f"the killer thread failed: {self.killer_error}") from self.killer_error

    # -- phases --

    def run(self) -> None:
        args = self.args
        self.set_up()

        # Burst, with the killer running alongside.
        self.burst = burst = Burst(args.messages, self.api_port, self.key, self.clients_stop)
        clients = [threading.Thread(target=burst.client, name=f"client-{i}", daemon=True) for i in range(args.clients)]
        say(f"burst: {args.messages} messages from {args.clients} clients; {args.cycles} kill cycles")
        burst_start = time.monotonic()
        for t in clients:
            t.start()
        self.killer_thread = threading.Thread(target=self.killer, name="killer", daemon=True)
        self.killer_thread.start()
        last = 0.0
        while alive := [t for t in clients if t.is_alive()]:
            alive[0].join(timeout=0.5)
            self.check_killer()
            if time.monotonic() - burst_start > args.burst_timeout:
                say(f"burst timeout ({args.burst_timeout:.0f} s): stopping the clients")
                self.clients_stop.set()
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                accepted, pending_keys = burst.progress()
                say(f"burst: accepted {accepted}/{args.messages}, received {self.receipts.unique()}, "
                    f"keys waiting out a dead request {pending_keys}, "
                    f"cycles {self.cycles_done}/{args.cycles}, kills {self.kills()}")
        self.clients_stop.set()
        burst_end = time.monotonic()
        self.report["burst_seconds"] = round(burst_end - burst_start, 1)
        say(f"burst done in {burst_end - burst_start:.1f} s: {len(burst.accepted)} accepted")

        # The remaining kill cycles run while the deliveries drain.
        while self.killer_thread.is_alive():
            self.killer_thread.join(timeout=0.5)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                say(f"drain: cycles {self.cycles_done}/{args.cycles}, kills {self.kills()}, "
                    f"received {self.receipts.unique()}")
        self.check_killer()

        # Everything up again, then wait for every accepted message to arrive.
        for proc in self.procs:
            proc.ensure_running(self.abort)
        accepted_ids = list(burst.accepted.values())
        drain_deadline = time.monotonic() + args.drain_timeout
        missing = self.receipts.missing(accepted_ids)
        while missing and time.monotonic() < drain_deadline and not self.abort.is_set():
            time.sleep(0.5)
            for proc in self.procs:
                proc.ensure_running(self.abort)
            missing = self.receipts.missing(missing)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                say(f"drain: {len(missing)} accepted messages not received yet")
        drain_end = time.monotonic()
        self.report["drain_seconds"] = round(drain_end - burst_end, 1)
        self.report["drain_complete"] = not missing
        say(f"drain {'complete' if not missing else 'TIMED OUT'} {drain_end - burst_end:.1f} s after the burst")

        # Let leases of the last kills expire and be swept (the worker sweeps every third of a
        # lease), then look at the database.
        sqlite_path = None if self.pg is not None else self.base / "data" / "hookline.db"
        settle_deadline = time.monotonic() + args.settle_timeout
        while True:
            try:
                state = db_state(args, self.pg, sqlite_path)
            except (RuntimeError, sqlite3.Error, subprocess.TimeoutExpired) as err:
                if time.monotonic() > settle_deadline:
                    raise
                say(f"database check failed, retrying: {err}")
                time.sleep(2)
                continue
            settled = state["sending_rows"] == 0 and state["messages_without_succeeded_delivery"] == 0
            if settled or time.monotonic() > settle_deadline or self.abort.is_set():
                break
            time.sleep(2)
        self.report["settle_seconds"] = round(time.monotonic() - drain_end, 1)
        self.report.update(state)
        self.fill_report()

    def fill_report(self) -> None:
        burst = self.burst
        r = self.report
        counts, n_of, total, without_id = self.receipts.snapshot()
        with burst.lock:  # a client cut off by a timeout may still be finishing a request
            accepted = dict(burst.accepted)
            rejected = dict(burst.rejected)
            stats = dict(burst.stats)
            keys_in_flight = len(burst.keys_in_flight)
        accepted_ids = set(accepted.values())
        lost = sorted((n, mid) for n, mid in accepted.items() if mid not in counts)
        orphans = sorted(mid for mid in counts if mid not in accepted_ids)
        ids_per_n: dict[int, set[str]] = {}
        for mid, n in n_of.items():
            if n is not None:
                ids_per_n.setdefault(n, set()).add(mid)
        r.update({
            "accepted": len(accepted),
            "rejected": len(rejected),
            "rejected_sample": {str(n): why for n, why in sorted(rejected.items())[:20]},
            "never_answered": burst.count - len(accepted) - len(rejected),
            "received_at_least_once": sum(1 for mid in accepted_ids if mid in counts),
            "lost": len(lost),
            "lost_sample": [{"n": n, "id": mid} for n, mid in lost[:100]],
            "receipts_total": total,
            "receipts_without_webhook_id": without_id,
            "unique_ids_received": len(counts),
            "duplicate_receipts": total - without_id - len(counts),
            "messages_received_more_than_once": sum(1 for c in counts.values() if c > 1),
            "max_receipts_of_one_message": max(counts.values(), default=0),
            "orphan_messages": len(orphans),
            "orphan_sample": [{"id": mid, "n": n_of.get(mid)} for mid in orphans[:50]],
            "numbers_with_several_message_ids": sum(1 for ids in ids_per_n.values() if len(ids) > 1),
            "kills": {p.name: p.kills for p in self.procs},
            "unexpected_exits": {p.name: p.unexpected_exits for p in self.procs},
            "cycles_done": self.cycles_done,
            "client": {**stats, "keys_met_in_flight": keys_in_flight},
        })


def cleanup(soak: Soak) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    soak.abort.set()
    soak.clients_stop.set()
    if soak.killer_thread is not None:
        soak.killer_thread.join(timeout=READY_TIMEOUT + 5)
    for proc in reversed(soak.procs):
        try:
            proc.stop()
        except Exception as err:  # noqa: BLE001
            say(f"stopping {proc.name}: {err}")
    if soak.receiver is not None:
        soak.receiver.shutdown()
        soak.receiver.server_close()
    if soak.pg is not None:
        soak.pg.stop()
    dirs = [d for d in (soak.base, soak.pg.dir if soak.pg else None) if d is not None]
    if soak.args.keep:
        for d in dirs:
            say(f"kept {d}")
    else:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    if soak.watchdog is not None and soak.watchdog.poll() is None:
        soak.watchdog.kill()  # our own child, by its pid: nothing left for it to do
        soak.watchdog.wait()


def print_summary(report: dict) -> None:
    rows = [
        ("database", report.get("db")),
        ("messages sent", report.get("messages_sent")),
        ("accepted", report.get("accepted")),
        ("rejected / never answered", f"{report.get('rejected')} / {report.get('never_answered')}"),
        ("received at least once", report.get("received_at_least_once")),
        ("LOST (accepted, never received)", report.get("lost")),
        ("duplicate receipts", report.get("duplicate_receipts")),
        ("messages received more than once", report.get("messages_received_more_than_once")),
        ("orphan messages (not the id returned)", report.get("orphan_messages")),
        ("STUCK sending (lease expired)", report.get("stuck_sending")),
        ("sending rows (any)", report.get("sending_rows")),
        ("messages without a succeeded delivery", report.get("messages_without_succeeded_delivery")),
        ("messages in the database", report.get("messages_in_db")),
        ("kills", report.get("kills")),
        ("unexpected exits", report.get("unexpected_exits")),
        ("kill cycles done", f"{report.get('cycles_done')} / {report.get('cycles_requested')}"),
        ("client", report.get("client")),
        ("burst duration (s)", report.get("burst_seconds")),
        ("drain duration after burst (s)", report.get("drain_seconds")),
        ("settle duration (s)", report.get("settle_seconds")),
        ("load average start", report.get("loadavg_start")),
        ("load average end", report.get("loadavg_end")),
        ("error", report.get("error")),
        ("RESULT", "PASS" if report.get("passed") else "FAIL"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        if value is not None:
            print(f"  {name:<{width}}  {value}")
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Crash soak: SIGKILL hookline's processes during a message burst, then check that no "
                    "accepted message was lost and no delivery is stuck in `sending`. Starts its own "
                    "receiver, data dir and (for --db postgres) PostgreSQL cluster; needs a built binary "
                    "(cargo build --release -p hookline).",
        epilog="Exit status: 0 when nothing was lost, nothing is stuck, every message was accepted and "
               "every kill cycle ran; 1 when a check failed; 2 on an error; 130 when interrupted.")
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres",
                        help="postgres: separate `api` and `worker` processes; sqlite: one `serve` (default: postgres)")
    parser.add_argument("--messages", type=int, default=20000, help="messages in the burst (default: 20000)")
    parser.add_argument("--cycles", type=int, default=20,
                        help="kill cycles; a cycle kills the API then the worker (sqlite: serve) (default: 20)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent sending threads (default: 16)")
    parser.add_argument("--binary", type=Path, default=REPO / "target" / "release" / "hookline",
                        help="the hookline binary (default: target/release/hookline)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (data, logs, PostgreSQL data)")
    parser.add_argument("--report", type=Path, help="also write the report as JSON to this file")
    parser.add_argument("--lease-seconds", type=int, default=5,
                        help="HOOKLINE_DELIVERY_LEASE_SECONDS for the run (default: 5)")
    parser.add_argument("--burst-timeout", type=float, default=900.0,
                        help="give up sending after this many seconds (default: 900; keys cut off by a "
                             "killed API stay pending on the server for 5 minutes)")
    parser.add_argument("--drain-timeout", type=float, default=300.0,
                        help="wait this long for every accepted message to arrive (default: 300)")
    parser.add_argument("--settle-timeout", type=float, default=60.0,
                        help="then wait up to this long for `sending` rows to clear (default: 60)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the pauses between kills")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra setting for every hookline process, e.g. HOOKLINE_SEND_THREADS=2 (repeatable)")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.clients < 1 or args.cycles < 0 or args.lease_seconds < 1:
        parser.error("--messages, --clients and --lease-seconds must be at least 1, --cycles at least 0")
    for item in args.set:
        if "=" not in item or not item.startswith("HOOKLINE_"):
            parser.error(f"--set takes HOOKLINE_NAME=VALUE, not {item!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.binary = args.binary.resolve()
    if not os.access(args.binary, os.X_OK):
        print(f"error: {args.binary} is not an executable; build it: cargo build --release -p hookline",
              file=sys.stderr)
        return 2
    soak = Soak(args)
    if args.db == "postgres":
        bindir = find_pg_bindir()
        if bindir is None:
            print("error: PostgreSQL server binaries (initdb, pg_ctl, postgres, createdb) not found; "
                  "install them (Debian: apt-get install postgresql) or set HOOKLINE_PG_BINDIR", file=sys.stderr)
            return 2
        if not ((bindir / "psql").exists() or shutil.which("psql")):
            print("error: psql not found (Debian: apt-get install postgresql-client)", file=sys.stderr)
            return 2
        if os.geteuid() == 0 and not shutil.which("runuser"):
            print("error: running as root needs runuser to start PostgreSQL as another user", file=sys.stderr)
            return 2
        soak.pg_bindir = bindir

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    status = 0
    report = soak.report
    try:
        soak.run()
    except KeyboardInterrupt:
        report["error"] = "interrupted"
        status = 130
    except Exception as err:  # noqa: BLE001 (reported, then cleaned up)
        traceback.print_exc()
        report["error"] = f"{type(err).__name__}: {err}"
        status = 2
    finally:
        cleanup(soak)
    report["loadavg_end"] = list(os.getloadavg())
    if "lost" not in report and soak.burst is not None:
        try:
            soak.fill_report()  # a partial report after an error
        except Exception:  # noqa: BLE001
            pass
    report["passed"] = (
        status == 0
        and report.get("lost") == 0
        and report.get("stuck_sending") == 0
        and report.get("accepted") == args.messages
        and report.get("cycles_done") == args.cycles
    )
    if status == 0 and not report["passed"]:
        status = 1
    print_summary(report)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        say(f"report written to {args.report}")
    return status


if __name__ == "__main__":
    sys.exit(main())
