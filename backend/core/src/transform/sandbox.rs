//! Where transforms run: child processes of the server (`hookline transform-sandbox`, the same
//! binary), never the server itself. A jq program is Turing-complete: `def f: 1 + f; f` overflows
//! any stack (which aborts a process), `[range(1e12)]` exhausts memory, `repeat(.)` never ends.
//! In a child each of those ends the child only: it runs with an empty environment, no input but
//! its requests, a cap on its address space ([`MEMORY_LIMIT`]), and a watchdog that answers
//! "CPU time limit" and exits once a request has used its CPU time. The server keeps a few
//! children ([`Transformer`]) and starts a new one whenever one ends.
//!
//! Protocol (stdin → stdout of the child): frames of a 4-byte little-endian length and a JSON
//! document. Request `{"program", "input", "cpu_ms", "max_output"}` (`input` a JSON value);
//! answer `{"ok": <the program's output>}` or `{"error": "…", "exit": bool}` (`exit`: the child
//! ends after this answer).

use std::{
    collections::HashMap,
    io::{Read, Write},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::Duration,
};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::program::{Compiled, compile};

/// The child's address-space cap: a program that allocates past it aborts its child.
pub const MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;
/// The stack of the thread that runs programs; deep recursion past it aborts the child.
const STACK: usize = 64 * 1024 * 1024;
/// Compiled programs a child keeps; past that it ends after its answer (a fresh one starts empty).
const MAX_CACHED_PROGRAMS: usize = 256;
/// Longest frame a child reads: a program, and an input of at most the largest payload.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// CPU time compiling a program may take (jaq's standard library with it: milliseconds in a
/// release build, about a tenth of a second in a debug one).
const COMPILE_BUDGET: Duration = Duration::from_secs(2);
/// Children the server keeps.
const CHILDREN: usize = 2;
/// The subcommand that runs a child.
pub const SUBCOMMAND: &str = "transform-sandbox";

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    program: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    input: &'a RawValue,
    cpu_ms: u64,
    max_output: usize,
}

fn write_frame(out: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    out.write_all(&(body.len() as u32).to_le_bytes())?;
    out.write_all(body)?;
    out.flush()
}

/// Reads a frame; `None` at the end of the stream.
fn read_frame(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too long"));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

fn error_frame(message: &str, exit: bool) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"error": message, "exit": exit})).expect("a JSON object")
}

