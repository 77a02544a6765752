//! `manage.*` (Salt's `salt/runners/manage.py`): who is up, who is
//! present, which versions run.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use brine_protocol::Value;
use brine_protocol::args::Signature;
use brine_protocol::pyfmt::py_str;

use super::args::Bound;
use super::{
    Context, RunnerError, RunnerFunction, RunnerOutput, duration, is_no_minions, string_list,
};
use crate::client::JobSpec;
use crate::keys::{KeyList, KeyStore, RotationRequest};

/// The parameters `status`, `up` and `down` share (after `down`'s
/// `removekeys`).
fn ping_params(sig: Signature) -> Signature {
    sig.optional("tgt")
        .optional("tgt_type")
        .optional("timeout")
        .optional("gather_job_timeout")
}

pub(super) const STATUS: RunnerFunction = RunnerFunction {
    name: "manage.status",
    doc: "Print the status of all known minions: {up: [...], down: [...]} after a test.ping \
          (tgt, tgt_type, timeout and gather_job_timeout narrow or tune it).\n\nCLI Example:\n\n    \
          brine-run manage.status\n    brine-run manage.status tgt='web*' timeout=5",
    signature: || ping_params(Signature::new().optional("output")),
};

pub(super) const UP: RunnerFunction = RunnerFunction {
    name: "manage.up",
    doc: "Print a list of all of the minions that are up.\n\nCLI Example:\n\n    brine-run manage.up",
    signature: || ping_params(Signature::new()),
};

pub(super) const DOWN: RunnerFunction = RunnerFunction {
    name: "manage.down",
    doc: "Print a list of all the down or unresponsive minions; removekeys=True deletes their \
          keys.\n\nCLI Example:\n\n    brine-run manage.down\n    brine-run manage.down \
          removekeys=True",
    signature: || ping_params(Signature::new().optional("removekeys")),
};

pub(super) const PRESENT: RunnerFunction = RunnerFunction {
    name: "manage.present",
    doc: "Print a list of all minions that are present: authenticated with the running master, \
          key still accepted (no command is sent). subset limits it to those ids.\n\n\
          CLI Example:\n\n    brine-run manage.present",
    signature: || Signature::new().optional("subset").optional("show_ip"),
};

pub(super) const NOT_PRESENT: RunnerFunction = RunnerFunction {
    name: "manage.not_present",
    doc: "Print a list of the accepted minions that are not present (no command is sent).\n\n\
          CLI Example:\n\n    brine-run manage.not_present",
    signature: || Signature::new().optional("subset").optional("show_ip"),
};

pub(super) const VERSIONS: RunnerFunction = RunnerFunction {
    name: "manage.versions",
    doc: "Check the version of active minions against the master's (test.version).\n\n\
          CLI Example:\n\n    brine-run manage.versions",
    signature: Signature::new,
};

/// `test.ping`s the target: (returned, expected but silent), both sorted.
async fn ping(ctx: &Context<'_>, bound: &Bound) -> Result<(Vec<String>, Vec<String>), RunnerError> {
    let tgt = match bound.value("tgt") {
        Some(Value::Array(items)) => Value::Array(items.clone()),
        _ => Value::from(bound.string("tgt").unwrap_or_else(|| "*".to_owned())),
    };
    let job = JobSpec {
        tgt,
        tgt_type: bound
            .string("tgt_type")
            .unwrap_or_else(|| "glob".to_owned()),
        ..JobSpec::new("", "test.ping")
    };
    let timeout = bound
        .seconds("timeout")?
        .map_or(ctx.config.timeout, duration);
    let result = match ctx.client.cmd(&job, Some(timeout)).await {
        Ok(result) => result,
        Err(err) if is_no_minions(&err) => return Ok((Vec::new(), Vec::new())),
        Err(err) => return Err(err.into()),
    };
    let up: Vec<String> = result.returns.keys().cloned().collect();
    let mut down = result.not_returned;
    down.sort();
    Ok((up, down))
}

pub(super) async fn status(ctx: &Context<'_>, bound: &Bound) -> Result<Value, RunnerError> {
    let (up, down) = ping(ctx, bound).await?;
    Ok(Value::Map(vec![
        (Value::from("up"), string_list(up)),
        (Value::from("down"), string_list(down)),
    ]))
}

pub(super) async fn up(ctx: &Context<'_>, bound: &Bound) -> Result<RunnerOutput, RunnerError> {
    let (up, _) = ping(ctx, bound).await?;
    Ok(RunnerOutput::new(string_list(up)))
}

pub(super) async fn down(ctx: &Context<'_>, bound: &Bound) -> Result<RunnerOutput, RunnerError> {
    let (_, down) = ping(ctx, bound).await?;
    if bound.flag("removekeys", false) && !down.is_empty() {
        let store = key_store(ctx);
        let all = store.list()?;
        let gone: BTreeSet<&str> = down.iter().map(String::as_str).collect();
        let keep = |ids: &[String]| -> Vec<String> {
            ids.iter()
                .filter(|id| gone.contains(id.as_str()))
                .cloned()
                .collect()
        };
        let doomed = KeyList {
            accepted: keep(&all.accepted),
            pending: keep(&all.pending),
            rejected: keep(&all.rejected),
            denied: keep(&all.denied),
        };
        store.delete_keys(&doomed)?;
    }
    Ok(RunnerOutput::new(string_list(down)))
}

