//! The `brine` command (Salt's `salt`) as a library: target-type flags,
//! batch sizes, the returns summary and exit codes, so the binary stays a
//! thin shell and each rule is tested on its own.
//!
//! Exit codes, as Salt's CLI:
//!
//! | code | when |
//! | --- | --- |
//! | 0 | every expected minion returned with retcode 0 |
//! | 1 | some minion returned a non-zero retcode (`ERROR: Minions returned with non-zero exit code`) |
//! | 2 | no minion matched, no return at all, or the master could not be reached |
//! | 11 | some expected minion did not return |

pub mod batch;

use brine_protocol::Value;

use crate::client::{CmdResult, MinionReturn};

pub use batch::{BatchSize, BatchSizeError};

/// Every minion returned retcode 0.
pub const EX_OK: u8 = 0;
/// Some minion returned a non-zero retcode.
pub const EX_GENERIC: u8 = 1;
/// Nothing matched or nothing came back.
pub const EX_NO_RETURN: u8 = 2;
/// Some expected minion did not return.
pub const EX_NOT_RETURNED: u8 = 11;

/// What Salt prints for a minion that did not answer in time.
pub fn did_not_return(jid: &str) -> String {
    format!(
        "Minion did not return. [No response]\nThe minions may not have all finished running \
         and any remaining minions will return upon completion. To look up the return data \
         for this job later, run the following command:\n\nbrine-run jobs.lookup_jid {jid}"
    )
}

/// The retcode Salt's CLI reads from one return: its `retcode` (the
/// largest when it is a map), else 1 for a bare `False`.
pub fn retcode_of(ret: &MinionReturn) -> i64 {
    match ret.load.get("retcode") {
        Some(Value::Map(codes)) => codes
            .iter()
            .filter_map(|(_, c)| c.as_i64())
            .max()
            .unwrap_or(0),
        Some(code) => code.as_i64().unwrap_or(0),
        None if ret.ret == Value::Bool(false) => 1,
        None => 0,
    }
}

/// The exit code of a finished `cmd`.
pub fn exit_code(result: &CmdResult) -> u8 {
    if result.returns.is_empty() && result.not_returned.is_empty() {
        EX_NO_RETURN
    } else if !result.not_returned.is_empty() {
        EX_NOT_RETURNED
    } else if result.returns.values().any(|r| retcode_of(r) != 0) {
        EX_GENERIC
    } else {
        EX_OK
    }
}

/// Salt's `--summary` block for a finished job.
pub fn summary(result: &CmdResult, verbose: bool) -> String {
    let failed: Vec<&str> = result
        .returns
        .values()
        .filter(|r| retcode_of(r) != 0)
        .map(|r| r.id.as_str())
        .collect();
    let returned = result.returns.len();
    let silent = result.not_returned.len();
    let rule = "-------------------------------------------";
    let mut out = format!(
        "\n\n{rule}\nSummary\n{rule}\n# of minions targeted: {}\n# of minions returned: {returned}\n\
         # of minions that did not return: {silent}\n# of minions with errors: {}\n",
        returned + silent,
        failed.len()
    );
    if verbose {
        if silent > 0 {
            out.push_str(&format!(
                "Minions not responding: {}\n",
                result.not_returned.join(" ")
            ));
        }
        if !failed.is_empty() {
            out.push_str(&format!("Minions with failures: {}\n", failed.join(" ")));
        }
    }
    out.push_str(rule);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(id: &str, value: Value, retcode: Option<i64>) -> MinionReturn {
        let mut load = Value::Map(vec![(Value::from("id"), Value::from(id))]);
        if let Some(code) = retcode {
            load.insert("retcode", code);
        }
        MinionReturn {
            id: id.into(),
            ret: value,
            retcode,
            success: None,
            load,
        }
    }

    fn result(returns: Vec<MinionReturn>, not_returned: &[&str]) -> CmdResult {
        CmdResult {
            jid: "20260101000000000001".into(),
            minions: Vec::new(),
            missing: Vec::new(),
            returns: returns.into_iter().map(|r| (r.id.clone(), r)).collect(),
            not_returned: not_returned.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn exit_codes_follow_salt() {
        let ok = ret("m1", Value::Bool(true), Some(0));
        assert_eq!(exit_code(&result(vec![ok.clone()], &[])), EX_OK);
        assert_eq!(
            exit_code(&result(vec![ok.clone()], &["m2"])),
            EX_NOT_RETURNED
        );
        let bad = ret("m2", Value::from("boom"), Some(1));
        assert_eq!(exit_code(&result(vec![ok, bad], &[])), EX_GENERIC);
        let falsy = ret("m3", Value::Bool(false), None);
        assert_eq!(exit_code(&result(vec![falsy], &[])), EX_GENERIC);
        assert_eq!(exit_code(&result(vec![], &[])), EX_NO_RETURN);
    }

    #[test]
    fn summary_counts_and_names() {
        let text = summary(
            &result(
                vec![
                    ret("m1", Value::Bool(true), Some(0)),
                    ret("m2", Value::Bool(true), Some(2)),
                ],
                &["m3"],
            ),
            true,
        );
        assert!(text.contains("# of minions targeted: 3\n"));
        assert!(text.contains("# of minions returned: 2\n"));
        assert!(text.contains("# of minions that did not return: 1\n"));
        assert!(text.contains("# of minions with errors: 1\n"));
        assert!(text.contains("Minions not responding: m3\n"));
        assert!(text.contains("Minions with failures: m2\n"));
    }
}
