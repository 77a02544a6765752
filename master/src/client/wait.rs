//! `cmd`'s waiting, as Salt's `get_iter_returns` and `gather_job_info`:
//! collect returns until every expected minion answered or `timeout`
//! passed; then ask the silent ones `saltutil.find_job [jid]` and keep
//! waiting for those that report the job running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use brine_protocol::Value;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{JobSpec, LocalClient, MinionReturn, ReturnStream};

/// The outcome of [`LocalClient::cmd`].
#[derive(Debug, Clone, PartialEq)]
pub struct CmdResult {
    /// The job id.
    pub jid: String,
    /// The minions the master expected to return.
    pub minions: Vec<String>,
    /// Minions a list target named that have no accepted key.
    pub missing: Vec<String>,
    /// The returns received, by minion id.
    pub returns: BTreeMap<String, MinionReturn>,
    /// Expected minions that did not return ("Minion did not return").
    pub not_returned: Vec<String>,
}

pub(super) async fn gather(
    client: &LocalClient,
    mut stream: ReturnStream,
    timeout: Duration,
    on_return: &mut (dyn FnMut(&MinionReturn) + Send),
) -> CmdResult {
    let published = stream.published().clone();
    // Expected minions yet to return: each return removes its own, so
    // knowing when all are in costs nothing per return (checking every
    // expected id on each return was quadratic: 0.2 s of CPU a job at
    // 10,000 minions).
    let mut waiting: BTreeSet<String> = published.minions.iter().cloned().collect();
    let mut returns: BTreeMap<String, MinionReturn> = BTreeMap::new();
    let mut deadline = Instant::now() + timeout;
    while !waiting.is_empty() {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(ret)) => {
                on_return(&ret);
                waiting.remove(&ret.id);
                returns.insert(ret.id.clone(), ret);
            }
            Ok(None) => {
                warn!(jid = %published.jid, "event bus closed while waiting for returns");
                break;
            }
            Err(_) => {
                let silent: Vec<String> = waiting.iter().cloned().collect();
                let running = find_running(
                    client,
                    &published.jid,
                    &silent,
                    &mut stream,
                    &mut returns,
                    on_return,
                )
                .await;
                waiting.retain(|id| !returns.contains_key(id));
                if running.is_empty() {
                    break;
                }
                debug!(jid = %published.jid, running = running.len(), "minions still running the job");
                deadline = Instant::now() + timeout;
            }
        }
    }
    let not_returned = published
        .minions
        .iter()
        .filter(|id| !returns.contains_key(*id))
        .cloned()
        .collect();
    CmdResult {
        jid: published.jid,
        minions: published.minions,
        missing: published.missing,
        returns,
        not_returned,
    }
}

/// One `saltutil.find_job` round over `silent`; returns the minions that
/// report `jid` running and have not returned meanwhile.
async fn find_running(
    client: &LocalClient,
    jid: &str,
    silent: &[String],
    stream: &mut ReturnStream,
    returns: &mut BTreeMap<String, MinionReturn>,
    on_return: &mut (dyn FnMut(&MinionReturn) + Send),
) -> BTreeSet<String> {
    let mut running = BTreeSet::new();
    if silent.is_empty() {
        return running;
    }
    let job = JobSpec {
        tgt: Value::Array(silent.iter().map(|id| Value::from(id.as_str())).collect()),
        tgt_type: "list".to_owned(),
        arg: vec![Value::from(jid)],
        ..JobSpec::new("", "saltutil.find_job")
    };
    let mut probe = match client.run_job(&job).await {
        Ok(probe) => probe,
        Err(err) => {
            warn!(jid, error = %err, "could not ask minions whether the job still runs");
            return running;
        }
    };
    let mut unanswered: BTreeSet<String> = probe.published().minions.iter().cloned().collect();
    let deadline = Instant::now() + client.gather_job_timeout();
    let mut main_open = true;
    while !unanswered.is_empty() {
        tokio::select! {
            found = probe.next() => match found {
                Some(ret) => {
                    let is_running = ret.ret.as_map().is_some_and(|m| !m.is_empty());
                    if is_running {
                        running.insert(ret.id.clone());
                    }
                    unanswered.remove(&ret.id);
                }
                None => break,
            },
            ret = stream.next(), if main_open => match ret {
                Some(ret) => {
                    on_return(&ret);
                    returns.insert(ret.id.clone(), ret);
                }
                None => main_open = false,
            },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    running.retain(|id| !returns.contains_key(id));
    running
}
