//! Batch mode (`-b/--batch-size`), as Salt's `salt/cli/batch.py`: ping
//! the target, then keep `size` minions busy, starting the next one as
//! each returns, so at most `size` run the job at any time.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use brine_protocol::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::{JobSpec, LocalClient, MinionReturn};

/// A batch size: a count, or a percentage of the minions that answered
/// the ping (`10%` or `%10`, as Salt accepts both).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchSize {
    /// This many at a time.
    Count(usize),
    /// This share of the targeted minions, at least one.
    Percent(f64),
}

/// A batch size that is neither a count nor a percentage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid batch size {0:?}: it must be in the form of %10, 10% or 3")]
pub struct BatchSizeError(pub String);

impl FromStr for BatchSize {
    type Err = BatchSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BatchSizeError(text.to_owned());
        let trimmed = text.trim();
        if trimmed.contains('%') {
            let number: f64 = trimmed.trim_matches('%').parse().map_err(|_| bad())?;
            if !(number.is_finite() && number > 0.0) {
                return Err(bad());
            }
            Ok(BatchSize::Percent(number))
        } else {
            match trimmed.parse::<usize>() {
                Ok(0) | Err(_) => Err(bad()),
                Ok(n) => Ok(BatchSize::Count(n)),
            }
        }
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Count(n) => write!(f, "{n}"),
            BatchSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl BatchSize {
    /// How many run at once out of `total` (Salt rounds a share down,
    /// except that a share below one minion is one).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub fn of(self, total: usize) -> usize {
        match self {
            BatchSize::Count(n) => n.max(1),
            BatchSize::Percent(p) => {
                let share = p / 100.0 * total as f64;
                if share < 1.0 { 1 } else { share as usize }
            }
        }
    }
}

/// What a batch run reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchEvent {
    /// A minion did not answer the ping; nothing is sent to it.
    Down(String),
    /// A job is published to these minions.
    Executing(Vec<String>),
    /// A minion returned.
    Returned(MinionReturn),
    /// A minion the job was sent to did not return (the jid is its job's).
    NotReturned {
        /// The minion.
        id: String,
        /// The job it did not answer.
        jid: String,
    },
    /// Publishing to these minions failed.
    Failed {
        /// The minions of that publish.
        ids: Vec<String>,
        /// Why.
        reason: String,
    },
}

enum Message {
    Returned(MinionReturn),
    Silent(String, String),
    Failed(Vec<String>, String),
}

/// Pings `job`'s target, then runs `job` on the minions that answered,
/// `size` at a time, reporting through `on_event`.
pub async fn run(
    client: Arc<LocalClient>,
    job: &JobSpec,
    size: BatchSize,
    timeout: Option<Duration>,
    on_event: &mut (dyn FnMut(BatchEvent) + Send),
) -> Result<(), crate::client::ClientError> {
    let ping = JobSpec {
        fun: "test.ping".to_owned(),
        arg: Vec::new(),
        kwargs: Vec::new(),
        jid: None,
        ..job.clone()
    };
    let pinged = client.cmd(&ping, timeout).await?;
    for id in &pinged.not_returned {
        on_event(BatchEvent::Down(id.clone()));
    }
    let mut to_run: Vec<String> = pinged.returns.keys().cloned().collect();
    let size = size.of(to_run.len());
    to_run.reverse(); // popped from the end: sorted order
    let (tx, mut rx) = mpsc::channel(to_run.len() * 2 + 8);
    let mut tasks = JoinSet::new();
    let mut active: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut next = Vec::new();
        while active.len() + next.len() < size {
            match to_run.pop() {
                Some(id) => next.push(id),
                None => break,
            }
        }
        if !next.is_empty() {
            on_event(BatchEvent::Executing(next.clone()));
            active.extend(next.iter().cloned());
            let sub = JobSpec {
                tgt: Value::Array(next.iter().map(|id| Value::from(id.as_str())).collect()),
                tgt_type: "list".to_owned(),
                jid: None,
                ..job.clone()
            };
            let client = Arc::clone(&client);
            let tx = tx.clone();
            tasks.spawn(async move {
                let forward = tx.clone();
                let mut on_return = move |ret: &MinionReturn| {
                    // capacity covers every minion twice; a full queue
                    // only drops a duplicate
                    let _ = forward.try_send(Message::Returned(ret.clone()));
                };
                match client.cmd_cli(&sub, timeout, &mut on_return).await {
                    Ok(result) => {
                        for id in result.not_returned {
                            let _ = tx.send(Message::Silent(id, result.jid.clone())).await;
                        }
                    }
                    Err(err) => {
                        let _ = tx.send(Message::Failed(next, err.to_string())).await;
                    }
                }
            });
        }
        if active.is_empty() && to_run.is_empty() {
            break;
        }
        match rx.recv().await {
            Some(Message::Returned(ret)) => {
                if active.remove(&ret.id) {
                    on_event(BatchEvent::Returned(ret));
                }
            }
            Some(Message::Silent(id, jid)) => {
                if active.remove(&id) {
                    on_event(BatchEvent::NotReturned { id, jid });
                }
            }
            Some(Message::Failed(ids, reason)) => {
                for id in &ids {
                    active.remove(id);
                }
                on_event(BatchEvent::Failed { ids, reason });
            }
            None => break,
        }
    }
    tasks.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_salt_accepts_them() {
        assert_eq!("3".parse(), Ok(BatchSize::Count(3)));
        assert_eq!("10%".parse(), Ok(BatchSize::Percent(10.0)));
        assert_eq!("%10".parse(), Ok(BatchSize::Percent(10.0)));
        for bad in ["", "0", "-1", "ten", "%", "0%", "1.5"] {
            assert!(bad.parse::<BatchSize>().is_err(), "{bad}");
        }
        let err = "x".parse::<BatchSize>().unwrap_err().to_string();
        assert!(err.contains("%10, 10% or 3"), "{err}");
    }

    #[test]
    fn shares_round_down_but_never_to_zero() {
        assert_eq!(BatchSize::Percent(10.0).of(3), 1);
        assert_eq!(BatchSize::Percent(50.0).of(5), 2);
        assert_eq!(BatchSize::Percent(100.0).of(7), 7);
        assert_eq!(BatchSize::Count(2).of(10), 2);
    }
}
