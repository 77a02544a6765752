//! Running one job: Salt's `Minion._thread_return`, as an async function.
//!
//! [`execute`] records the job in the [`Jobs`] table, finds the function,
//! splits and checks its arguments ([`crate::args`]), calls it, and turns
//! the outcome into Salt's return shape:
//!
//! | outcome | `return` | `retcode` | `success` | `out` |
//! | --- | --- | --- | --- | --- |
//! | value | the value | the retcode the function set (a command's exit code), else 1 if the value is a map with a false `result` or `success`, else 0 | `retcode == 0` | – |
//! | [`ModuleError`] | [`ModuleError::salt_return`]'s text | 1 | false | `nested` |
//! | bad keyword argument | `ERROR executing '<fun>': The following keyword arguments are not valid: k=v` | 1 | false | `nested` |
//! | wrong arguments | `Passed invalid arguments to <fun>: <TypeError text>\n<doc>` | 1 | false | `nested` |
//! | unknown function | `'<fun>' is not available.` — or, as Salt, a map of the docs of functions starting with that name plus that text under the name | [`MISSING_FUNCTION_RETCODE`] | false | `nested` |
//! | past [`PublishLoad::timeout`] | [`ModuleError::Timeout`]'s text | 1 | false | `nested` |
//! | killed (`saltutil.kill_job`) or duplicate jid | no return (`None`) | | | |

use std::time::Duration;

use brine_protocol::Value;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::args::{self, Kwargs};
use crate::context::{ExecOptions, JobContext};
use crate::error::{EX_GENERIC, ModuleError};
use crate::jobs::Jobs;
use crate::load::{PublishLoad, ReturnData};
use crate::modules::{Call, Modules, sys};
use brine_protocol::pyfmt::is_truthy;

/// The job retcode for a function the minion does not have. Salt 3007's
/// minion returns 1 (`EX_GENERIC`) here; Brine's issue asks for 254.
pub const MISSING_FUNCTION_RETCODE: i64 = 254;

/// How long after [`PublishLoad::timeout`] a function still running is
/// dropped. Functions that honour [`Call::timeout`] themselves (`cmd.*`)
/// stop at the deadline and return their own time-out result within it.
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// Runs the job `load` with `modules`, seeing `grains`, and returns what
/// the minion sends back.
///
/// Returns `None`, and sends nothing, when the job was killed with
/// `saltutil.kill_job` (a SIGKILLed Salt job returns nothing either), or
/// when a job with the same jid is running already (Salt ignores such a
/// duplicate publish).
///
/// # Cancel safety
/// Dropping the future stops the job as a kill does: the function's future
/// is dropped (killing any command it runs) and the job leaves the table.
pub async fn execute(
    modules: &Modules,
    load: &PublishLoad,
    jobs: &Jobs,
    grains: &Value,
    options: &ExecOptions,
) -> Option<ReturnData> {
    let span = info_span!("job", jid = %load.jid, fun = %load.fun);
    async move {
        let guard = match jobs.register(load) {
            Ok(guard) => guard,
            Err(dup) => {
                debug!(%dup, "duplicate publish ignored");
                return None;
            }
        };
        info!(user = load.user.as_deref().unwrap_or(""), "starting job");
        let ctx = JobContext::new(load, grains, jobs, modules, options);
        let outcome = tokio::select! {
            outcome = run(modules, load, &ctx) => outcome,
            () = guard.killed() => {
                info!("job killed, no return");
                return None;
            }
        };
        let (ret, retcode, out) = outcome;
        Some(ReturnData {
            jid: load.jid.clone(),
            fun: load.fun.clone(),
            fun_args: load.arg.clone(),
            ret,
            retcode,
            success: retcode == 0,
            out,
            user: load.user.clone(),
            master_id: load.extra("master_id").cloned(),
            metadata: load
                .extra("metadata")
                .filter(|m| m.as_map().is_some())
                .cloned(),
        })
    }
    .instrument(span)
    .await
}

/// The function's `return`, the job retcode and the `out` hint.
type Outcome = (Value, i64, Option<String>);

fn nested(ret: String, retcode: i64) -> Outcome {
    (Value::from(ret), retcode, Some("nested".to_owned()))
}

async fn run(modules: &Modules, load: &PublishLoad, ctx: &JobContext<'_>) -> Outcome {
    let fun = load.fun.as_str();
    let (Some(spec), Some(module)) = (modules.function(fun), modules.module_for(fun)) else {
        return missing(modules, fun);
    };
    let pub_data = load.to_value();
    let (call_args, kwargs): (Vec<Value>, Kwargs) =
        match args::load_args_and_kwargs(&spec.signature, &load.arg, Some(&pub_data)) {
            Ok(split) => split,
            Err(msg) => {
                warn!(error = %msg, "invalid keyword arguments");
                let err = ModuleError::invocation(msg);
                return nested(err.salt_return(fun, &spec.doc), err.retcode());
            }
        };
    let short = fun.split_once('.').map_or(fun, |(_, f)| f);
    if let Err(msg) = spec.signature.bind(short, &call_args, &kwargs) {
        warn!(error = %msg, "invalid arguments");
        let err = ModuleError::InvalidArguments(msg);
        return nested(err.salt_return(fun, &spec.doc), err.retcode());
    }
    let call = Call {
        fun,
        args: call_args,
        kwargs,
        jid: &load.jid,
        timeout: load.timeout,
        ctx,
        spec,
    };
    let result = match load.timeout {
        Some(limit) => {
            match tokio::time::timeout(limit.saturating_add(TIMEOUT_GRACE), module.call(call)).await
            {
                Ok(result) => result,
                Err(_) => Err(ModuleError::Timeout(limit)),
            }
        }
        None => module.call(call).await,
    };
    match result {
        Ok(value) => {
            let mut retcode = ctx.retcode();
            if retcode == 0 && has_false_result(&value) {
                retcode = EX_GENERIC;
            }
            (value, retcode, None)
        }
        Err(err) => {
            warn!(error = %err, "job function failed");
            nested(err.salt_return(fun, &spec.doc), err.retcode())
        }
    }
}

/// Salt's check when no retcode was set: a returned map whose `result` or
/// `success` is falsy makes the job fail.
fn has_false_result(value: &Value) -> bool {
    value.as_map().is_some()
        && ["result", "success"]
            .iter()
            .any(|key| value.get(key).is_some_and(|v| !is_truthy(v)))
}

/// Salt's return for a function the minion lacks: the docs of functions
/// whose name starts with it, plus the "not available" text, or the text alone.
fn missing(modules: &Modules, fun: &str) -> Outcome {
    warn!("function not available");
    let text = format!("'{fun}' is not available.");
    let mut docs = sys::doc(modules, &[format!("{fun}*")]);
    let ret = if docs.as_map().is_some_and(|m| !m.is_empty()) {
        docs.insert(fun, text);
        docs
    } else {
        Value::from(text)
    };
    (ret, MISSING_FUNCTION_RETCODE, Some("nested".to_owned()))
}
