//! What a job is (the publish load the minion decrypted) and what it gives
//! back (the return Salt's minion sends on the request channel).

use std::time::Duration;

use brine_protocol::Value;

/// Why a publish load cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The load is not a map.
    #[error("publish load is not a map")]
    NotAMap,
    /// A required field is missing or has the wrong type.
    #[error("publish load field {field:?} is missing or not {expected}")]
    BadField {
        /// The field's name.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
}

/// A job as the master publishes it (Salt's publish load: `fun`, `arg`,
/// `tgt`, `jid`, `ret`, `tgt_type`, `user`, and optional extras such as
/// `master_id`, `metadata`, `delimiter`, kept in [`PublishLoad::extra`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishLoad {
    /// The job id.
    pub jid: String,
    /// The function, `module.function`.
    pub fun: String,
    /// The arguments as published (see [`crate::args`]).
    pub arg: Vec<Value>,
    /// The target expression (text, or a list for `list` targeting).
    pub tgt: Value,
    /// The targeting type (`glob` when absent).
    pub tgt_type: String,
    /// Returners to send the result to as well (`""` for none).
    pub ret: Value,
    /// The user who published the job.
    pub user: Option<String>,
    /// Brine only, never on the wire: a hard deadline after which the job is
    /// stopped (child processes killed). `None` lets the job run to its end,
    /// as Salt's minion does. This is *not* the client's wait timeout (Salt's
    /// `to`): a job outliving its client is normal and `saltutil.find_job`
    /// reports it.
    pub timeout: Option<Duration>,
    /// Every other field of the load, in order.
    pub extra: Vec<(String, Value)>,
}

impl PublishLoad {
    /// A load for running `fun` with `arg` under `jid`, targeted at `*`.
    pub fn new(jid: impl Into<String>, fun: impl Into<String>, arg: Vec<Value>) -> Self {
        Self {
            jid: jid.into(),
            fun: fun.into(),
            arg,
            tgt: Value::from("*"),
            tgt_type: "glob".into(),
            ret: Value::from(""),
            user: None,
            timeout: None,
            extra: Vec::new(),
        }
    }

