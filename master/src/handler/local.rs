//! Brine's own clear commands for local clients, root-key authenticated:
//! `get_returns` and `get_load` read the job cache (for
//! `LocalClient::get_cache_returns` and `brine-run jobs.lookup_jid`),
//! `list_jobs` lists the stored jobs (`brine-run jobs.list_jobs`) and
//! `present` names the minions holding a session with this master
//! (`brine-run manage.present`).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use brine_protocol::Value;
use brine_protocol::keys::KeyState;
use brine_protocol::tags::isoformat;
use brine_transport_api::Peer;
use tracing::warn;

use super::{Reply, authentication_error, clear_load, is_root_key};
use crate::job_cache::{JobFilter, JobLoad, JobReturn};
use crate::state::Shared;

pub(super) async fn handle(shared: &Arc<Shared>, load: Value, peer: &Peer) -> Reply {
    let cmd = load.get("cmd").and_then(Value::as_str).unwrap_or("");
    if !is_root_key(shared, &load) {
        warn!(%peer, cmd, "refused local command: authentication error (bad or missing root key)");
        return Reply::Clear(authentication_error());
    }
    match cmd {
        "list_jobs" => return list_jobs(shared, &load, peer).await,
        "present" => return present(shared).await,
        _ => {}
    }
    let Some(jid) = load.get("jid").and_then(Value::as_str) else {
        warn!(%peer, cmd, "refused local command: no jid");
        return Reply::Clear(clear_load(
            [("error", Value::from("no jid given"))]
                .into_iter()
                .collect(),
        ));
    };
    let result = if cmd == "get_returns" {
        shared.job_cache.get_returns(jid).await.map(|returns| {
            Value::Map(
                returns
                    .values()
                    .map(|r| (Value::from(r.id.as_str()), return_value(r)))
                    .collect(),
            )
        })
    } else {
        shared
            .job_cache
            .get_load(jid)
            .await
            .map(|found| found.map_or(Value::Nil, |l| load_value(&l)))
    };
    match result {
        Ok(value) => Reply::Clear(clear_load(
            [("jid", Value::from(jid)), ("data", value)]
                .into_iter()
                .collect(),
        )),
        Err(err) => {
            warn!(%peer, cmd, error = %err, "local command failed reading the job cache");
            Reply::Clear(clear_load(
                [("error", Value::from("job cache read failed"))]
                    .into_iter()
                    .collect(),
            ))
        }
    }
}

/// `list_jobs`: the stored loads, newest first, as `get_load` gives one.
/// Optional filters: `since`/`until` (Unix seconds, start time at or after
/// / before), `fun` and `user` (exact), `limit` (the newest N).
async fn list_jobs(shared: &Arc<Shared>, load: &Value, peer: &Peer) -> Reply {
    let time = |key: &str| {
        load.get(key)
            .and_then(|v| v.as_f64().or_else(|| v.as_i64().map(|i| i as f64)))
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map(|secs| UNIX_EPOCH + Duration::from_secs_f64(secs))
    };
    let text = |key: &str| load.get(key).and_then(Value::as_str).map(str::to_owned);
    let filter = JobFilter {
        since: time("since"),
        until: time("until"),
        fun: text("fun"),
        user: text("user"),
        limit: load
            .get("limit")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok()),
    };
    match shared.job_cache.list_jobs(&filter).await {
        Ok(jobs) => Reply::Clear(clear_load(
            [("data", Value::Array(jobs.iter().map(load_value).collect()))]
                .into_iter()
                .collect(),
        )),
        Err(err) => {
            warn!(%peer, cmd = "list_jobs", error = %err, "local command failed reading the job cache");
            Reply::Clear(clear_load(
                [("error", Value::from("job cache read failed"))]
                    .into_iter()
                    .collect(),
            ))
        }
    }
}

/// `present`: the minions holding a session with this master whose key is
/// still accepted, sorted.
async fn present(shared: &Arc<Shared>) -> Reply {
    let shared_for_io = Arc::clone(shared);
    let ids = tokio::task::spawn_blocking(move || {
        let mut ids: Vec<String> = shared_for_io
            .session_ids()
            .into_iter()
            .filter(|id| {
                shared_for_io
                    .pki
                    .minion_key_path(KeyState::Accepted, id)
                    .is_ok_and(|path| path.is_file())
            })
            .collect();
        ids.sort();
        ids
    })
    .await
    .unwrap_or_default();
    Reply::Clear(clear_load(
        [(
            "data",
            Value::Array(ids.into_iter().map(Value::from).collect()),
        )]
        .into_iter()
        .collect(),
    ))
}

/// One stored return as local clients read it: the whole return load if
/// stored, else `{id, jid, fun, return, retcode, success}`.
pub(crate) fn return_value(r: &JobReturn) -> Value {
    if matches!(r.load, Value::Map(_)) {
        return r.load.clone();
    }
    [
        ("id", Value::from(r.id.as_str())),
        ("jid", Value::from(r.jid.as_str())),
        ("fun", Value::from(r.fun.as_str())),
        ("return", r.ret.clone()),
        ("retcode", Value::from(r.retcode)),
        ("success", Value::from(r.success)),
    ]
    .into_iter()
    .collect()
}

fn load_value(l: &JobLoad) -> Value {
    let ids = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
    [
        ("jid", Value::from(l.jid.as_str())),
        ("fun", Value::from(l.fun.as_str())),
        ("arg", l.arg.clone()),
        ("tgt", l.tgt.clone()),
        ("tgt_type", Value::from(l.tgt_type.as_str())),
        ("user", Value::from(l.user.as_str())),
        ("start_time", Value::from(isoformat(l.start_time))),
        ("minions", ids(&l.minions)),
        ("missing", ids(&l.missing)),
    ]
    .into_iter()
    .collect()
}
