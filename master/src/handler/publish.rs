//! `publish` from a local client (`ClearFuncs.publish`): authenticate by
//! root key, compute the expected minions, store the job, fire the job
//! events, wrap once and publish once.

use std::sync::Arc;
use std::time::SystemTime;

use brine_protocol::envelope::PublishJob;
use brine_protocol::jid::{gen_jid, is_jid};
use brine_protocol::keys::KeyState;
use brine_protocol::target::{
    ExpectOptions, ExpectedMinions, Nodegroups, Target, expected_minions,
};
use brine_protocol::{Value, tags};
use brine_transport_api::{Audience, Peer};
use tracing::{debug, info, warn};

use super::{Reply, authentication_error, clear_load, is_root_key};
use crate::job_cache::JobLoad;
use crate::sequencer::Outgoing;
use crate::state::Shared;

fn ids(list: &[String]) -> Value {
    Value::Array(list.iter().map(|s| Value::from(s.as_str())).collect())
}

fn error_load(message: String) -> Reply {
    Reply::Clear(clear_load(
        [
            ("jid", Value::Nil),
            ("minions", Value::Array(Vec::new())),
            ("error", Value::from(message)),
        ]
        .into_iter()
        .collect(),
    ))
}

pub(super) async fn handle(shared: &Arc<Shared>, load: Value, peer: &Peer) -> Reply {
    if !is_root_key(shared, &load) {
        warn!(%peer, "refused publish: authentication error (bad or missing root key)");
        return Reply::Clear(authentication_error());
    }
    let nodegroups = match Nodegroups::from_value(&shared.config.nodegroups) {
        Ok(groups) => groups,
        Err(err) => {
            warn!(error = %err, "nodegroups in the master config are invalid; ignored");
            Nodegroups::new()
        }
    };
    let tgt_text = load
        .get("tgt")
        .map(|t| match t.as_str() {
            Some(s) => s.to_owned(),
            None => format!("{t:?}"),
        })
        .unwrap_or_default();
    let target = match Target::from_load(&load).and_then(|t| t.resolve_nodegroups(&nodegroups)) {
        Ok(target) => target,
        Err(err) => {
            warn!(%peer, reason = %err, "refused publish: bad target");
            return error_load(format!("Invalid target {tgt_text}: {err}"));
        }
    };
    let expected = {
        let shared = Arc::clone(shared);
        let target = target.clone();
        tokio::task::spawn_blocking(move || compute_expected(&shared, &target, &nodegroups)).await
    };
    let expected = match expected {
        Ok(Ok(expected)) => expected,
        Ok(Err(reason)) => {
            warn!(%peer, %reason, "refused publish: could not compute the target");
            return error_load(reason);
        }
        Err(_) => return error_load("Master failed to compute the target".to_owned()),
    };
    if expected.minions.is_empty() {
        info!(%peer, tgt = %tgt_text, "publish matched no minion");
        return error_load(format!(
            "Master could not resolve minions for target {tgt_text}"
        ));
    }
    let jid = match load.get("jid").and_then(Value::as_str) {
        Some(jid) if is_jid(jid) => jid.to_owned(),
        _ => gen_jid(),
    };
    let fun = load.get("fun").cloned().unwrap_or(Value::Nil);
    let mut job = PublishJob::new(fun.clone(), target.expr.to_value(), jid.clone());
    job.arg = load
        .get("arg")
        .and_then(Value::as_array)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    job.tgt_type = target.tgt_type.as_str().to_owned();
    job.ret = load
        .get("ret")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    job.user = Some(
        load.get("user")
            .and_then(Value::as_str)
            .unwrap_or("root")
            .to_owned(),
    );
    job.delimiter = Some(target.delimiter.clone());
    if let Some(to) = load.get("to") {
        job.extra.push(("to".to_owned(), to.clone()));
    }
    let publish_load = job.to_load();

    // The job is durable before anyone can run it.
    let mut stored = JobLoad::new(
        &jid,
        fun.as_str().unwrap_or_default(),
        Value::Array(job.conditioned_arg()),
        job.tgt.clone(),
        job.tgt_type.clone(),
        job.user.clone().unwrap_or_default(),
        SystemTime::now(),
        expected.minions.clone(),
    );
    stored.missing = expected.missing.clone();
    if let Err(err) = shared.job_cache.save_load(&stored).await {
        warn!(jid = %jid, error = %err, "refused publish: could not store the job");
        return Reply::Clear(clear_load(
            [("error", Value::from("Master failed to store the job"))]
                .into_iter()
                .collect(),
        ));
    }

    shared
        .events
        .fire(&tags::job(&jid), tags::job_minions_data(&expected.minions));
    shared.events.fire(
        &tags::job_new(&jid),
        job.new_event_data(&expected.minions, &expected.missing),
    );
    shared
        .events
        .fire(&tags::job_publish(&jid), publish_load.clone());

    let outgoing = Outgoing {
        jid: jid.clone(),
        load: publish_load,
        audience: Audience::Minions(expected.minions.clone()),
    };
    if shared.sequencer.publish(outgoing).await.is_ok() {
        debug!(jid = %jid, minions = expected.minions.len(), "job queued for the minions");
    }
    Reply::Clear(clear_load(
        [
            ("jid", Value::from(jid.as_str())),
            ("minions", ids(&expected.minions)),
            ("missing", ids(&expected.missing)),
        ]
        .into_iter()
        .collect(),
    ))
}

/// The minions a publish of `target` expects (accepted keys and the
/// grains cache); also what the netapi checks `{target: [...]}` eauth
/// entries with. Blocking (lists `pki_dir`).
pub(crate) fn compute_expected(
    shared: &Shared,
    target: &Target,
    nodegroups: &Nodegroups,
) -> Result<ExpectedMinions, String> {
    let accepted = shared
        .pki
        .list_minions(KeyState::Accepted)
        .map_err(|e| format!("could not list accepted keys: {e}"))?;
    let grains = shared.grains();
    expected_minions(
        target,
        accepted.iter().map(|id| (id.as_str(), grains.get(id))),
        &ExpectOptions::with_nodegroups(nodegroups),
    )
    .map_err(|e| format!("Invalid target: {e}"))
}
