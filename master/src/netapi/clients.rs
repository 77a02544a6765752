//! Running lowstates: salt-api's `NetapiClient.run` and its clients
//! `local`, `local_async`, `local_batch` (LocalClient), `runner` (the
//! runners of `brine-run`) and `wheel` (key management).
//!
//! Checks, in Salt's order: the master is running (503), the client is
//! one Salt knows (400 "Invalid client specified") and is listed in
//! `netapi_enable_clients` (400 "Client disabled"), then the caller's
//! eauth permissions for the function (403).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use brine_protocol::Value;
use brine_protocol::args::parse_input;
use brine_protocol::jid::gen_jid;
use brine_protocol::pyfmt::{is_truthy, py_str};
use brine_protocol::tags;
use tracing::{debug, warn};

use crate::client::{ClientError, JobSpec};
use crate::cmdline::batch::{self, BatchEvent, BatchSize};
use crate::runners::RunnerError;

use super::api::Api;
use super::auth::TokenData;
use super::auth::perms::{Execution, auth_check, spec_check};
use super::respond::ApiError;
use super::wheel;

/// Every client salt-api knows (`NetapiClient`'s public methods).
pub(crate) const CLIENTS: &[&str] = &[
    "local",
    "local_async",
    "local_batch",
    "local_subset",
    "runner",
    "runner_async",
    "ssh",
    "wheel",
    "wheel_async",
];

/// Lowstate keys that are not function arguments (Salt's
/// `CLIENT_INTERNAL_KEYWORDS` plus the client's own parameters).
const RESERVED: &[&str] = &[
    "client",
    "cmd",
    "eauth",
    "fun",
    "kwarg",
    "arg",
    "match",
    "token",
    "username",
    "password",
    "full_return",
    "print_event",
    "timeout",
    "__jid__",
    "__tag__",
    "__user__",
];

fn text(chunk: &Value, key: &str) -> Option<String> {
    match chunk.get(key)? {
        Value::Nil => None,
        Value::Str(s) => Some(s.clone()),
        other => Some(py_str(other)),
    }
}

fn seconds(chunk: &Value, key: &str) -> Result<Option<Duration>, ApiError> {
    let Some(value) = chunk.get(key) else {
        return Ok(None);
    };
    let secs = match value {
        Value::Nil => return Ok(None),
        Value::Int(i) => *i as f64,
        Value::UInt(u) => *u as f64,
        Value::Float(f) => *f,
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| ApiError::BadRequest(format!("{key} must be a number of seconds")))?,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "{key} must be a number of seconds"
            )));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(ApiError::BadRequest(format!(
            "{key} must be a number of seconds"
        )));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs.min(1e9))))
}

