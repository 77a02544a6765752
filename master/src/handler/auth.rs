//! `_auth`: decide on the minion's key, change the key files, reply, fire
//! `salt/auth` (`ReqServerChannel._auth`).

use std::sync::Arc;

use brine_protocol::auth::{AuthAct, AuthLoad, Candidate, KeyOnFile, build_auth_reply, decide};
use brine_protocol::crypto::offload;
use brine_protocol::{PublicKey, Value, tags};
use brine_transport_api::Peer;
use tracing::{info, warn};

use super::{HANDLER_FAILED, Reply};
use crate::state::Shared;

pub(super) async fn handle(shared: &Arc<Shared>, load: Value, version: i64, peer: &Peer) -> Reply {
    let shared = Arc::clone(shared);
    let peer = peer.clone();
    // bounded to the cores: a sign-in herd queues instead of thrashing
    let outcome = offload(move || authenticate(&shared, &load, version, &peer)).await;
    match outcome {
        Ok(reply) => Reply::Clear(reply),
        Err(_) => Reply::Clear(Value::from(HANDLER_FAILED)),
    }
}

fn authenticate(shared: &Shared, load: &Value, _version: i64, peer: &Peer) -> Value {
    let request = match AuthLoad::parse(load) {
        Ok(request) => request,
        Err(err) => {
            warn!(%peer, reason = %err, "refused _auth: malformed load");
            return Value::from(brine_protocol::envelope::BAD_LOAD);
        }
    };
    let id = request.id.as_str();
    let on_file = KeyOnFile::read(&shared.pki, id).unwrap_or(KeyOnFile::None);
    // Autosign stubs are consumed when used: only consult them for keys
    // that are not accepted yet, as Salt does.
    let undecided = !matches!(on_file, KeyOnFile::Accepted(_) | KeyOnFile::Rejected);
    let autosign = undecided && shared.autokey.check_autosign(id);
    let autoreject = undecided && shared.autokey.check_autoreject(id);
    let policy = brine_protocol::auth::AuthPolicy {
        open_mode: shared.config.open_mode,
        auto_accept: shared.config.auto_accept,
        max_minions: shared.config.max_minions,
        serial: shared.config.serial,
    };
    // Listing `minions/` is O(accepted keys): only `max_minions` needs it
    // (10,000 minions signing in would list 10,000 files each).
    let connected = if shared.config.max_minions > 0 {
        shared
            .pki
            .list_minions(brine_protocol::keys::KeyState::Accepted)
            .map(|l| l.len())
            .unwrap_or(0)
    } else {
        0
    };
    let decision = decide(
        &policy,
        &Candidate {
            id,
            pub_pem: &request.pub_pem,
            on_file: &on_file,
            autosign,
            autoreject,
            connected,
            is_connected: matches!(on_file, KeyOnFile::Accepted(_)),
            serial: request.serial.as_deref(),
        },
    );
    if let Err(err) = decision.apply(&shared.pki, id) {
        warn!(%peer, minion = id, error = %err, "could not update the minion's key files");
    }
    let aes = shared.aes();
    let reply = if decision.act == AuthAct::Accept {
        let session = PublicKey::from_pem(&request.pub_pem)
            .map_err(|e| e.to_string())
            .and_then(|public| {
                shared
                    .session_for_auth(id, public)
                    .map_err(|e| e.to_string())
            });
        match session {
            Ok(session) => build_auth_reply(
                &decision,
                &request,
                &shared.master_key,
                aes.key_string(),
                session.key_string(),
                shared.publish_port,
            ),
            Err(reason) => {
                warn!(%peer, minion = id, %reason, "could not set up a session");
                return Value::from(HANDLER_FAILED);
            }
        }
    } else {
        build_auth_reply(
            &decision,
            &request,
            &shared.master_key,
            "",
            "",
            shared.publish_port,
        )
    };
    match decision.act {
        AuthAct::Accept => info!(%peer, minion = id, "minion authenticated"),
        AuthAct::Pend => info!(%peer, minion = id, "minion key is pending acceptance"),
        AuthAct::Reject => warn!(%peer, minion = id, "refused _auth: key rejected"),
        AuthAct::Denied => {
            warn!(%peer, minion = id, "refused _auth: key differs from the accepted key for this id")
        }
        AuthAct::Full => warn!(%peer, minion = id, "refused _auth: max_minions reached"),
        AuthAct::SerialMismatch => {
            // A minion that sends no `serial` (every stock Salt minion) packs msgpack.
            let (minion_serial, announced) = match request.serial.as_deref() {
                Some(name) => (name, ""),
                None => (
                    "msgpack",
                    " (it announced none, as a stock Salt minion does)",
                ),
            };
            warn!(
                %peer,
                minion = id,
                master_serial = %shared.config.serial,
                minion_serial,
                "refused _auth: serialization mismatch: this master uses serial: {}, the minion uses {minion_serial}{announced}; both must use the same `serial`",
                shared.config.serial,
            );
        }
    }
    // Salt's `auth_events` (default on) is not a Brine option: always fire.
    if let Some(data) = decision.event_data(id, &request.pub_pem) {
        shared.events.fire(tags::AUTH, data);
    }
    match reply {
        Ok(reply) => reply,
        Err(err) => {
            warn!(%peer, minion = id, error = %err, "could not build the _auth reply");
            Value::from(HANDLER_FAILED)
        }
    }
}
