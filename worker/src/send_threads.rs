//! The threads webhooks are sent on: one single-threaded tokio runtime per thread
//! (`HOOKLINE_SEND_THREADS`, half the CPUs by default: `config::default_send_threads`), each with
//! its own HTTP client. Deliveries are handed to them in turn.
//!
//! Why not the process's multi-threaded runtime: there each request involved two tasks (the
//! delivery's and hyper's connection task) that the scheduler woke and moved across its worker
//! threads, and in bench (c) (fan-out, 2 cores) the two cores were idle ≈ 15 % of the run (the
//! server's and the bench's CPU time against the wall clock) while deliveries waited. On a thread
//! of its own, a delivery's task, the connection it uses (its own client's pool) and that
//! connection's task stay together: idle ≈ 10 %, and ≈ 5 % more deliveries a second for the same
//! CPU per delivery (median of 9 alternating runs). The engine's loops, the recorder and the API
//! stay where they were.

use std::{
    io,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use tokio::{runtime::Handle, sync::oneshot};

/// One send thread: its runtime's handle, its client, and the signal that ends it.
struct Shard {
    runtime: Handle,
    client: reqwest::Client,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

pub struct SendThreads {
    shards: Vec<Shard>,
    next: AtomicUsize,
}

impl SendThreads {
    /// Starts `threads` send threads (at least one), each with a client made by `client`.
    pub fn start(threads: usize, client: impl Fn() -> reqwest::Client) -> io::Result<SendThreads> {
        let shards = (0..threads.max(1))
            .map(|n| {
                let (ready, runtime) = std::sync::mpsc::channel();
                let (stop, stopped) = oneshot::channel::<()>();
                thread::Builder::new().name(format!("hookline-send-{n}")).spawn(move || {
                    let built = tokio::runtime::Builder::new_current_thread().enable_all().build();
                    let runtime = match built {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = ready.send(Err(err));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(runtime.handle().clone()));
                    // Until stopped (or the sender is dropped with the engine).
                    let _ = runtime.block_on(stopped);
                    // Tasks still there are dropped; a DNS lookup blocking in the runtime's pool
                    // is not waited for long.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
                let runtime = runtime.recv().map_err(io::Error::other)??;
                Ok(Shard { runtime, client: client(), stop: Mutex::new(Some(stop)) })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(SendThreads { shards, next: AtomicUsize::new(0) })
    }

    /// The next send thread in turn: where to spawn a delivery's task, and the client it uses.
    pub fn next(&self) -> (&Handle, &reqwest::Client) {
        let shard = &self.shards[self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len()];
        (&shard.runtime, &shard.client)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.len()
    }

    /// Ends the threads; tasks still on them are dropped. The engine calls it once its graceful
    /// stop has waited for the attempts in flight.
    pub fn stop(&self) {
        for shard in &self.shards {
            if let Some(stop) = shard.stop.lock().unwrap().take() {
                let _ = stop.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[tokio::test]
    async fn deliveries_go_to_each_thread_in_turn_until_stopped() {
        let threads = SendThreads::start(3, reqwest::Client::new).unwrap();
        assert_eq!(threads.len(), 3);
        let mut names = Vec::new();
        for _ in 0..6 {
            let (runtime, _) = threads.next();
            let name = runtime.spawn(async { thread::current().name().map(str::to_owned) }).await.unwrap();
            names.push(name.expect("a named thread"));
        }
        assert_eq!(names[..3], names[3..], "in turn: {names:?}");
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), 3, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("hookline-send-")), "{names:?}");

        // A task still running when the threads stop is dropped with its runtime.
        let (runtime, _) = threads.next();
        let runtime = runtime.clone();
        let pending = runtime.spawn(std::future::pending::<()>());
        threads.stop();
        let err = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("the runtime shut down")
            .expect_err("the pending task was cancelled");
        assert!(err.is_cancelled());
        let late = runtime.spawn(async {});
        assert!(late.await.expect_err("nothing runs after the stop").is_cancelled());
    }
}
