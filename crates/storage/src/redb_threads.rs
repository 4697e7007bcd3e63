//! The threads that run the embedded store's redb calls: a few, always the
//! same, rather than tokio's blocking pool.
//!
//! redb is synchronous, so its calls run off the async workers. On tokio's
//! blocking pool they ran on whichever of its threads was free, and the
//! pool grows to one thread per call in flight: 64 concurrent proofs left
//! 47 to 76 threads. redb's commits and cache allocate page buffers on the
//! thread that runs them and free them later on another; the global
//! allocator (mimalloc) reclaims such a block only when the thread that
//! allocated it allocates again, and most of those threads rarely do. The
//! vault's memory then grew with every streamed batch after a burst of
//! proofs: from 440 MiB to 1.96 GiB over two streams of 100,000 into a log
//! of 2.25 million entries, where a fixed pool of four held 405–465 MiB
//! (docs/benchmarks.md).
//!
//! This is not a general executor: jobs are short redb transactions, the
//! queue is unbounded as tokio's blocking queue is (the callers bound what
//! is in flight), and a job that panics ends as an error to its caller
//! without taking its thread with it.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, LazyLock, Mutex};

use crate::{Result, StorageError};

type Job = Box<dyn FnOnce() + Send>;

/// How many threads run redb calls. Reads (proofs, lookups) run in
/// parallel up to this many; redb runs one write transaction at a time
/// anyway, so writes gain nothing from more.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().clamp(4, 8))
}

static POOL: LazyLock<Sender<Job>> = LazyLock::new(|| {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..threads() {
        let queue = Arc::clone(&queue);
        // A thread that cannot be started leaves the others to serve; with
        // none at all, every call fails with the error below rather than
        // waiting for ever.
        let _ = std::thread::Builder::new()
            .name(format!("evault-redb-{n}"))
            .spawn(move || serve(&queue));
    }
    jobs
});

/// Runs jobs from `queue` until every sender is gone.
fn serve(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(job) = job else { return };
        // The job's answer channel is dropped as it unwinds, which its
        // caller sees as an error; the thread carries on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

/// Runs `f` on one of the redb threads and waits for its result without
/// blocking the async worker. Dropping the returned future does not stop
/// `f` once it has started: a commit under way completes.
pub(crate) async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // The caller may have gone: then nobody wants the result.
        let _ = answer.send(f());
    });
    POOL.send(job).map_err(|_| {
        StorageError::Backend("storage task failed: no redb thread is running".into())
    })?;
    // The answer is dropped unsent only when the job panicked.
    answered
        .await
        .map_err(|_| StorageError::Backend("storage task failed: it panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_run_on_the_redb_threads_and_answer() {
        let name = run(|| Ok(std::thread::current().name().map(str::to_owned)))
            .await
            .expect("ran");
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("evault-redb-")),
            "{name:?}"
        );
    }

    #[tokio::test]
    async fn a_panicking_call_is_an_error_and_the_threads_carry_on() {
        let panicked = run::<()>(|| panic!("a redb call that panics")).await;
        assert!(
            matches!(panicked, Err(StorageError::Backend(_))),
            "{panicked:?}"
        );
        // As many panics as there are threads, then a call still answers.
        for _ in 0..threads() {
            assert!(run::<()>(|| panic!("again")).await.is_err());
        }
        assert_eq!(run(|| Ok(7)).await.expect("still served"), 7);
    }

    #[tokio::test]
    async fn the_threads_are_few_and_reused() {
        let mut seen = std::collections::HashSet::new();
        let calls: Vec<_> = (0..64)
            .map(|_| {
                tokio::spawn(run(|| {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    Ok(std::thread::current().id())
                }))
            })
            .collect();
        for call in calls {
            seen.insert(call.await.expect("joined").expect("ran"));
        }
        assert!(
            seen.len() <= threads(),
            "{} threads for 64 calls",
            seen.len()
        );
    }
}
