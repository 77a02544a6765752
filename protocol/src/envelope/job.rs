//! Publish loads: what the master builds from a job, what the minion reads.

use super::{LoadError, entry, get_str};
use crate::jid::is_jid;
use crate::serial::Value;

/// Salt's default target delimiter; only a different one travels in the load.
const DEFAULT_DELIMITER: &str = ":";
static NIL: Value = Value::Nil;

/// Salt's `condition_input`: the positional arguments, with any integer
/// that reads as a jid turned into a string, followed — if there are
/// keyword arguments — by one map `{"__kwarg__": true, k: v, …}`.
pub fn condition_input(args: &[Value], kwargs: &[(String, Value)]) -> Vec<Value> {
    let mut out: Vec<Value> = args
        .iter()
        .map(|arg| match arg {
            Value::UInt(u) if is_jid(&u.to_string()) => Value::from(u.to_string()),
            other => other.clone(),
        })
        .collect();
    if !kwargs.is_empty() {
        let mut kw = vec![entry("__kwarg__", true)];
        kw.extend(kwargs.iter().map(|(k, v)| entry(k, v.clone())));
        out.push(Value::Map(kw));
    }
    out
}

/// A job as the master publishes it (`ClearFuncs._prep_pub`). Build one
/// with [`PublishJob::new`], set the optional fields, then
/// [`to_load`](Self::to_load) it for [`wrap_publish`](super::wrap_publish).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishJob {
    /// The function (`"test.ping"`), or a list of them for a multi-function job.
    pub fun: Value,
    /// Positional arguments (for a multi-function job: one list per function).
    pub arg: Vec<Value>,
    /// Keyword arguments; they travel as a trailing `__kwarg__` map in `arg`.
    pub kwargs: Vec<(String, Value)>,
    /// The target: a string, or a list for `tgt_type: "list"`.
    pub tgt: Value,
    /// `glob` (default), `pcre`, `list`, `grain`, `grain_pcre`, `compound`, …
    pub tgt_type: String,
    /// The job id.
    pub jid: String,
    /// Returners to run on the minion, comma separated (`""` for none).
    pub ret: String,
    /// The user who published the job.
    pub user: Option<String>,
    /// The publishing master's id (`master_id`).
    pub master_id: Option<String>,
    /// The target delimiter; sent only when it is not `:`.
    pub delimiter: Option<String>,
    /// Other optional keys, appended in the order given: `id`, `to`,
    /// `ret_config`, `metadata`, `module_executors`, `executor_opts`, `ret_kwargs`.
    pub extra: Vec<(String, Value)>,
}

impl PublishJob {
    /// A glob-targeted job without arguments, returners or user.
    pub fn new(fun: impl Into<Value>, tgt: impl Into<Value>, jid: impl Into<String>) -> Self {
        PublishJob {
            fun: fun.into(),
            arg: Vec::new(),
            kwargs: Vec::new(),
            tgt: tgt.into(),
            tgt_type: "glob".to_owned(),
            jid: jid.into(),
            ret: String::new(),
            user: None,
            master_id: None,
            delimiter: None,
            extra: Vec::new(),
        }
    }

    /// `arg` as it travels: [`condition_input`] of the arguments and kwargs.
    pub fn conditioned_arg(&self) -> Vec<Value> {
        condition_input(&self.arg, &self.kwargs)
    }

    /// The publish load, keys in Salt's order: `fun`, `arg`, `tgt`, `jid`,
    /// `ret`, then `master_id` and `delimiter` if set, `tgt_type`, the
    /// extras, and `user` if set.
    /// The `serial` is added by [`wrap_publish`](super::wrap_publish); this
    /// value without it is also the data of `salt/job/<jid>/publish`.
    pub fn to_load(&self) -> Value {
        let mut load = vec![
            entry("fun", self.fun.clone()),
            entry("arg", self.conditioned_arg()),
            entry("tgt", self.tgt.clone()),
            entry("jid", self.jid.as_str()),
            entry("ret", self.ret.as_str()),
        ];
        if let Some(master_id) = &self.master_id {
            load.push(entry("master_id", master_id.as_str()));
        }
        if let Some(delimiter) = self.delimiter.as_deref()
            && delimiter != DEFAULT_DELIMITER
        {
            load.push(entry("delimiter", delimiter));
        }
        load.push(entry("tgt_type", self.tgt_type.as_str()));
        load.extend(self.extra.iter().map(|(k, v)| entry(k, v.clone())));
        if let Some(user) = &self.user {
            load.push(entry("user", user.as_str()));
        }
        Value::Map(load)
    }