fn cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(now.tv_sec.max(0) as u64, now.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// The child's main loop (`hookline transform-sandbox`): answers requests on stdin until it
/// closes, a request runs past its CPU time, or the program cache is full.
pub fn serve() -> std::io::Result<()> {
    let limit = rustix::process::Rlimit { current: Some(MEMORY_LIMIT), maximum: Some(MEMORY_LIMIT) };
    rustix::process::setrlimit(rustix::process::Resource::As, limit).map_err(std::io::Error::from)?;
    let (jobs, job_queue) = mpsc::channel::<(String, Vec<u8>)>();
    let (answers, answered) = mpsc::channel::<Result<String, String>>();
    // The process CPU time (ns, plus one) when the current program began to run; 0 while it
    // compiles. Compiling is not the program's doing (jaq's standard library is compiled with
    // it) and has its own, larger budget.
    let running_since = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let marker = running_since.clone();
    // How many compiled programs the run thread keeps.
    let cached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cached_count = cached.clone();
    std::thread::Builder::new().name("transform".to_owned()).stack_size(STACK).spawn(move || {
        let mut programs: HashMap<String, Compiled> = HashMap::new();
        for (program, input) in job_queue {
            let compiled = match programs.get(&program) {
                Some(compiled) => Ok(compiled),
                None => match compile(&program) {
                    Ok(compiled) => {
                        cached_count.store(programs.len() + 1, std::sync::atomic::Ordering::Release);
                        Ok(&*programs.entry(program).or_insert(compiled))
                    }
                    Err(err) => Err(err.to_string()),
                },
            };
            marker.store(cpu_time().as_nanos() as u64 + 1, std::sync::atomic::Ordering::Release);
            let result = compiled.and_then(|compiled| compiled.run(&input));
            if answers.send(result).is_err() {
                return;
            }
        }
    })?;
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    while let Some(frame) = read_frame(&mut stdin)? {
        let request: Request = match serde_json::from_slice(&frame) {
            Ok(request) => request,
            Err(err) => {
                write_frame(&mut stdout, &error_frame(&format!("bad request: {err}"), true))?;
                return Ok(());
            }
        };
        let budget = Duration::from_millis(request.cpu_ms);
        let started = cpu_time();
        running_since.store(0, std::sync::atomic::Ordering::Release);
        if jobs.send((request.program.into_owned(), request.input.get().as_bytes().to_vec())).is_err() {
            return Ok(());
        }
        let answer = loop {
            match answered.recv_timeout(Duration::from_millis(2)) {
                Ok(answer) => break answer,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = cpu_time();
                    let message = match running_since.load(std::sync::atomic::Ordering::Acquire) {
                        0 if now.saturating_sub(started) > COMPILE_BUDGET => {
                            format!("the program took more than {} s to compile", COMPILE_BUDGET.as_secs())
                        }
                        0 => continue,
                        since if now.saturating_sub(Duration::from_nanos(since - 1)) > budget => {
                            format!("the program ran past its CPU time limit ({} ms)", request.cpu_ms)
                        }
                        _ => continue,
                    };
                    write_frame(&mut stdout, &error_frame(&message, true))?;
                    // The runaway program dies with this process.
                    std::process::exit(0);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        };
        let recycle = cached.load(std::sync::atomic::Ordering::Acquire) >= MAX_CACHED_PROGRAMS;
        let frame = match answer {
            Ok(output) if output.len() > request.max_output => error_frame(
                &format!(
                    "the output is {} bytes, more than the limit of {}",
                    output.len(),
                    request.max_output
                ),
                recycle,
            ),
            Ok(output) => match serde_json::from_str::<&RawValue>(&output) {
                Ok(_) if !recycle => format!("{{\"ok\":{output}}}").into_bytes(),
                Ok(_) => format!("{{\"ok\":{output},\"exit\":true}}").into_bytes(),
                Err(_) => error_frame(
                    "the output is not JSON (it holds NaN, an infinity or a byte string)",
                    recycle,
                ),
            },
            Err(message) => error_frame(&message, recycle),
        };
        write_frame(&mut stdout, &frame)?;
        if recycle {
            return Ok(());
        }
    }
    Ok(())
}

/// How a run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The program failed, ran past a limit or produced an unusable output: the message says
    /// which, for the attempt log.
    Program(String),
    /// No sandbox could run it (the server's fault, not the program's).
    Unavailable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Program(message) | Failure::Unavailable(message) => f.write_str(message),
        }
    }
}

struct Job {
    request: Vec<u8>,
    reply: tokio::sync::oneshot::Sender<Result<String, Failure>>,
}

/// The server's side: runs requests on [`CHILDREN`] sandbox children, each driven by a thread
/// of its own (blocking pipes: no runtime is involved, so any runtime's task may ask).
pub struct Transformer {
    /// The executable and arguments that start a child.
    command: Option<(PathBuf, Vec<String>)>,
    queue: OnceLock<mpsc::Sender<Job>>,
}

struct Sandbox {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Transformer {
    /// Children run `executable args…` (the server's own binary with [`SUBCOMMAND`]).
    pub fn new(executable: PathBuf, args: Vec<String>) -> Transformer {
        Transformer { command: Some((executable, args)), queue: OnceLock::new() }
    }