    /// Reads a decrypted publish load.
    ///
    /// # Errors
    /// [`LoadError`] if it is not a map, or `jid`/`fun` are not text, or
    /// `arg` is present but not a list. (Salt's multi-function jobs, with a
    /// list in `fun`, are not supported.)
    pub fn from_value(load: &Value) -> Result<Self, LoadError> {
        let entries = load.as_map().ok_or(LoadError::NotAMap)?;
        let text = |field: &'static str| {
            load.get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(LoadError::BadField {
                    field,
                    expected: "text",
                })
        };
        let jid = text("jid")?;
        let fun = text("fun")?;
        let arg = match load.get("arg") {
            None | Some(Value::Nil) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => {
                return Err(LoadError::BadField {
                    field: "arg",
                    expected: "a list",
                });
            }
        };
        let tgt_type = load
            .get("tgt_type")
            .and_then(Value::as_str)
            .unwrap_or("glob")
            .to_owned();
        const KNOWN: [&str; 7] = ["jid", "fun", "arg", "tgt", "tgt_type", "ret", "user"];
        let extra = entries
            .iter()
            .filter_map(|(k, v)| {
                let key = k.as_str()?;
                (!KNOWN.contains(&key)).then(|| (key.to_owned(), v.clone()))
            })
            .collect();
        Ok(Self {
            jid,
            fun,
            arg,
            tgt: load.get("tgt").cloned().unwrap_or(Value::Nil),
            tgt_type,
            ret: load.get("ret").cloned().unwrap_or(Value::from("")),
            user: load.get("user").and_then(Value::as_str).map(str::to_owned),
            timeout: None,
            extra,
        })
    }

    /// The executor's view of a publish the daemon decrypted and checked
    /// with `brine_protocol::envelope::unwrap_publish` (same wire fields;
    /// `serial` is gone already). `timeout` stays `None`: the daemon sets
    /// it when the publish carries a job timeout.
    ///
    /// # Errors
    /// As [`PublishLoad::from_value`] (e.g. a list in `fun`).
    pub fn from_publish(load: &brine_protocol::envelope::PublishLoad) -> Result<Self, LoadError> {
        Self::from_value(load.as_value())
    }

    /// The load as Salt's minion holds it (`fun`, `arg`, `tgt`, `jid`, `ret`,
    /// `tgt_type`, `user`, then the extras): the source of `__pub_*` keyword
    /// arguments and of the jobs table's entries.
    pub fn to_value(&self) -> Value {
        let mut out = vec![
            (Value::from("fun"), Value::from(self.fun.as_str())),
            (Value::from("arg"), Value::Array(self.arg.clone())),
            (Value::from("tgt"), self.tgt.clone()),
            (Value::from("jid"), Value::from(self.jid.as_str())),
            (Value::from("ret"), self.ret.clone()),
            (Value::from("tgt_type"), Value::from(self.tgt_type.as_str())),
        ];
        if let Some(user) = &self.user {
            out.push((Value::from("user"), Value::from(user.as_str())));
        }
        out.extend(
            self.extra
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), v.clone())),
        );
        Value::Map(out)
    }

    /// An extra field of the load.
    pub fn extra(&self, key: &str) -> Option<&Value> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A job's result, in the shape Salt's minion returns it (`_thread_return`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnData {
    /// The job id.
    pub jid: String,
    /// The function that ran.
    pub fun: String,
    /// The `arg` list as published.
    pub fun_args: Vec<Value>,
    /// Salt's `return`: the function's value, or the error text.
    pub ret: Value,
    /// The job's exit code: 0 on success; a command's exit code for `cmd.*`;
    /// [`EX_GENERIC`](crate::error::EX_GENERIC) for errors;
    /// [`MISSING_FUNCTION_RETCODE`](crate::MISSING_FUNCTION_RETCODE) for an
    /// unknown function.
    pub retcode: i64,
    /// Whether `retcode` is 0.
    pub success: bool,
    /// The outputter Salt suggests (`nested` for error returns).
    pub out: Option<String>,
    /// The publishing user, when the load named one.
    pub user: Option<String>,
    /// The load's `master_id`, when present.
    pub master_id: Option<Value>,
    /// The load's `metadata`, when it is a map.
    pub metadata: Option<Value>,
}

impl ReturnData {
    /// The return as Salt's minion builds it, before the daemon adds `cmd`
    /// (`_return`) and `id`: `success`, `return`, `retcode`, `out` (errors
    /// only), `jid`, `fun`, `fun_args`, then `user`, `master_id` and
    /// `metadata` when known.
    pub fn to_value(&self) -> Value {
        let mut out = vec![
            (Value::from("success"), Value::Bool(self.success)),
            (Value::from("return"), self.ret.clone()),
            (Value::from("retcode"), Value::Int(self.retcode)),
        ];
        if let Some(o) = &self.out {
            out.push((Value::from("out"), Value::from(o.as_str())));
        }
        out.push((Value::from("jid"), Value::from(self.jid.as_str())));
        out.push((Value::from("fun"), Value::from(self.fun.as_str())));
        out.push((Value::from("fun_args"), Value::Array(self.fun_args.clone())));
        if let Some(user) = &self.user {
            out.push((Value::from("user"), Value::from(user.as_str())));
        }
        if let Some(id) = &self.master_id {
            out.push((Value::from("master_id"), id.clone()));
        }
        if let Some(meta) = &self.metadata {
            out.push((Value::from("metadata"), meta.clone()));
        }
        Value::Map(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_round_trips_with_extras() {
        let wire = Value::Map(vec![
            (Value::from("fun"), Value::from("test.ping")),
            (Value::from("arg"), Value::Array(vec![])),
            (Value::from("tgt"), Value::from("m1")),
            (Value::from("jid"), Value::from("20261126001855078720")),
            (Value::from("ret"), Value::from("")),
            (Value::from("tgt_type"), Value::from("glob")),
            (Value::from("user"), Value::from("root")),
            (Value::from("metadata"), Value::map()),
        ]);
        let load = PublishLoad::from_value(&wire).unwrap();
        assert_eq!(load.user.as_deref(), Some("root"));
        assert_eq!(load.extra("metadata"), Some(&Value::map()));
        assert_eq!(load.to_value(), wire);
    }

    #[test]
    fn bad_loads_are_refused() {
        assert_eq!(
            PublishLoad::from_value(&Value::from(1)),
            Err(LoadError::NotAMap)
        );
        let no_fun = Value::Map(vec![(Value::from("jid"), Value::from("1"))]);
        assert!(matches!(
            PublishLoad::from_value(&no_fun),
            Err(LoadError::BadField { field: "fun", .. })
        ));
        let bad_arg = Value::Map(vec![
            (Value::from("jid"), Value::from("1")),
            (Value::from("fun"), Value::from("test.ping")),
            (Value::from("arg"), Value::from("x")),
        ]);
        assert!(PublishLoad::from_value(&bad_arg).is_err());
    }
}
