//! Job returns (`_return`) and minion events (`_minion_event`): the loads a
//! minion sends and what the master makes of them.

use tracing::warn;

use super::{LoadError, PublishLoad, entry, get_str};
use crate::jid::JID_REQ;
use crate::keys::validate_minion_id;
use crate::serial::Value;
use crate::tags;

/// Tags a minion may not fire on the master's bus (Salt's
/// `MINION_EVENT_BLACKLIST`, shell-style patterns where `*` matches anything).
const MINION_EVENT_BLACKLIST: &[&str] = &[
    "salt/job/*/publish",
    "salt/job/*/new",
    "salt/job/*/return",
    "salt/key",
    "salt/cloud/*",
    "salt/run/*",
    "salt/cluster/*",
    "salt/wheel/*/new",
    "salt/wheel/*/return",
];

/// A job's result as the minion sends it (`cmd: "_return"`), built as
/// `Minion._thread_return` and `_prepare_return_pub` build it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReturn {
    /// The minion id.
    pub id: String,
    /// The job id (`"req"` for a job the minion started itself).
    pub jid: String,
    /// The function that ran.
    pub fun: Value,
    /// Its arguments as published (`fun_args`).
    pub fun_args: Value,
    /// What it returned (`return`).
    pub ret: Value,
    /// Exit code: 0 for success.
    pub retcode: i64,
    /// Whether it succeeded.
    pub success: bool,
    /// The user who published the job.
    pub user: Option<String>,
    /// The outputter to render the return with (`nested` on errors).
    pub out: Option<String>,
    /// The publishing master's id, if the publish named one.
    pub master_id: Option<String>,
    /// The publish's `metadata` (a map), if any.
    pub metadata: Option<Value>,
    /// The time the minion fired the return (`_stamp`), if it was relayed
    /// through the minion's own bus as in Salt.
    pub stamp: Option<String>,
}

impl JobReturn {
    /// The return for `job`, copying `jid`, `fun`, `arg` (as `fun_args`),
    /// `user`, `master_id` and a map `metadata` from it; `success` is
    /// `retcode == 0`.
    pub fn for_job(job: &PublishLoad, id: &str, ret: Value, retcode: i64) -> JobReturn {
        JobReturn {
            id: id.to_owned(),
            jid: job.jid().to_owned(),
            fun: job.fun().clone(),
            fun_args: job.arg().clone(),
            ret,
            retcode,
            success: retcode == 0,
            user: job.user().map(str::to_owned),
            out: None,
            master_id: get_str(job.as_value(), "master_id").map(str::to_owned),
            metadata: job
                .get("metadata")
                .filter(|m| m.as_map().is_some())
                .cloned(),
            stamp: None,
        }
    }

    /// The `_return` load: `cmd`, `id`, `success`, `return`, `retcode`,
    /// `jid`, `fun`, `fun_args`, then `user`, `master_id`, `metadata`,
    /// `_stamp`, `out` when set. Send it with
    /// [`package_aes`](super::package_aes), which adds `nonce`, `ts`, `tok`.
    pub fn to_load(&self) -> Value {
        let mut load = vec![
            entry("cmd", "_return"),
            entry("id", self.id.as_str()),
            entry("success", self.success),
            entry("return", self.ret.clone()),
            entry("retcode", self.retcode),
            entry("jid", self.jid.as_str()),
            entry("fun", self.fun.clone()),
            entry("fun_args", self.fun_args.clone()),
        ];
        let optional = [
            ("user", self.user.as_deref().map(Value::from)),
            ("master_id", self.master_id.as_deref().map(Value::from)),
            ("metadata", self.metadata.clone()),
            ("_stamp", self.stamp.as_deref().map(Value::from)),
            ("out", self.out.as_deref().map(Value::from)),
        ];
        load.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| entry(k, v))),
        );
        Value::Map(load)
    }
}

/// A `_return` load the master accepted (`AESFuncs._return` /
/// `store_job`): it has `return`, a text `jid` and a valid minion `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnLoad {
    load: Value,
    id: String,
    jid: String,
}

