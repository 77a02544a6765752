//! One publish frame: open it, check the target, de-duplicate, and hand
//! the job to its own task.

use std::collections::VecDeque;
use std::time::Duration;

use brine_protocol::PublishError;
use brine_protocol::envelope::JobReturn;
use brine_protocol::envelope::{PublishLoad as WireLoad, unwrap_publish};
use brine_protocol::target::{MinionView, Target, matches};
use tracing::{Instrument, debug, info, info_span, warn};

use super::Shared;
use crate::PublishLoad;

/// The publish key carrying a job's hard timeout in seconds (a Brine
/// extension; stock Salt publishes none and its jobs run to their end).
pub const JOB_TIMEOUT_KEY: &str = "job_timeout";

/// The last `hwm` jids seen (Salt's `minion_jid_queue_hwm`).
#[derive(Debug)]
pub(crate) struct JidQueue {
    seen: VecDeque<String>,
    hwm: usize,
}

impl JidQueue {
    pub(crate) fn new(hwm: usize) -> JidQueue {
        JidQueue {
            seen: VecDeque::new(),
            hwm: hwm.max(1),
        }
    }

    /// Records `jid`; false if it was among the last `hwm`.
    pub(crate) fn insert(&mut self, jid: &str) -> bool {
        if self.seen.iter().any(|j| j == jid) {
            return false;
        }
        if self.seen.len() >= self.hwm {
            self.seen.pop_front();
        }
        self.seen.push_back(jid.to_owned());
        true
    }
}

/// What became of a frame.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// A job for us: run it.
    Job(Box<WireLoad>),
    /// Nothing to do.
    Dropped,
}

/// Opens a publish as `AsyncPubChannel._decode_payload` and
/// `Minion._target_load` do. A frame that fails its HMAC makes the minion
/// re-authenticate (the master rotated its AES key) and try this same
/// frame once more with the new key.
pub(crate) async fn open(shared: &Shared, frame: &[u8], jids: &mut JidQueue) -> Accepted {
    let Some(session) = shared.channel.current() else {
        debug!("publish before authentication; dropped");
        return Accepted::Dropped;
    };
    let verify = shared.verify_publish_sig;
    let load = match unwrap_publish(frame, &session.aes, &session.master_pub, verify) {
        Ok(load) => load,
        Err(err) if err.is_reauth() => {
            info!("a publish did not decrypt with our AES key (rotated?); re-authenticating");
            let session = match shared.channel.reauth(session.generation).await {
                Ok(session) => session,
                Err(fatal) => {
                    shared.fail(fatal);
                    return Accepted::Dropped;
                }
            };
            match unwrap_publish(frame, &session.aes, &session.master_pub, verify) {
                Ok(load) => load,
                Err(err) => {
                    warn!(error = %err, "publish still unreadable after re-authenticating; dropped");
                    return Accepted::Dropped;
                }
            }
        }
        Err(err @ PublishError::Stale { .. }) => {
            warn!(error = %err, "stale or replayed publish dropped");
            return Accepted::Dropped;
        }
        Err(err) => {
            warn!(error = %err, "publish refused");
            return Accepted::Dropped;
        }
    };
    let jid = load.jid().to_owned();
    let target = match Target::from_load(load.as_value()) {
        Ok(target) => target,
        Err(err) => {
            warn!(jid, error = %err, "publish with an unusable target ignored");
            return Accepted::Dropped;
        }
    };
    match matches(
        &target,
        &MinionView::new(shared.channel.id(), &shared.grains),
    ) {
        Ok(true) => {}
        Ok(false) => {
            debug!(jid, "publish not targeted at this minion");
            return Accepted::Dropped;
        }
        Err(err) => {
            warn!(jid, error = %err, "publish target could not be matched; ignored");
            return Accepted::Dropped;
        }
    }
    if !jids.insert(&jid) {
        debug!(jid, "publish of a recent jid ignored");
        return Accepted::Dropped;
    }
    Accepted::Job(Box::new(load))
}

/// The job's hard timeout, if the publish carries a positive one.
fn job_timeout(load: &WireLoad) -> Option<Duration> {
    let value = load.get(JOB_TIMEOUT_KEY)?;
    // msgpack carries whole seconds as integers and fractions as floats
    #[allow(clippy::cast_precision_loss)]
    let secs = value
        .as_f64()
        .or_else(|| value.as_i64().map(|n| n as f64))?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

/// Runs one job and delivers its return (spooling it if the master does
/// not acknowledge it).
pub(crate) async fn run_job(shared: std::sync::Arc<Shared>, wire: Box<WireLoad>) {
    let span = info_span!("publish", jid = %wire.jid());
    async move {
        let mut job = match PublishLoad::from_publish(&wire) {
            Ok(job) => job,
            Err(err) => {
                warn!(error = %err, "publish load cannot be run; ignored");
                return;
            }
        };
        job.timeout = job_timeout(&wire);
        let Some(data) = crate::execute(
            &shared.modules,
            &job,
            &shared.jobs,
            &shared.grains,
            &shared.exec,
        )
        .await
        else {
            return;
        };
        let mut ret = JobReturn::for_job(&wire, shared.channel.id(), data.ret, data.retcode);
        ret.success = data.success;
        ret.out = data.out;
        shared.deliver(ret.jid.clone(), ret.to_load()).await;
    }
    .instrument(span)
    .await
}

/// A value for tests: the jid queue keeps order.
#[cfg(test)]
mod tests {
    use super::*;
    use brine_protocol::Value;

    #[test]
    fn jid_queue_remembers_the_last_hwm() {
        let mut q = JidQueue::new(2);
        assert!(q.insert("1"));
        assert!(!q.insert("1"));
        assert!(q.insert("2"));
        assert!(q.insert("3"));
        assert!(q.insert("1"), "1 was pushed out");
        assert!(!q.insert("3"));
    }

    #[test]
    fn job_timeout_is_read_when_positive() {
        let mut v = Value::Map(vec![
            (Value::from("tgt"), Value::from("*")),
            (Value::from("jid"), Value::from("1")),
            (Value::from("fun"), Value::from("test.ping")),
            (Value::from("arg"), Value::Array(vec![])),
        ]);
        let load = WireLoad::from_value(v.clone()).unwrap();
        assert_eq!(job_timeout(&load), None);
        v.insert(JOB_TIMEOUT_KEY, 2);
        assert_eq!(
            job_timeout(&WireLoad::from_value(v.clone()).unwrap()),
            Some(Duration::from_secs(2))
        );
        v.insert(JOB_TIMEOUT_KEY, -1);
        assert_eq!(job_timeout(&WireLoad::from_value(v).unwrap()), None);
    }
}
