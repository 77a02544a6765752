//! Minion requests over the aes channel: `_return`, `_minion_event`,
//! `_pillar` (`AESFuncs`).

use std::sync::Arc;

use brine_protocol::Value;
use brine_protocol::envelope::{BAD_LOAD, ReturnLoad, minion_event_fires, seal_private_pillar};
use brine_protocol::jid::gen_jid;
use tracing::{debug, warn};

use super::{HANDLER_FAILED, Reply};
use crate::job_cache::{JobReturn, SaveOutcome};
use crate::state::Shared;

/// `_return`: store, then acknowledge (`None`), then fire
/// `salt/job/<jid>/ret/<id>`. A re-sent return is acknowledged again
/// without a second row or event.
pub(super) async fn handle_return(shared: &Arc<Shared>, id: &str, load: Value) -> Reply {
    let mut ret = match ReturnLoad::parse(load) {
        Ok(ret) => ret,
        Err(err) => {
            warn!(minion = id, reason = %err, "refused _return: bad load");
            return Reply::Aes(Value::Bool(false));
        }
    };
    if ret.id() != id {
        warn!(
            minion = id,
            "refused _return: load id differs from the sender"
        );
        return Reply::Aes(Value::Bool(false));
    }
    if ret.is_req() {
        ret.assign_jid(gen_jid());
    }
    let tag = ret.event_tag();
    // The load moves into the record (and from there into the event): only
    // `return` is copied, once.
    let record = JobReturn {
        jid: ret.jid().to_owned(),
        id: ret.id().to_owned(),
        fun: ret
            .fun()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        ret: ret.ret().clone(),
        retcode: ret.retcode(),
        success: ret.success(),
        load: ret.into_value(),
    };
    match shared.job_cache.save_return(&record).await {
        Ok(SaveOutcome::Stored) => {
            shared.events.fire(&tag, record.load);
        }
        Ok(SaveOutcome::Duplicate) => {
            debug!(minion = id, jid = %record.jid, "duplicate return acknowledged");
        }
        Err(err) => {
            // Not stored: no acknowledgement, the minion keeps it spooled.
            warn!(minion = id, jid = %record.jid, error = %err, "could not store a return; not acknowledged");
            return Reply::Clear(Value::from(HANDLER_FAILED));
        }
    }
    Reply::Aes(Value::Nil)
}

/// `_minion_event`: fire each event; cache grains a start event carries.
pub(super) async fn handle_event(shared: &Arc<Shared>, id: &str, load: Value) -> Reply {
    let fires = match minion_event_fires(&load) {
        Ok(fires) => fires,
        Err(err) => {
            warn!(minion = id, reason = %err, "refused _minion_event: bad load");
            return Reply::Aes(Value::Bool(false));
        }
    };
    if let Some(grains) = load.get("grains").cloned() {
        cache_grains(shared, id, grains).await;
    }
    for (tag, data) in fires {
        shared.events.fire(&tag, data);
    }
    Reply::Aes(Value::Nil)
}

/// `_pillar`: cache the grains it carries; reply with the private reply
/// around an empty pillar (pillar compilation comes later), encrypted to
/// the minion's accepted key (`v2`: from `minions/`; else its session's).
pub(super) async fn handle_pillar(
    shared: &Arc<Shared>,
    id: &str,
    nonce: &str,
    load: Value,
    v2: bool,
) -> Reply {
    if let Some(grains) = load.get("grains").cloned() {
        cache_grains(shared, id, grains).await;
    }
    let target = if v2 {
        shared
            .accepted_key(id)
            .map(|public| (public, shared.config.serial))
    } else {
        shared
            .session(id)
            .map(|s| (s.public, s.crypticle.serialization()))
    };
    let Some((public, serialization)) = target else {
        return Reply::Clear(Value::from(BAD_LOAD));
    };
    let shared = Arc::clone(shared);
    let nonce = nonce.to_owned();
    let sealed = brine_protocol::crypto::offload(move || {
        seal_private_pillar(
            &Value::map(),
            &public,
            &shared.master_key,
            &nonce,
            serialization,
        )
    })
    .await;
    match sealed {
        Ok(Ok(reply)) => Reply::Clear(reply),
        Ok(Err(err)) => {
            warn!(minion = id, error = %err, "could not seal the pillar reply");
            Reply::Clear([("error", Value::from(BAD_LOAD))].into_iter().collect())
        }
        Err(_) => Reply::Clear(Value::from(HANDLER_FAILED)),
    }
}

async fn cache_grains(shared: &Arc<Shared>, id: &str, grains: Value) {
    let shared = Arc::clone(shared);
    let id = id.to_owned();
    let _ = tokio::task::spawn_blocking(move || shared.cache_grains(&id, grains)).await;
}