impl ReturnLoad {
    /// Checks a decrypted `_return` load. `tok` and `nonce` are dropped if
    /// still there ([`open_request`](super::open_request) removes them).
    ///
    /// # Errors
    /// [`LoadError::NotAMap`], [`LoadError::MissingKey`] for `return`,
    /// `jid` or `id`, [`LoadError::InvalidKey`] for a non-text `jid`,
    /// [`LoadError::InvalidId`] for an id that is not a valid minion id.
    pub fn parse(mut load: Value) -> Result<ReturnLoad, LoadError> {
        if !matches!(load, Value::Map(_)) {
            return Err(LoadError::NotAMap);
        }
        for key in ["return", "jid", "id"] {
            if !load.contains_key(key) {
                return Err(LoadError::MissingKey(key));
            }
        }
        let id = get_str(&load, "id").ok_or(LoadError::InvalidId)?;
        validate_minion_id(id).map_err(|_| LoadError::InvalidId)?;
        let id = id.to_owned();
        let jid = get_str(&load, "jid")
            .ok_or(LoadError::InvalidKey("jid"))?
            .to_owned();
        load.remove("tok");
        load.remove("nonce");
        Ok(ReturnLoad { load, id, jid })
    }

    /// The minion id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The job id.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// What the function returned.
    pub fn ret(&self) -> &Value {
        self.load.get("return").unwrap_or(&Value::Nil)
    }

    /// The function, if named.
    pub fn fun(&self) -> Option<&Value> {
        self.load.get("fun")
    }

    /// The exit code, if sent as an integer.
    pub fn retcode(&self) -> Option<i64> {
        self.load.get("retcode").and_then(Value::as_i64)
    }

    /// The success flag, if sent.
    pub fn success(&self) -> Option<bool> {
        self.load.get("success").and_then(Value::as_bool)
    }

    /// Whether this returns a job the minion started itself (`jid: "req"`):
    /// the master allocates a jid with [`assign_jid`](Self::assign_jid).
    pub fn is_req(&self) -> bool {
        self.jid == JID_REQ
    }

    /// Gives a minion-initiated job its jid, as `store_job` does: `arg`
    /// becomes `arg` or else `fun_args` (or `[]`), `tgt_type` `glob`, `tgt`
    /// the minion id.
    pub fn assign_jid(&mut self, jid: impl Into<String>) {
        let arg = self
            .load
            .get("arg")
            .or_else(|| self.load.get("fun_args"))
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new()));
        self.load.insert("arg", arg);
        self.load.insert("tgt_type", "glob");
        self.load.insert("tgt", self.id.as_str());
        self.jid = jid.into();
        self.load.insert("jid", self.jid.as_str());
    }

    /// The tag to fire it under: `salt/job/<jid>/ret/<id>`.
    pub fn event_tag(&self) -> String {
        tags::job_ret(&self.jid, &self.id)
    }

    /// The load, which is also the data of the return event.
    pub fn as_value(&self) -> &Value {
        &self.load
    }

    /// The load, by value.
    pub fn into_value(self) -> Value {
        self.load
    }
}

/// An event a minion fires on the master's bus (`cmd: "_minion_event"`),
/// as `Minion._fire_master_prepare` builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct MinionEvent {
    /// The minion id.
    pub id: String,
    /// The tag.
    pub tag: String,
    /// The data; nil becomes `{}` as in Salt.
    pub data: Value,
    /// A prefix (`pretag`), usually none.
    pub pretag: Option<String>,
    /// Grains to include (`start_event_grains`).
    pub grains: Option<Value>,
}

impl MinionEvent {
    /// The two start events Salt 3007 minions fire after connecting
    /// (legacy `minion_start`, then `salt/minion/<id>/start`), both with
    /// the data string `Minion <id> started at <started_at>`; `started_at`
    /// is `time.asctime()`-style, see [`tags::asctime`].
    pub fn minion_start(id: &str, started_at: &str, grains: Option<Value>) -> [MinionEvent; 2] {
        let data = Value::from(format!("Minion {id} started at {started_at}"));
        let event = |tag: String| MinionEvent {
            id: id.to_owned(),
            tag,
            data: data.clone(),
            pretag: None,
            grains: grains.clone(),
        };
        [
            event(tags::MINION_START.to_owned()),
            event(tags::minion_start(id)),
        ]
    }