/// `arg` as a list (a single value is a list of one).
fn arg_list(chunk: &Value) -> Vec<Value> {
    match chunk.get("arg") {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// `kwarg` as pairs.
fn kwarg_pairs(chunk: &Value) -> Result<Vec<(String, Value)>, ApiError> {
    match chunk.get("kwarg") {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Map(entries)) => Ok(entries
            .iter()
            .map(|(k, v)| (py_str(k), v.clone()))
            .collect()),
        Some(_) => Err(ApiError::BadRequest("kwarg must be a mapping".to_owned())),
    }
}

fn client_error(err: ClientError) -> ApiError {
    match err {
        ClientError::Transport(_)
        | ClientError::NotRunning { .. }
        | ClientError::RootKey { .. } => {
            ApiError::Unavailable(format!("Salt Master is not available: {err}"))
        }
        ClientError::Refused(message) => ApiError::BadRequest(message),
        other => ApiError::Internal(other.to_string()),
    }
}

fn denied(token: &TokenData) -> ApiError {
    warn!(user = %token.name, eauth = %token.eauth, "REST API call refused: not permitted");
    ApiError::Forbidden("Authorization error occurred.".to_owned())
}

impl Api {
    /// Runs one lowstate for `token`'s user; `local_batch` contributes one
    /// element per return, the others one element.
    pub(crate) async fn run_chunk(
        self: &Arc<Self>,
        chunk: &Value,
        token: &TokenData,
    ) -> Result<Vec<Value>, ApiError> {
        if !matches!(chunk, Value::Map(_)) {
            return Err(ApiError::BadRequest(
                "Lowstates must be a list of mappings".to_owned(),
            ));
        }
        self.client
            .check_master()
            .await
            .map_err(|e| ApiError::Unavailable(format!("Salt Master is not available: {e}")))?;
        let client = chunk.get("client").and_then(Value::as_str).unwrap_or("");
        if !CLIENTS.contains(&client) {
            let shown = chunk
                .get("client")
                .map_or_else(|| "None".to_owned(), py_str);
            return Err(ApiError::BadRequest(format!(
                "Invalid client specified: '{shown}'"
            )));
        }
        if !self
            .config
            .netapi_enable_clients
            .iter()
            .any(|c| c == client)
        {
            return Err(ApiError::BadRequest(format!(
                "Client disabled: '{client}'. Add to 'netapi_enable_clients' master config option to enable."
            )));
        }
        let auth_list = self.auth_list(token).ok_or_else(|| {
            ApiError::Unauthorized(format!(
                "Authentication failure of type \"token\" occurred for user {}.",
                token.name
            ))
        })?;
        debug!(user = %token.name, client, "REST API lowstate");
        match client {
            "local" => self.local(chunk, token, auth_list).await.map(|v| vec![v]),
            "local_async" => self
                .local_async(chunk, token, auth_list)
                .await
                .map(|v| vec![v]),
            "local_batch" => self.local_batch(chunk, token, auth_list).await,
            "runner" => self.runner(chunk, token, &auth_list).await.map(|v| vec![v]),
            "wheel" => wheel::run(self, chunk, token, &auth_list)
                .await
                .map(|v| vec![v]),
            other => Err(ApiError::BadRequest(format!(
                "Client not supported by Brine: '{other}'"
            ))),
        }
    }

    /// The job a local lowstate describes, checked against `auth_list`.
    async fn job(
        self: &Arc<Self>,
        chunk: &Value,
        token: &TokenData,
        auth_list: Vec<Value>,
    ) -> Result<JobSpec, ApiError> {
        let (Some(tgt), Some(fun)) = (
            chunk.get("tgt").filter(|t| !t.is_nil()),
            chunk.get("fun").and_then(Value::as_str),
        ) else {
            return Err(ApiError::BadRequest(
                "A local lowstate needs 'tgt' and 'fun'".to_owned(),
            ));
        };
        let tgt = match tgt {
            Value::Array(_) | Value::Str(_) => tgt.clone(),
            other => Value::from(py_str(other)),
        };
        let tgt_type = text(chunk, "tgt_type")
            .or_else(|| text(chunk, "expr_form"))
            .unwrap_or_else(|| "glob".to_owned());
        let job = JobSpec {
            tgt,
            tgt_type,
            fun: fun.to_owned(),
            arg: arg_list(chunk),
            kwargs: kwarg_pairs(chunk)?,
            ret: text(chunk, "ret").unwrap_or_default(),
            user: token.name.clone(),
            jid: None,
        };
        let api = Arc::clone(self);
        let check = job.clone();
        let allowed = tokio::task::spawn_blocking(move || {
            let call = Execution {
                fun: &check.fun,
                args: &check.arg,
                kwargs: &check.kwargs,
                tgt: &check.tgt,
                tgt_type: &check.tgt_type,
            };
            auth_check(&auth_list, &call, api.as_ref())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("permission check failed: {e}")))?;
        if allowed { Ok(job) } else { Err(denied(token)) }
    }

    async fn local(
        self: &Arc<Self>,
        chunk: &Value,
        token: &TokenData,
        auth_list: Vec<Value>,
    ) -> Result<Value, ApiError> {
        let job = self.job(chunk, token, auth_list).await?;
        let timeout = seconds(chunk, "timeout")?;
        let full = chunk.get("full_return").is_some_and(is_truthy);
        let result = match self.client.cmd(&job, timeout).await {
            Ok(result) => result,
            Err(err) if crate::runners::is_no_minions(&err) => return Ok(Value::map()),
            Err(err) => return Err(client_error(err)),
        };
        let mut out = Value::map();
        for (id, ret) in &result.returns {
            let value = if full {
                let mut entry: Value = [
                    ("ret", ret.ret.clone()),
                    ("retcode", Value::from(ret.retcode.unwrap_or(0))),
                    ("jid", Value::from(result.jid.as_str())),
                ]
                .into_iter()
                .collect();
                if let Some(outputter) = ret.load.get("out") {
                    entry.insert("out", outputter.clone());
                }
                entry
            } else {
                ret.ret.clone()
            };
            out.insert(id, value);
        }
        for id in &result.not_returned {
            out.insert(id, false);
        }
        Ok(out)
    }

    async fn local_async(
        self: &Arc<Self>,
        chunk: &Value,
        token: &TokenData,
        auth_list: Vec<Value>,
    ) -> Result<Value, ApiError> {
        let job = self.job(chunk, token, auth_list).await?;
        match self.client.pub_job(&job).await {
            Ok(published) => Ok([
                ("jid", Value::from(published.jid.as_str())),
                (
                    "minions",
                    Value::Array(
                        published
                            .minions
                            .iter()
                            .map(|m| Value::from(m.as_str()))
                            .collect(),
                    ),
                ),
            ]
            .into_iter()
            .collect()),
            Err(err) if crate::runners::is_no_minions(&err) => Ok(Value::map()),
            Err(err) => Err(client_error(err)),
        }
    }

    async fn local_batch(
        self: &Arc<Self>,
        chunk: &Value,
        token: &TokenData,
        auth_list: Vec<Value>,
    ) -> Result<Vec<Value>, ApiError> {
        let job = self.job(chunk, token, auth_list).await?;
        let size: BatchSize = text(chunk, "batch")
            .unwrap_or_else(|| "10%".to_owned())
            .parse()
            .map_err(|e: batch::BatchSizeError| ApiError::BadRequest(e.to_string()))?;
        let timeout = seconds(chunk, "timeout")?;
        let mut out = Vec::new();
        let mut on_event = |event: BatchEvent| {
            if let BatchEvent::Returned(ret) = event {
                out.push(Value::Map(vec![(Value::from(ret.id.as_str()), ret.ret)]));
            }
        };
        match batch::run(Arc::clone(&self.client), &job, size, timeout, &mut on_event).await {
            Ok(()) => Ok(out),
            Err(err) if crate::runners::is_no_minions(&err) => Ok(Vec::new()),
            Err(err) => Err(client_error(err)),
        }
    }

    async fn runner(
        self: &Arc<Self>,
        chunk: &Value,
        token: &TokenData,
        auth_list: &[Value],
    ) -> Result<Value, ApiError> {
        let Some(fun) = chunk.get("fun").and_then(Value::as_str) else {
            return Err(ApiError::BadRequest(
                "A runner lowstate needs 'fun'".to_owned(),
            ));
        };
        let (args, parsed_kwargs) = parse_input(&arg_list(chunk), &[]);
        let mut kwargs: Vec<(String, Value)> = parsed_kwargs
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        let mut put = |name: String, value: Value| match kwargs.iter_mut().find(|(k, _)| *k == name)
        {
            Some(slot) => slot.1 = value,
            None => kwargs.push((name, value)),
        };
        for (name, value) in kwarg_pairs(chunk)? {
            put(name, value);
        }
        for (key, value) in chunk.as_map().unwrap_or_default() {
            let key = py_str(key);
            if !RESERVED.contains(&key.as_str()) {
                put(key, value.clone());
            }
        }
        match spec_check(auth_list, fun, &args, &kwargs, "runner") {
            Err(_) => {
                return Err(ApiError::BadRequest(
                    "A command invocation error occurred: Check syntax.".to_owned(),
                ));
            }
            Ok(false) => return Err(denied(token)),
            Ok(true) => {}
        }
        let timeout = seconds(chunk, "timeout")?.unwrap_or(self.config.rest_timeout);
        let full = chunk.get("full_return").is_some_and(is_truthy);
        let jid = gen_jid();
        let mut fun_args: Vec<Value> = args.clone();
        if !kwargs.is_empty() {
            fun_args.push(Value::Map(
                kwargs
                    .iter()
                    .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
                    .collect(),
            ));
        }
        let qualified = format!("runner.{fun}");
        self.shared.events.fire(
            &tags::run_new(&jid),
            [
                ("fun", Value::from(qualified.as_str())),
                ("fun_args", Value::Array(fun_args.clone())),
                ("jid", Value::from(jid.as_str())),
                ("user", Value::from(token.name.as_str())),
            ]
            .into_iter()
            .collect(),
        );
        let run = async {
            let client = self.new_client().await.map_err(client_error)?;
            Ok::<_, ApiError>(self.runner.run_with(client, fun, &args, &kwargs).await)
        };
        let outcome = match tokio::time::timeout(timeout, run).await {
            Ok(outcome) => outcome?,
            Err(_) => {
                return Err(ApiError::Timeout(format!(
                    "runner {fun} did not finish within {} s",
                    timeout.as_secs_f64()
                )));
            }
        };
        let (data, success) = match outcome {
            Ok(output) => (output.data, true),
            Err(RunnerError::UnknownFunction { name, .. }) => {
                return Err(ApiError::BadRequest(format!("'{name}' is not available.")));
            }
            Err(RunnerError::Client(err)) if !matches!(err, ClientError::Refused(_)) => {
                return Err(client_error(err));
            }
            Err(err) => (Value::from(err.to_string()), false),
        };
        let mut ret: Value = [
            ("fun", Value::from(qualified.as_str())),
            ("fun_args", Value::Array(fun_args)),
            ("jid", Value::from(jid.as_str())),
            ("user", Value::from(token.name.as_str())),
            ("return", data.clone()),
            ("success", Value::from(success)),
        ]
        .into_iter()
        .collect();
        let tag = tags::run_ret(&jid);
        self.shared.events.fire(&tag, ret.clone());
        if !full {
            return Ok(data);
        }
        let _ = tags::stamp_event(&mut ret, SystemTime::now());
        Ok([("tag", Value::from(tag)), ("data", ret)]
            .into_iter()
            .collect())
    }
}

impl super::auth::perms::TargetExpander for Api {
    fn expand(&self, tgt: &Value, tgt_type: &str) -> Option<BTreeSet<String>> {
        self.expand_target(tgt, tgt_type)
    }
}