    /// This process's own executable with [`SUBCOMMAND`]: what the server uses.
    pub fn current_exe() -> Transformer {
        match std::env::current_exe() {
            Ok(path) => Transformer::new(path, vec![SUBCOMMAND.to_owned()]),
            Err(_) => Transformer { command: None, queue: OnceLock::new() },
        }
    }

    /// Runs `program` on `input` (JSON text) with `cpu_ms` of CPU time and an output of at most
    /// `max_output` bytes: the output as JSON text.
    pub async fn run(
        &self,
        program: &str,
        input: &str,
        cpu_ms: u64,
        max_output: usize,
    ) -> Result<String, Failure> {
        let request = format!(
            "{{\"program\":{},\"cpu_ms\":{cpu_ms},\"max_output\":{max_output},\"input\":{input}}}",
            serde_json::to_string(program).expect("a string")
        )
        .into_bytes();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queue = self.queue.get_or_init(|| self.start());
        queue
            .send(Job { request, reply })
            .map_err(|_| Failure::Unavailable("the transform sandboxes stopped".to_owned()))?;
        answer.await.map_err(|_| Failure::Unavailable("the transform sandboxes stopped".to_owned()))?
    }

    fn start(&self) -> mpsc::Sender<Job> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..CHILDREN {
            let jobs = jobs.clone();
            let command = self.command.clone();
            let spawned = std::thread::Builder::new().name(format!("transform-{n}")).spawn(move || {
                let mut sandbox: Option<Sandbox> = None;
                loop {
                    let job = {
                        let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
                        match jobs.recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        }
                    };
                    let result = exchange(&command, &mut sandbox, &job.request);
                    let _ = job.reply.send(result);
                }
            });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "could not start a transform thread");
            }
        }
        queue
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(command: &Option<(PathBuf, Vec<String>)>) -> Result<Sandbox, Failure> {
    let (executable, args) = command
        .as_ref()
        .ok_or_else(|| Failure::Unavailable("the server's executable is unknown".to_owned()))?;
    let mut child = Command::new(executable)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| Failure::Unavailable(format!("could not start a transform sandbox: {err}")))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(Failure::Unavailable("a transform sandbox has no pipes".to_owned()));
    };
    Ok(Sandbox { child, stdin, stdout })
}

/// One request on this thread's child (started if there is none). A child that ends without an
/// answer took the request down with it: it exhausted its memory or its stack.
fn exchange(
    command: &Option<(PathBuf, Vec<String>)>,
    slot: &mut Option<Sandbox>,
    request: &[u8],
) -> Result<String, Failure> {
    if slot.is_none() {
        *slot = Some(spawn(command)?);
    }
    let sandbox = slot.as_mut().expect("just set");
    let answer = write_frame(&mut sandbox.stdin, request).and_then(|()| read_frame(&mut sandbox.stdout));
    let frame = match answer {
        Ok(Some(frame)) => frame,
        Ok(None) | Err(_) => {
            *slot = None;
            return Err(Failure::Program(format!(
                "the program exhausted its memory ({} MiB) or stack ({} MiB)",
                MEMORY_LIMIT / 1024 / 1024,
                STACK / 1024 / 1024
            )));
        }
    };
    // Read as raw members: an output of `null` is an answer (`{"ok":null}`), not a missing one.
    let parsed: HashMap<&str, &RawValue> = match serde_json::from_slice(&frame) {
        Ok(parsed) => parsed,
        Err(err) => {
            *slot = None;
            return Err(Failure::Unavailable(format!("a transform sandbox answered badly: {err}")));
        }
    };
    let error = parsed.get("error").and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
    let result = match (parsed.get("ok"), error) {
        (Some(output), _) => Ok(output.get().to_owned()),
        (None, Some(error)) => Err(Failure::Program(error)),
        (None, None) => Err(Failure::Unavailable("a transform sandbox answered nothing".to_owned())),
    };
    if parsed.get("exit").is_some_and(|raw| raw.get() == "true") {
        *slot = None;
    }
    result
}