    /// The load: `id`, `cmd`, `pretag`, `data`, `tag`[, `grains`]. Send it
    /// with [`package_aes`](super::package_aes), which adds `tok`.
    pub fn to_load(&self) -> Value {
        let data = if self.data.is_nil() {
            Value::map()
        } else {
            self.data.clone()
        };
        let mut load = vec![
            entry("id", self.id.as_str()),
            entry("cmd", "_minion_event"),
            entry("pretag", self.pretag.as_deref()),
            entry("data", data),
            entry("tag", self.tag.as_str()),
        ];
        if let Some(grains) = &self.grains {
            load.push(entry("grains", grains.clone()));
        }
        Value::Map(load)
    }
}

/// Whether a minion may not fire `tag` on the master's bus.
pub fn is_blacklisted_minion_tag(tag: &str) -> bool {
    MINION_EVENT_BLACKLIST
        .iter()
        .any(|pattern| glob_match(pattern.as_bytes(), tag.as_bytes()))
}

/// What the master fires for a `_minion_event` load
/// (`RemoteFuncs._minion_event`): a batch (`events: [{tag, data}, …]`)
/// fires each event's `data` (or the event itself) under its tag, plus a
/// copy under `<pretag>/<tag>` when `pretag` is set, skipping blacklisted
/// tags with a warning; a single event fires the whole load under `tag`.
/// Unlike Salt, a single event with a blacklisted tag is refused too.
///
/// # Errors
/// [`LoadError::MissingKey`] without `id`, or without `events` and
/// `tag` + `data`; [`LoadError::InvalidKey`] for a non-list `events` or a
/// non-text tag; [`LoadError::BlacklistedTag`] for a single blacklisted event.
pub fn minion_event_fires(load: &Value) -> Result<Vec<(String, Value)>, LoadError> {
    if !matches!(load, Value::Map(_)) {
        return Err(LoadError::NotAMap);
    }
    let id = load.get("id").ok_or(LoadError::MissingKey("id"))?;
    if let Some(events) = load.get("events") {
        let events = events.as_array().ok_or(LoadError::InvalidKey("events"))?;
        let pretag = get_str(load, "pretag");
        let mut fires = Vec::with_capacity(events.len());
        for event in events {
            let tag = get_str(event, "tag").ok_or(LoadError::InvalidKey("tag"))?;
            if is_blacklisted_minion_tag(tag) {
                warn!(id = ?id.as_str(), tag, "filtering blacklisted minion event tag");
                continue;
            }
            let data = event.get("data").unwrap_or(event).clone();
            if let Some(pretag) = pretag.filter(|p| !p.is_empty()) {
                fires.push((tag.to_owned(), data.clone()));
                fires.push((format!("{pretag}/{tag}"), data));
            } else {
                fires.push((tag.to_owned(), data));
            }
        }
        return Ok(fires);
    }
    let tag = load.get("tag").ok_or(LoadError::MissingKey("tag"))?;
    if !load.contains_key("data") {
        return Err(LoadError::MissingKey("data"));
    }
    let tag = tag.as_str().ok_or(LoadError::InvalidKey("tag"))?;
    if is_blacklisted_minion_tag(tag) {
        return Err(LoadError::BlacklistedTag(tag.to_owned()));
    }
    Ok(vec![(tag.to_owned(), load.clone())])
}

/// Shell-style match where `*` matches any run of bytes (fnmatch's `*`,
/// which also crosses `/`). No other metacharacters are needed here.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if text.get(t) == Some(&c) => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_fnmatch_star() {
        assert!(glob_match(b"salt/job/*/new", b"salt/job/123/new"));
        assert!(glob_match(b"salt/job/*/new", b"salt/job/a/b/new"));
        assert!(!glob_match(b"salt/job/*/new", b"salt/job/123/ret/m"));
        assert!(glob_match(b"salt/key", b"salt/key"));
        assert!(!glob_match(b"salt/key", b"salt/key/x"));
        assert!(glob_match(b"salt/run/*", b"salt/run/"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"", b"x"));
    }

    #[test]
    fn blacklist() {
        assert!(is_blacklisted_minion_tag(
            "salt/job/20261125201059974475/new"
        ));
        assert!(is_blacklisted_minion_tag("salt/key"));
        assert!(is_blacklisted_minion_tag("salt/run/1/ret"));
        assert!(!is_blacklisted_minion_tag("salt/job/1/ret/m1"));
        assert!(!is_blacklisted_minion_tag("minion_start"));
        assert!(!is_blacklisted_minion_tag("salt/minion/m1/start"));
    }
}
