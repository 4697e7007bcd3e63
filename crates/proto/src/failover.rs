//! Calling one of several replicas of a role: the one that answered last
//! first, the next when it is `UNAVAILABLE` (a standby, one restarting, one
//! unreachable), for as long as a caller is willing to wait for a standby
//! to take over.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::{Code, Status};

/// Pause between two rounds over every replica, while none answers.
const PAUSE: Duration = Duration::from_millis(200);

/// Clients of the replicas of one role.
pub struct Failover<C> {
    clients: Vec<C>,
    current: AtomicUsize,
    /// The role the replicas play, as errors name it.
    role: String,
}

impl<C: Clone> Failover<C> {
    /// Over `clients`, one per replica: at least one.
    pub fn new(clients: Vec<C>) -> Result<Self, String> {
        if clients.is_empty() {
            return Err("no address".into());
        }
        Ok(Failover {
            clients,
            current: AtomicUsize::new(0),
            role: "replica".into(),
        })
    }

    /// Over the replicas of `role` at `endpoints`, each connected lazily
    /// (`https://` addresses under TLS with `tls`, `http://` ones without)
    /// and made a client by `client`; every call carries the caller's
    /// trace context ([`crate::telemetry::traced`]).
    pub fn connect_lazy(
        endpoints: &[String],
        role: &str,
        tls: Option<&tonic::transport::ClientTlsConfig>,
        client: impl Fn(crate::telemetry::Traced) -> C,
    ) -> Result<Self, String> {
        let clients = endpoints
            .iter()
            .map(|endpoint| {
                let channel = crate::tls::endpoint(endpoint, tls)
                    .map_err(|e| format!("{role} address {e}"))?
                    .connect_lazy();
                Ok(client(crate::telemetry::traced(channel)))
            })
            .collect::<Result<_, String>>()?;
        let mut failover = Failover::new(clients).map_err(|_| format!("no {role} address"))?;
        failover.role = role.to_string();
        Ok(failover)
    }

    /// Calls `call` on the replica that answered last, then on the others
    /// in turn while they answer `UNAVAILABLE` (or none within
    /// [`crate::transport::CALL_TIMEOUT`]); any other answer is final.
    /// When none answers, tries again every 200 ms until `window` has
    /// passed (at least one round, even for a zero window), then returns
    /// the last `UNAVAILABLE`. Only for calls that are safe to repeat.
    pub async fn call<T, F, Fut>(&self, window: Duration, call: F) -> Result<T, Status>
    where
        F: Fn(C) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let start = self.current.load(Ordering::Relaxed);
            let mut last = Status::unavailable("no replica answered");
            for offset in 0..self.clients.len() {
                let at = (start + offset) % self.clients.len();
                match crate::transport::within(&self.role, call(self.clients[at].clone())).await {
                    Ok(answer) => {
                        self.current.store(at, Ordering::Relaxed);
                        return Ok(answer);
                    }
                    Err(status) if status.code() == Code::Unavailable => last = status,
                    Err(status) => return Err(status),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Replicas by number, answering as `answers` says, recording who was
    /// asked.
    async fn ask(
        failover: &Failover<usize>,
        answers: &[Code],
        asked: &Mutex<Vec<usize>>,
        window: Duration,
    ) -> Result<usize, Status> {
        failover
            .call(window, |replica| async move {
                asked.lock().expect("lock").push(replica);
                match answers[replica] {
                    Code::Ok => Ok(replica),
                    code => Err(Status::new(code, format!("replica {replica}"))),
                }
            })
            .await
    }

    #[tokio::test]
    async fn the_replica_that_answered_is_asked_first_next_time() {
        let failover = Failover::new(vec![0, 1, 2]).expect("replicas");
        let asked = Mutex::new(Vec::new());
        let answers = [Code::Unavailable, Code::Unavailable, Code::Ok];
        assert_eq!(
            ask(&failover, &answers, &asked, Duration::ZERO).await.ok(),
            Some(2)
        );
        assert_eq!(
            ask(&failover, &answers, &asked, Duration::ZERO).await.ok(),
            Some(2)
        );
        assert_eq!(*asked.lock().expect("lock"), [0, 1, 2, 2]);
    }

    #[tokio::test]
    async fn other_answers_are_final() {
        let failover = Failover::new(vec![0, 1]).expect("replicas");
        let asked = Mutex::new(Vec::new());
        let answers = [Code::InvalidArgument, Code::Ok];
        let status = ask(&failover, &answers, &asked, Duration::ZERO)
            .await
            .expect_err("final");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(*asked.lock().expect("lock"), [0]);
    }

    #[tokio::test(start_paused = true)]
    async fn while_none_answers_rounds_repeat_until_the_window_ends() {
        let failover = Failover::new(vec![0, 1]).expect("replicas");
        let asked = Mutex::new(Vec::new());
        let answers = [Code::Unavailable, Code::Unavailable];
        let status = ask(&failover, &answers, &asked, Duration::from_secs(1))
            .await
            .expect_err("none");
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "replica 1");
        let rounds = asked.lock().expect("lock").len() / 2;
        assert!((5..=7).contains(&rounds), "{rounds} rounds in a second");
        assert!(Failover::<usize>::new(Vec::new()).is_err());
    }
}