/// The key store, asking the master to rotate its session key after a
/// delete when `rotate_aes_key` is on (as `salt-key -d` does).
fn key_store(ctx: &Context<'_>) -> KeyStore {
    let config = ctx.config;
    let store = KeyStore::new(&config.pki_dir);
    if config.rotate_aes_key && config.cachedir.is_dir() {
        store.with_rotation(RotationRequest {
            cachedir: config.cachedir.clone(),
            master_id: config.id.clone(),
        })
    } else {
        store
    }
}

async fn present_ids(ctx: &Context<'_>, bound: &Bound) -> Result<Vec<String>, RunnerError> {
    if bound.flag("show_ip", false) {
        return Err(RunnerError::Unsupported("show_ip=True"));
    }
    Ok(ctx.client.present().await?)
}

fn in_subset(bound: &Bound) -> impl Fn(&str) -> bool {
    let subset = bound.list("subset");
    move |id: &str| subset.as_ref().is_none_or(|s| s.iter().any(|x| x == id))
}

pub(super) async fn present(ctx: &Context<'_>, bound: &Bound) -> Result<RunnerOutput, RunnerError> {
    let keep = in_subset(bound);
    let ids: Vec<String> = present_ids(ctx, bound)
        .await?
        .into_iter()
        .filter(|id| keep(id))
        .collect();
    Ok(RunnerOutput::new(string_list(ids)))
}

pub(super) async fn not_present(
    ctx: &Context<'_>,
    bound: &Bound,
) -> Result<RunnerOutput, RunnerError> {
    let keep = in_subset(bound);
    let present: BTreeSet<String> = present_ids(ctx, bound).await?.into_iter().collect();
    let accepted = KeyStore::new(&ctx.config.pki_dir).list()?.accepted;
    let ids: Vec<String> = accepted
        .into_iter()
        .filter(|id| !present.contains(id) && keep(id))
        .collect();
    Ok(RunnerOutput::new(string_list(ids)))
}

/// Salt's labels, by comparison result.
fn label(diff: i8) -> &'static str {
    match diff {
        -2 => "Minion offline",
        -1 => "Minion requires update",
        0 => "Up to date",
        1 => "Minion newer than master",
        _ => "Master",
    }
}

pub(super) async fn versions(ctx: &Context<'_>) -> Result<RunnerOutput, RunnerError> {
    let master_version = env!("CARGO_PKG_VERSION");
    let job = JobSpec::new("*", "test.version");
    let result = match ctx.client.cmd(&job, Some(ctx.config.timeout)).await {
        Ok(result) => Some(result),
        Err(err) if is_no_minions(&err) => None,
        Err(err) => return Err(err.into()),
    };
    let mut groups: Vec<(i8, Vec<(String, Value)>)> = Vec::new();
    if let Some(result) = result {
        let ids: BTreeSet<&String> = result.minions.iter().chain(result.returns.keys()).collect();
        for id in ids {
            let (diff, version) = match result.returns.get(id) {
                Some(ret) if ret.retcode.unwrap_or(0) == 0 && !ret.ret.is_nil() => {
                    let version = py_str(&ret.ret);
                    let diff = match compare_versions(&version, master_version) {
                        Ordering::Less => -1,
                        Ordering::Equal => 0,
                        Ordering::Greater => 1,
                    };
                    (diff, Value::from(version))
                }
                _ => (-2, Value::Bool(false)),
            };
            match groups.iter_mut().find(|(d, _)| *d == diff) {
                Some((_, members)) => members.push((id.clone(), version)),
                None => groups.push((diff, vec![(id.clone(), version)])),
            }
        }
    }
    let mut out: Vec<(Value, Value)> = groups
        .into_iter()
        .map(|(diff, members)| {
            (
                Value::from(label(diff)),
                Value::Map(
                    members
                        .into_iter()
                        .map(|(id, v)| (Value::from(id), v))
                        .collect(),
                ),
            )
        })
        .collect();
    out.push((Value::from(label(2)), Value::from(master_version)));
    Ok(RunnerOutput::new(Value::Map(out)))
}

/// Compares version strings: the numbers (`3007.8`, `0.1.0`) numerically,
/// missing ones as 0; on a tie, a pre-release suffix (`0.1.0rc1`,
/// `0.1.0-dev`) is older than none, and two suffixes compare as text.
pub(super) fn compare_versions(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (Vec<u64>, String) {
        let v = v.trim().trim_start_matches(['v', 'V']);
        let end = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(v.len());
        let (numbers, suffix) = v.split_at(end);
        let numbers = numbers
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(u64::MAX))
            .collect();
        (
            numbers,
            suffix.trim_start_matches(['-', '.', '+']).to_owned(),
        )
    };
    let (na, sa) = split(a);
    let (nb, sb) = split(b);
    let len = na.len().max(nb.len());
    for i in 0..len {
        let x = na.get(i).copied().unwrap_or(0);
        let y = nb.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    match (sa.is_empty(), sb.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => sa.cmp(&sb),
    }
}
