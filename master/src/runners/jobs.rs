//! `jobs.*` (Salt's `salt/runners/jobs.py`) over the master's job cache.

use std::collections::BTreeMap;

use brine_protocol::Value;
use brine_protocol::args::Signature;
use brine_protocol::config::fnmatch;
use brine_protocol::pyfmt::py_str;

use super::args::Bound;
use super::{Context, RunnerError, RunnerFunction, RunnerOutput, is_no_minions, string_list};
use crate::client::{JobSpec, MinionReturn};
use crate::job_cache::JobFilter;

pub(super) const ACTIVE: RunnerFunction = RunnerFunction {
    name: "jobs.active",
    doc: "Return a report on all actively running jobs from a job id centric perspective: \
          asks every minion saltutil.running.\n\nCLI Example:\n\n    brine-run jobs.active",
    signature: || Signature::new().optional("display_progress"),
};

pub(super) const LIST_JOB: RunnerFunction = RunnerFunction {
    name: "jobs.list_job",
    doc: "List a specific job given by its jid, with its returns.\n\nCLI Example:\n\n    \
          brine-run jobs.list_job 20130916125524463507",
    signature: || {
        Signature::new()
            .required("jid")
            .optional("ext_source")
            .optional("display_progress")
    },
};

pub(super) const LIST_JOBS: RunnerFunction = RunnerFunction {
    name: "jobs.list_jobs",
    doc: "List all detectable jobs and associated functions.\n\nFilters (all must match): \
          search_function and search_target (globs, a list or comma separated), start_time \
          and end_time (the job's start, UTC: 'YYYY-MM-DD HH:MM:SS' or '2015, Mar 16 19:00'). \
          search_metadata matches nothing (Brine jobs carry no metadata).\n\nCLI Example:\n\n    \
          brine-run jobs.list_jobs search_function='test.*' search_target='web*'",
    signature: || {
        Signature::new()
            .optional("ext_source")
            .optional("outputter")
            .optional("search_metadata")
            .optional("search_function")
            .optional("search_target")
            .optional("start_time")
            .optional("end_time")
            .optional("display_progress")
    },
};

pub(super) const LOOKUP_JID: RunnerFunction = RunnerFunction {
    name: "jobs.lookup_jid",
    doc: "Return the printout from a previously executed job: {minion: return}. \
          returned=False leaves out the minions that returned, missing=True adds those that \
          did not.\n\nCLI Example:\n\n    brine-run jobs.lookup_jid 20130916125524463507",
    signature: || {
        Signature::new()
            .required("jid")
            .optional("ext_source")
            .optional("returned")
            .optional("missing")
            .optional("display_progress")
    },
};

pub(super) const PRINT_JOB: RunnerFunction = RunnerFunction {
    name: "jobs.print_job",
    doc: "Print a specific job's detail given by its jid, including the return data.\n\n\
          CLI Example:\n\n    brine-run jobs.print_job 20130916125524463507",
    signature: || Signature::new().required("jid").optional("ext_source"),
};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Salt's `jid_to_time`: `2026, Nov 25 20:10:59.974475`, or `""` for
/// anything that is not a jid.
pub(super) fn jid_to_time(jid: &str) -> String {
    let b = jid.as_bytes();
    let shaped = b.len() == 20 || (b.len() > 21 && b.get(20) == Some(&b'_'));
    let (Some(digits), true) = (jid.get(..20), shaped) else {
        return String::new();
    };
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return String::new();
    }
    let part = |r: std::ops::Range<usize>| digits.get(r).unwrap_or_default();
    let month = part(4..6)
        .parse::<usize>()
        .ok()
        .and_then(|m| m.checked_sub(1))
        .and_then(|m| MONTHS.get(m));
    let Some(month) = month else {
        return String::new();
    };
    format!(
        "{}, {month} {} {}:{}:{}.{}",
        part(0..4),
        part(6..8),
        part(8..10),
        part(10..12),
        part(12..14),
        part(14..20)
    )
}

