//! The `wheel` client: Salt's `salt/wheel/key.py` over the master's
//! [`KeyStore`](crate::keys::KeyStore): `key.list_all`, `key.list`,
//! `key.accept`, `key.reject`, `key.delete`, `key.finger`, and
//! `key.gen_accept` behind `POST /keys`.
//!
//! Key changes are file moves; Maintenance notices them, fires `salt/key`
//! and drops sessions, as after `brine-key`. A reject or delete also asks
//! for a session key rotation (`.dfn`).
//!
//! The reply is always Salt's full wheel form:
//! `{"tag": "salt/wheel/<jid>", "data": {"fun": "wheel.<fun>", "jid", "tag",
//! "user", "_stamp", "return", "success"}}`.

use std::sync::Arc;
use std::time::SystemTime;

use brine_protocol::jid::gen_jid;
use brine_protocol::keys::KeyState;
use brine_protocol::pyfmt::{is_truthy, py_str};
use brine_protocol::{PrivateKey, Value, tags};

use crate::keys::{HashType, KeyList, KeyStoreError};

use super::api::Api;
use super::auth::TokenData;
use super::auth::perms::spec_check;
use super::respond::ApiError;

/// The wheel functions Brine has.
pub(crate) const FUNCTIONS: &[&str] = &[
    "key.accept",
    "key.delete",
    "key.finger",
    "key.list",
    "key.list_all",
    "key.reject",
];

/// A keyword argument: top-level key, then `kwarg`, then `arg[index]`.
fn argument(chunk: &Value, name: &str, index: usize) -> Option<Value> {
    chunk
        .get(name)
        .or_else(|| chunk.get("kwarg").and_then(|k| k.get(name)))
        .or_else(|| {
            chunk
                .get("arg")
                .and_then(Value::as_array)
                .and_then(|a| a.get(index))
        })
        .filter(|v| !v.is_nil())
        .cloned()
}

fn flag(chunk: &Value, name: &str) -> bool {
    argument(chunk, name, usize::MAX).is_some_and(|v| is_truthy(&v))
}

/// Salt's `name_match` shape: only the states holding a match.
pub(crate) fn by_state(list: &KeyList) -> Value {
    let mut out = Value::map();
    for state in KeyState::ALL {
        let ids = list.get(state);
        if !ids.is_empty() {
            out.insert(
                state.dir_name(),
                Value::Array(ids.iter().map(|id| Value::from(id.as_str())).collect()),
            );
        }
    }
    out
}

/// `key.list_all`: every state (empty ones too) plus the master's own keys.
pub(crate) fn list_all(api: &Api) -> Result<Value, KeyStoreError> {
    let list = api.keys.list()?;
    let mut local: Vec<String> = std::fs::read_dir(&api.config.pki_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".pem") || n.ends_with(".pub"))
                .collect()
        })
        .unwrap_or_default();
    local.sort();
    let mut out: Value = [(
        "local",
        Value::Array(local.into_iter().map(Value::from).collect()),
    )]
    .into_iter()
    .collect();
    for state in KeyState::ALL {
        out.insert(
            state.dir_name(),
            Value::Array(
                list.get(state)
                    .iter()
                    .map(|id| Value::from(id.as_str()))
                    .collect(),
            ),
        );
    }
    Ok(out)
}

/// `key.finger`: `{state: {id: fingerprint}}` for the keys matching.
pub(crate) fn finger(api: &Api, pattern: &str, hash: HashType) -> Result<Value, KeyStoreError> {
    let mut out = Value::map();
    for entry in api.keys.finger(pattern, hash)? {
        let state = entry.state.dir_name();
        if out.get(state).is_none() {
            out.insert(state, Value::map());
        }
        if let Some(slot) = out.get_mut(state) {
            slot.insert(&entry.id, entry.value.as_str());
        }
    }
    Ok(out)
}

/// `key.list <match>`: the ids in one state (`pre`/`un`/`unaccepted`,
/// `acc`/`accepted`, `rej`/`rejected`, `den`/`denied`) or `all`.
fn list(api: &Api, which: &str) -> Result<Value, KeyStoreError> {
    let list = api.keys.list()?;
    let state = match which {
        "pre" | "un" | "unaccepted" => Some(KeyState::Pending),
        "acc" | "accepted" => Some(KeyState::Accepted),
        "rej" | "rejected" => Some(KeyState::Rejected),
        "den" | "denied" => Some(KeyState::Denied),
        _ => None,
    };
    Ok(match state {
        Some(state) => Value::Map(vec![(
            Value::from(state.dir_name()),
            Value::Array(
                list.get(state)
                    .iter()
                    .map(|id| Value::from(id.as_str()))
                    .collect(),
            ),
        )]),
        None => list_all(api)?,
    })
}

