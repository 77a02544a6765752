//! `saltutil`: job control and refresh hooks, as the parts of Salt's
//! `salt/modules/saltutil.py` that Brine has.

use async_trait::async_trait;
use brine_protocol::Value;

use super::{Call, FunctionSpec, Module};
use crate::args::Signature;
use crate::error::ModuleError;
use brine_protocol::pyfmt::py_str;

/// The `saltutil` module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saltutil;

/// Salt's `salt_SIGKILL` on POSIX.
const SIGKILL: i32 = 9;

#[async_trait]
impl Module for Saltutil {
    fn name(&self) -> &str {
        "saltutil"
    }

    fn functions(&self) -> Vec<FunctionSpec> {
        vec![
            FunctionSpec::new(
                "find_job",
                "Return the data of job JID if it is still running (fun, arg, jid, pid, ret, \
                 tgt, tgt_type, user), or an empty dict. pid is the minion's process id.\n\n\
                 CLI Example:\n\n    brine '*' saltutil.find_job <job id>",
                Signature::new().required("jid"),
            ),
            FunctionSpec::new(
                "running",
                "Return the data of every job running on the minion (other than this call).\n\n\
                 CLI Example:\n\n    brine '*' saltutil.running",
                Signature::new(),
            ),
            FunctionSpec::new(
                "kill_job",
                "Kill job JID: its function is stopped and the processes it started are \
                 killed; it sends no return. Returns 'Signal 9 sent to job JID at pid PID', or \
                 '' if no such job runs.\n\nCLI Example:\n\n    brine '*' saltutil.kill_job <job id>",
                Signature::new().required("jid"),
            ),
            FunctionSpec::new(
                "sync_grains",
                "Sync custom grains modules from the master. Brine has no custom grains \
                 modules yet: nothing is synced and the list of synced modules is empty.\n\n\
                 CLI Example:\n\n    brine '*' saltutil.sync_grains",
                Signature::new()
                    .optional("saltenv")
                    .optional("refresh")
                    .optional("extmod_whitelist")
                    .optional("extmod_blacklist")
                    .optional("clean_pillar_cache"),
            ),
            FunctionSpec::new(
                "refresh_pillar",
                "Ask the minion to refresh its pillar. Brine's pillar is empty for now, so \
                 this does nothing and returns True.\n\nCLI Example:\n\n    brine '*' \
                 saltutil.refresh_pillar",
                Signature::new()
                    .optional("wait")
                    .optional("timeout")
                    .optional("clean_cache"),
            ),
        ]
    }

    async fn call(&self, call: Call<'_>) -> Result<Value, ModuleError> {
        let jobs = call.ctx.jobs;
        let jid_param = || call.param("jid").map(py_str).unwrap_or_default();
        match call.function() {
            "find_job" => Ok(jobs.find(&jid_param()).unwrap_or_else(Value::map)),
            "running" => Ok(Value::Array(
                jobs.running()
                    .into_iter()
                    .filter(|data| data.get("jid").and_then(Value::as_str) != Some(call.jid))
                    .collect(),
            )),
            "kill_job" => {
                let jid = jid_param();
                Ok(Value::from(match jobs.kill(&jid) {
                    Some(data) => {
                        let pid = data.get("pid").map(py_str).unwrap_or_default();
                        tracing::info!(jid = %jid, by = call.jid, "job killed");
                        format!("Signal {SIGKILL} sent to job {jid} at pid {pid}")
                    }
                    None => String::new(),
                }))
            }
            "sync_grains" => Ok(Value::Array(Vec::new())),
            "refresh_pillar" => Ok(Value::Bool(true)),
            other => Err(ModuleError::command(format!(
                "'saltutil.{other}' is not available."
            ))),
        }
    }
}