/// Salt's `format_job_instance` of a stored load (a map as
/// `LocalClient::get_load` gives it); `with_minions` adds `Minions` as the
/// runner's own helper does for `list_job`/`print_job`.
fn job_instance(load: &Value, with_minions: bool) -> Vec<(Value, Value)> {
    let text = |key: &str, default: &str| {
        load.get(key)
            .cloned()
            .filter(|v| !v.is_nil())
            .unwrap_or_else(|| Value::from(default))
    };
    let mut out = vec![
        (Value::from("Function"), text("fun", "unknown-function")),
        (
            Value::from("Arguments"),
            Value::Array(
                load.get("arg")
                    .and_then(Value::as_array)
                    .unwrap_or_default()
                    .to_vec(),
            ),
        ),
        (Value::from("Target"), text("tgt", "unknown-target")),
        (Value::from("Target-type"), text("tgt_type", "list")),
        (Value::from("User"), text("user", "root")),
    ];
    if let Some(metadata) = load.get("metadata") {
        out.push((Value::from("Metadata"), metadata.clone()));
    }
    if with_minions {
        let mut minions: Vec<String> = load
            .get("minions")
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .map(py_str)
            .collect();
        minions.sort();
        minions.dedup();
        if !minions.is_empty() {
            out.push((Value::from("Minions"), string_list(minions)));
        }
    }
    out
}

/// Salt's `_format_jid_instance`: the job instance plus `StartTime`, or
/// `{Error, StartTime}` when the job is unknown.
fn jid_instance(jid: &str, load: Option<&Value>, with_minions: bool) -> Vec<(Value, Value)> {
    let mut out = match load {
        Some(load) => job_instance(load, with_minions),
        None => vec![(
            Value::from("Error"),
            Value::from("Cannot contact returner or no job with this jid"),
        )],
    };
    out.push((Value::from("StartTime"), Value::from(jid_to_time(jid))));
    out
}

/// A stored return as Salt's local cache keeps it: `return`, `retcode`,
/// `success` (those present), plus `out`.
fn stored_return(ret: &MinionReturn) -> Value {
    let mut out = vec![(Value::from("return"), ret.ret.clone())];
    for key in ["retcode", "success", "out"] {
        if let Some(value) = ret.load.get(key) {
            out.push((Value::from(key), value.clone()));
        }
    }
    Value::Map(out)
}

fn results(returns: &BTreeMap<String, MinionReturn>) -> Value {
    Value::Map(
        returns
            .iter()
            .map(|(id, ret)| (Value::from(id.as_str()), stored_return(ret)))
            .collect(),
    )
}

fn required_jid(bound: &Bound) -> Result<String, RunnerError> {
    bound.string("jid").ok_or_else(|| RunnerError::BadValue {
        param: "jid".to_owned(),
        reason: "a job id is required".to_owned(),
    })
}

pub(super) async fn lookup_jid(
    ctx: &Context<'_>,
    bound: &Bound,
) -> Result<RunnerOutput, RunnerError> {
    let jid = required_jid(bound)?;
    let returned = bound.flag("returned", true);
    let missing = bound.flag("missing", false);
    let returns = ctx.client.get_cache_returns(&jid).await?;
    let mut data = Value::map();
    if returned {
        for (id, ret) in &returns {
            data.insert(id, ret.ret.clone());
        }
    }
    if missing && let Some(load) = ctx.client.get_load(&jid).await? {
        for id in load
            .get("minions")
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .map(py_str)
        {
            if !returns.contains_key(&id) {
                data.insert(&id, "Minion did not return");
            }
        }
    }
    let outputter = returns
        .values()
        .next()
        .and_then(|ret| ret.load.get("out"))
        .and_then(Value::as_str)
        .filter(|out| !out.is_empty())
        .map(str::to_owned);
    Ok(RunnerOutput { data, outputter })
}