fn call(api: &Api, fun: &str, chunk: &Value) -> Result<Value, ApiError> {
    let pattern = || {
        argument(chunk, "match", 0)
            .map(|v| py_str(&v))
            .ok_or_else(|| ApiError::BadRequest(format!("{fun} needs 'match'")))
    };
    let keys = |e: KeyStoreError| ApiError::Internal(format!("{fun}: {e}"));
    match fun {
        "key.list_all" => list_all(api).map_err(keys),
        "key.list" => list(api, &pattern()?).map_err(keys),
        "key.accept" => {
            let pattern = pattern()?;
            let mut from = vec![KeyState::Pending];
            if flag(chunk, "include_rejected") {
                from.push(KeyState::Rejected);
            }
            if flag(chunk, "include_denied") {
                from.push(KeyState::Denied);
            }
            api.keys.accept_from(&pattern, &from).map_err(keys)?;
            api.keys
                .name_match(&pattern)
                .map(|l| by_state(&l))
                .map_err(keys)
        }
        "key.reject" => {
            let pattern = pattern()?;
            let mut from = vec![KeyState::Pending];
            if flag(chunk, "include_accepted") {
                from.push(KeyState::Accepted);
            }
            if flag(chunk, "include_denied") {
                from.push(KeyState::Denied);
            }
            api.keys.reject_from(&pattern, &from).map_err(keys)?;
            api.keys
                .name_match(&pattern)
                .map(|l| by_state(&l))
                .map_err(keys)
        }
        "key.delete" => {
            let pattern = pattern()?;
            api.keys.delete(&pattern).map_err(keys)?;
            api.keys
                .name_match(&pattern)
                .map(|l| by_state(&l))
                .map_err(keys)
        }
        "key.finger" => {
            let hash = match argument(chunk, "hash_type", 1) {
                Some(h) => py_str(&h)
                    .parse::<HashType>()
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?,
                None => api
                    .config
                    .hash_type
                    .parse::<HashType>()
                    .unwrap_or(HashType::Sha256),
            };
            finger(api, &pattern()?, hash).map_err(keys)
        }
        other => Err(ApiError::BadRequest(format!("'{other}' is not available."))),
    }
}

/// Runs a `wheel` lowstate for `token`'s user.
pub(crate) async fn run(
    api: &Arc<Api>,
    chunk: &Value,
    token: &TokenData,
    auth_list: &[Value],
) -> Result<Value, ApiError> {
    let Some(fun) = chunk.get("fun").and_then(Value::as_str) else {
        return Err(ApiError::BadRequest(
            "A wheel lowstate needs 'fun'".to_owned(),
        ));
    };
    let kwargs: Vec<(String, Value)> = [
        "match",
        "include_rejected",
        "include_accepted",
        "include_denied",
    ]
    .iter()
    .filter_map(|k| argument(chunk, k, usize::MAX).map(|v| ((*k).to_owned(), v)))
    .collect();
    match spec_check(auth_list, fun, &[], &kwargs, "wheel") {
        Err(_) => {
            return Err(ApiError::BadRequest(
                "A command invocation error occurred: Check syntax.".to_owned(),
            ));
        }
        Ok(false) => {
            tracing::warn!(user = %token.name, fun, "REST API wheel call refused: not permitted");
            return Err(ApiError::Forbidden(
                "Authorization error occurred.".to_owned(),
            ));
        }
        Ok(true) => {}
    }
    if !FUNCTIONS.contains(&fun) {
        return Err(ApiError::BadRequest(format!("'{fun}' is not available.")));
    }
    let jid = gen_jid();
    let tag = format!("salt/wheel/{jid}");
    let qualified = format!("wheel.{fun}");
    api.shared.events.fire(
        &format!("{tag}/new"),
        [
            ("fun", Value::from(qualified.as_str())),
            ("jid", Value::from(jid.as_str())),
            ("user", Value::from(token.name.as_str())),
        ]
        .into_iter()
        .collect(),
    );
    let result = {
        let api = Arc::clone(api);
        let fun = fun.to_owned();
        let chunk = chunk.clone();
        tokio::task::spawn_blocking(move || call(&api, &fun, &chunk))
            .await
            .map_err(|e| ApiError::Internal(format!("wheel call failed: {e}")))?
    };
    let (data, success) = match result {
        Ok(data) => (data, true),
        Err(ApiError::BadRequest(message)) if message.ends_with("is not available.") => {
            return Err(ApiError::BadRequest(message));
        }
        Err(err @ ApiError::Internal(_)) => return Err(err),
        Err(err) => (Value::from(err.to_string()), false),
    };
    let mut ret: Value = [
        ("fun", Value::from(qualified.as_str())),
        ("jid", Value::from(jid.as_str())),
        ("tag", Value::from(tag.as_str())),
        ("user", Value::from(token.name.as_str())),
        ("return", data),
        ("success", Value::from(success)),
    ]
    .into_iter()
    .collect();
    api.shared.events.fire(&format!("{tag}/ret"), ret.clone());
    let _ = tags::stamp_event(&mut ret, SystemTime::now());
    Ok([("tag", Value::from(tag)), ("data", ret)]
        .into_iter()
        .collect())
}

/// `key.gen_accept` (`POST /keys`): makes a key pair for `id`, accepts
/// its public key, returns `(private PEM, public PEM)`; `None` when a key
/// for `id` exists and `force` is off. Blocking.
///
/// # Errors
/// [`KeyStoreError`] for an invalid id or a failed write.
pub(crate) fn gen_accept(
    api: &Api,
    id: &str,
    keysize: usize,
    force: bool,
) -> Result<Option<(String, String)>, KeyStoreError> {
    brine_protocol::keys::validate_minion_id(id)?;
    if api.keys.state_of(id)?.is_some() {
        if !force {
            return Ok(None);
        }
        api.keys.delete(id)?;
    }
    let private = PrivateKey::generate(keysize).map_err(brine_protocol::KeyError::from)?;
    let private_pem = private.to_pem().map_err(brine_protocol::KeyError::from)?;
    let public_pem = private
        .public_key()
        .to_pem()
        .map_err(brine_protocol::KeyError::from)?;
    api.keys
        .pki()
        .write_minion_key(KeyState::Accepted, id, &public_pem)?;
    Ok(Some((private_pem.to_string(), public_pem)))
}