    /// The data of `salt/job/<jid>/new`:
    /// `{jid, tgt_type, tgt, user, fun, arg, minions, missing}`.
    pub fn new_event_data(&self, minions: &[String], missing: &[String]) -> Value {
        let list =
            |ids: &[String]| Value::Array(ids.iter().map(|s| Value::from(s.as_str())).collect());
        Value::Map(vec![
            entry("jid", self.jid.as_str()),
            entry("tgt_type", self.tgt_type.as_str()),
            entry("tgt", self.tgt.clone()),
            entry("user", self.user.as_deref()),
            entry("fun", self.fun.clone()),
            entry("arg", self.conditioned_arg()),
            entry("minions", list(minions)),
            entry("missing", list(missing)),
        ])
    }
}

/// A decrypted publish load that has the keys a minion needs (`tgt`,
/// `jid`, `fun`, `arg`), with `serial` already removed.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishLoad {
    load: Value,
    jid: String,
}

impl PublishLoad {
    /// Checks a load the way `Minion._target_load` does.
    ///
    /// # Errors
    /// [`LoadError::NotAMap`], [`LoadError::MissingKey`] for a missing
    /// `tgt`, `jid`, `fun` or `arg`, [`LoadError::InvalidKey`] if `jid` is
    /// not text.
    pub fn from_value(load: Value) -> Result<PublishLoad, LoadError> {
        if !matches!(load, Value::Map(_)) {
            return Err(LoadError::NotAMap);
        }
        for key in ["tgt", "jid", "fun", "arg"] {
            if !load.contains_key(key) {
                return Err(LoadError::MissingKey(key));
            }
        }
        let jid = get_str(&load, "jid")
            .ok_or(LoadError::InvalidKey("jid"))?
            .to_owned();
        Ok(PublishLoad { load, jid })
    }

    /// The job id.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The function, or list of functions.
    pub fn fun(&self) -> &Value {
        self.load.get("fun").unwrap_or(&NIL)
    }

    /// The arguments as sent (kwargs in a trailing `__kwarg__` map).
    pub fn arg(&self) -> &Value {
        self.load.get("arg").unwrap_or(&NIL)
    }

    /// The target.
    pub fn tgt(&self) -> &Value {
        self.load.get("tgt").unwrap_or(&NIL)
    }

    /// The target type, `glob` when absent (as Salt's minion assumes).
    pub fn tgt_type(&self) -> &str {
        get_str(&self.load, "tgt_type").unwrap_or("glob")
    }

    /// The target delimiter, `:` when absent.
    pub fn delimiter(&self) -> &str {
        get_str(&self.load, "delimiter").unwrap_or(DEFAULT_DELIMITER)
    }

    /// The returners to run, `""` when absent.
    pub fn ret(&self) -> &str {
        get_str(&self.load, "ret").unwrap_or("")
    }

    /// The publishing user, if sent.
    pub fn user(&self) -> Option<&str> {
        get_str(&self.load, "user")
    }

    /// Any key of the load.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.load.get(key)
    }

    /// The whole load.
    pub fn as_value(&self) -> &Value {
        &self.load
    }

    /// The whole load, by value.
    pub fn into_value(self) -> Value {
        self.load
    }

    /// Splits `arg` into positional arguments and keyword arguments: every
    /// map whose `__kwarg__` is `true` contributes its other entries as
    /// keywords (later ones win), as `load_args_and_kwargs` does. String
    /// `key=value` arguments are left positional for the executor to parse.
    pub fn split_args(&self) -> (Vec<Value>, Vec<(Value, Value)>) {
        let mut args = Vec::new();
        let mut kwargs: Vec<(Value, Value)> = Vec::new();
        for arg in self.arg().as_array().unwrap_or_default() {
            if arg.get("__kwarg__").and_then(Value::as_bool) == Some(true) {
                for (k, v) in arg.as_map().unwrap_or_default() {
                    if k.is_key("__kwarg__") {
                        continue;
                    }
                    match kwargs.iter_mut().find(|(seen, _)| seen == k) {
                        Some((_, slot)) => *slot = v.clone(),
                        None => kwargs.push((k.clone(), v.clone())),
                    }
                }
            } else {
                args.push(arg.clone());
            }
        }
        (args, kwargs)
    }
}