pub(super) async fn list_job(
    ctx: &Context<'_>,
    bound: &Bound,
) -> Result<RunnerOutput, RunnerError> {
    let jid = required_jid(bound)?;
    let load = ctx.client.get_load(&jid).await?;
    let returns = ctx.client.get_cache_returns(&jid).await?;
    let mut out = vec![(Value::from("jid"), Value::from(jid.as_str()))];
    out.extend(jid_instance(&jid, load.as_ref(), true));
    out.push((Value::from("Result"), results(&returns)));
    Ok(RunnerOutput::new(Value::Map(out)))
}

pub(super) async fn print_job(
    ctx: &Context<'_>,
    bound: &Bound,
) -> Result<RunnerOutput, RunnerError> {
    let jid = required_jid(bound)?;
    let load = ctx.client.get_load(&jid).await?;
    let returns = ctx.client.get_cache_returns(&jid).await?;
    let mut job = jid_instance(&jid, load.as_ref(), true);
    job.push((Value::from("Result"), results(&returns)));
    Ok(RunnerOutput::new(Value::Map(vec![(
        Value::from(jid.as_str()),
        Value::Map(job),
    )])))
}

pub(super) async fn list_jobs(
    ctx: &Context<'_>,
    bound: &Bound,
) -> Result<RunnerOutput, RunnerError> {
    let filter = ListFilter::from_bound(bound)?;
    let mut jobs = ctx.client.list_jobs(&JobFilter::default()).await?;
    // oldest first, as jids sort
    jobs.sort_by(|a, b| jid_of(a).cmp(jid_of(b)));
    let mut data = Vec::new();
    for load in &jobs {
        let jid = jid_of(load);
        if jid.is_empty() || !filter.matches(jid, load) {
            continue;
        }
        data.push((
            Value::from(jid),
            Value::Map(jid_instance(jid, Some(load), false)),
        ));
    }
    Ok(RunnerOutput {
        data: Value::Map(data),
        outputter: bound.string("outputter"),
    })
}

fn jid_of(load: &Value) -> &str {
    load.get("jid").and_then(Value::as_str).unwrap_or_default()
}

/// `jobs.list_jobs`' filters, all of which must match.
#[derive(Debug, Default)]
struct ListFilter {
    metadata: bool,
    functions: Option<Vec<String>>,
    targets: Option<Vec<String>>,
    /// jid digits (`YYYYMMDDhhmmssffffff`) the start must be at or after.
    start: Option<String>,
    /// jid digits the start must be at or before.
    end: Option<String>,
}

impl ListFilter {
    fn from_bound(bound: &Bound) -> Result<ListFilter, RunnerError> {
        let time = |param: &str| -> Result<Option<String>, RunnerError> {
            match bound.string(param) {
                None => Ok(None),
                Some(text) => parse_time(&text).map(Some).ok_or_else(|| RunnerError::BadValue {
                    param: param.to_owned(),
                    reason: format!(
                        "cannot read {text:?} as a time (use 'YYYY-MM-DD HH:MM:SS' or '2015, Mar 16 19:00')"
                    ),
                }),
            }
        };
        Ok(ListFilter {
            metadata: bound
                .value("search_metadata")
                .is_some_and(brine_protocol::pyfmt::is_truthy),
            functions: bound.list("search_function"),
            targets: bound.list("search_target"),
            start: time("start_time")?,
            end: time("end_time")?,
        })
    }

    fn matches(&self, jid: &str, load: &Value) -> bool {
        if self.metadata && load.get("metadata").is_none() {
            return false;
        }
        if let Some(globs) = &self.targets {
            let targets: Vec<String> = match load.get("tgt") {
                Some(Value::Array(items)) => items.iter().map(py_str).collect(),
                Some(other) => vec![py_str(other)],
                None => Vec::new(),
            };
            if !targets.iter().any(|t| globs.iter().any(|g| fnmatch(t, g))) {
                return false;
            }
        }
        if let Some(globs) = &self.functions {
            let fun = load.get("fun").map(py_str).unwrap_or_default();
            if !globs.iter().any(|g| fnmatch(&fun, g)) {
                return false;
            }
        }
        let digits = jid.get(..20).unwrap_or(jid);
        if let Some(start) = &self.start
            && digits < start.as_str()
        {
            return false;
        }
        if let Some(end) = &self.end
            && digits > end.as_str()
        {
            return false;
        }
        true
    }
}

