//! Brine's own clear commands for local clients, root-key authenticated:
//! `get_returns` and `get_load` read the job cache (for
//! `LocalClient::get_cache_returns` and `brine-run jobs.lookup_jid`).

use std::sync::Arc;

use brine_protocol::Value;
use brine_protocol::tags::isoformat;
use brine_transport_api::Peer;
use tracing::warn;

use super::{Reply, authentication_error, clear_load, is_root_key};
use crate::job_cache::{JobLoad, JobReturn};
use crate::state::Shared;

pub(super) async fn handle(shared: &Arc<Shared>, load: Value, peer: &Peer) -> Reply {
    let cmd = load.get("cmd").and_then(Value::as_str).unwrap_or("");
    if !is_root_key(shared, &load) {
        warn!(%peer, cmd, "refused local command: authentication error (bad or missing root key)");
        return Reply::Clear(authentication_error());
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