/// Reads a time as the 20 jid digits it starts at: `YYYY-MM-DD`,
/// `YYYY-MM-DD HH:MM[:SS[.ffffff]]` (also with `T`), or Salt's `StartTime`
/// form `YYYY, Mon DD HH:MM[:SS[.ffffff]]`.
pub(super) fn parse_time(text: &str) -> Option<String> {
    let text = text.trim();
    let (date, clock) = if let Some((year, rest)) = text.split_once(", ") {
        // 2015, Mar 16 19:00:00.000000
        let mut words = rest.split_whitespace();
        let month_name = words.next()?.get(..3)?;
        let month = MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(month_name))?
            + 1;
        let day = words.next()?;
        let clock = words.next().unwrap_or("");
        if words.next().is_some() {
            return None;
        }
        (
            (year.parse::<u32>().ok()?, month, day.parse::<u32>().ok()?),
            clock,
        )
    } else {
        let (date, clock) = match text.split_once(['T', ' ']) {
            Some((d, c)) => (d, c.trim()),
            None => (text, ""),
        };
        let mut parts = date.split('-');
        let year = parts.next()?.parse::<u32>().ok()?;
        let month = parts.next()?.parse::<usize>().ok()?;
        let day = parts.next()?.parse::<u32>().ok()?;
        if parts.next().is_some() {
            return None;
        }
        ((year, month, day), clock)
    };
    let (year, month, day) = date;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year > 9999 {
        return None;
    }
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut fields = [0u32; 3];
    if !hms.is_empty() {
        let parts: Vec<&str> = hms.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        for (slot, part) in fields.iter_mut().zip(&parts) {
            *slot = part.parse().ok()?;
        }
    }
    let [hour, minute, second] = fields;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if frac.len() > 6 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}{frac:0<6}"
    ))
}

/// A job some minion reports running: its instance and `[{minion: pid}]`.
struct ActiveJob {
    jid: String,
    instance: Vec<(Value, Value)>,
    running: Vec<Value>,
}

pub(super) async fn active(ctx: &Context<'_>) -> Result<RunnerOutput, RunnerError> {
    let job = JobSpec::new("*", "saltutil.running");
    let result = match ctx.client.cmd(&job, Some(ctx.config.timeout)).await {
        Ok(result) => result,
        Err(err) if is_no_minions(&err) => return Ok(RunnerOutput::new(Value::map())),
        Err(err) => return Err(err.into()),
    };
    let mut jobs: Vec<ActiveJob> = Vec::new();
    for (minion, ret) in &result.returns {
        let Some(running) = ret.ret.as_array() else {
            continue;
        };
        for data in running {
            let Some(jid) = data.get("jid").map(py_str) else {
                continue;
            };
            let pid = data.get("pid").cloned().unwrap_or(Value::Nil);
            let entry = Value::Map(vec![(Value::from(minion.as_str()), pid)]);
            match jobs.iter_mut().find(|job| job.jid == jid) {
                Some(job) => job.running.push(entry),
                None => jobs.push(ActiveJob {
                    instance: jid_instance(&jid, Some(data), false),
                    jid,
                    running: vec![entry],
                }),
            }
        }
    }
    let mut out = Vec::new();
    for job in jobs {
        let returned: Vec<String> = ctx
            .client
            .get_cache_returns(&job.jid)
            .await?
            .into_keys()
            .collect();
        let mut instance = job.instance;
        instance.push((Value::from("Running"), Value::Array(job.running)));
        instance.push((Value::from("Returned"), string_list(returned)));
        out.push((Value::from(job.jid.as_str()), Value::Map(instance)));
    }
    Ok(RunnerOutput::new(Value::Map(out)))
}
