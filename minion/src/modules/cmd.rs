//! `cmd`: run commands, as Salt's `salt/modules/cmdmod.py`.
//!
//! Salt 3007 semantics, kept here:
//! - **No shell by default.** `cmd.run 'echo a; echo b'` splits the line with
//!   POSIX `shlex` and executes `echo` directly (it prints `a; echo b`).
//!   `python_shell=True`, or naming a `shell`, runs `<shell> -c '<cmd>'`;
//!   `cmd.shell` always does. Brine's default shell is
//!   [`ExecOptions::shell`](crate::ExecOptions) (`/bin/sh`).
//! - `cmd.run` merges stderr into stdout (`redirect_stderr=True`);
//!   `cmd.run_all` keeps them apart and returns `{pid, retcode, stdout,
//!   stderr}`; `cmd.run_stdout`/`cmd.run_stderr` return one stream;
//!   `cmd.retcode` returns the exit code. Output is right-stripped
//!   (`rstrip=True`).
//! - The command's exit code becomes the job's retcode (so a failing
//!   command is an unsuccessful job), unless `ignore_retcode=True`;
//!   `success_retcodes`, `success_stdout`, `success_stderr` turn a failure
//!   into 0. A signal-ended command has retcode minus the signal.
//! - `timeout=N` kills the command after N seconds; the return is then
//!   `"<command> : Timed out after N seconds"` with retcode 1 in the return
//!   (and, as in Salt, the job's retcode is left alone). The job's own
//!   deadline ([`Call::timeout`]) applies the same way.
//! - `env` (a map, or a list of one-key maps), `clean_env`, `prepend_path`,
//!   `reset_system_locale` (the `LC_*` variables default to `C`), `stdin`
//!   (`\n` written as two characters becomes a newline unless
//!   `stdin_raw_newlines=True`), `cwd` (default: the home of the user the
//!   command runs as; must be an existing absolute directory),
//!   `hide_output`, `raise_err` work as in Salt.
//! - `runas`/`group` switch user/group ids from `/etc/passwd`/`/etc/group`
//!   (the minion must run as root to do so), set `HOME`, `USER`, `LOGNAME`
//!   and `SHELL` from the user's entry and default `cwd` to their home; Salt
//!   loads the user's full login environment through `su`/`sudo` instead.
//!
//! Not supported, refused with an error rather than ignored: `template`,
//! `umask`, `bg`. Ignored: `output_encoding` (output is decoded as UTF-8,
//! invalid bytes replaced), `output_loglevel`, `log_callback`, `use_vt`,
//! `saltenv`, `password`, `encoded_cmd` (Windows only).
//!
//! Every command runs in its own process group. Killing the job
//! (`saltutil.kill_job`) or reaching a timeout kills the whole group, so
//! shell pipelines and children go too; a command that ends normally leaves
//! its background children alone, as in Salt (and, as in Salt, a background
//! child that keeps the output pipe open keeps the call waiting until it
//! exits or the timeout hits). Each output stream keeps at
//! most [`ExecOptions::output_cap`](crate::ExecOptions) bytes (8 MiB by
//! default); the rest is drained and a note says how much was dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use brine_protocol::Value;

use super::process::{self, Spec, Status};
use super::{Call, FunctionSpec, Module, shlex};
use crate::args::Signature;
use crate::error::ModuleError;
use crate::users;
use brine_protocol::pyfmt::{float_repr, is_truthy, py_repr, py_str};

/// The `cmd` module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cmd;

const RUN: &[&str] = &[
    "cwd",
    "stdin",
    "runas",
    "group",
    "shell",
    "python_shell",
    "env",
    "clean_env",
    "template",
    "rstrip",
    "umask",
    "output_encoding",
    "output_loglevel",
    "log_callback",
    "hide_output",
    "timeout",
    "reset_system_locale",
    "ignore_retcode",
    "saltenv",
    "use_vt",
    "redirect_stderr",
    "bg",
    "password",
    "encoded_cmd",
    "raise_err",
    "prepend_path",
    "success_retcodes",
    "success_stdout",
    "success_stderr",
];
const SHELL: &[&str] = &[
    "cwd",
    "stdin",
    "runas",
    "group",
    "shell",
    "env",
    "clean_env",
    "template",
    "rstrip",
    "umask",
    "output_encoding",
    "output_loglevel",
    "log_callback",
    "hide_output",
    "timeout",
    "reset_system_locale",
    "ignore_retcode",
    "saltenv",
    "use_vt",
    "bg",
    "password",
    "prepend_path",
    "success_retcodes",
    "success_stdout",
    "success_stderr",
];
const RUN_ALL: &[&str] = &[
    "cwd",
    "stdin",
    "runas",
    "group",
    "shell",
    "python_shell",
    "env",
    "clean_env",
    "template",
    "rstrip",
    "umask",
    "output_encoding",
    "output_loglevel",
    "log_callback",
    "hide_output",
    "timeout",
    "reset_system_locale",
    "ignore_retcode",
    "saltenv",
    "use_vt",
    "redirect_stderr",
    "password",
    "encoded_cmd",
    "prepend_path",
    "success_retcodes",
    "success_stdout",
    "success_stderr",
];
const RETCODE: &[&str] = &[
    "cwd",
    "stdin",
    "runas",
    "group",
    "shell",
    "python_shell",
    "env",
    "clean_env",
    "template",
    "umask",
    "output_encoding",
    "output_loglevel",
    "log_callback",
    "timeout",
    "reset_system_locale",
    "ignore_retcode",
    "saltenv",
    "use_vt",
    "password",
    "success_retcodes",
    "success_stdout",
    "success_stderr",
];
const RUN_STREAM: &[&str] = &[
    "cwd",
    "stdin",
    "runas",
    "group",
    "shell",
    "python_shell",
    "env",
    "clean_env",
    "template",
    "rstrip",
    "umask",
    "output_encoding",
    "output_loglevel",
    "log_callback",
    "hide_output",
    "timeout",
    "reset_system_locale",
    "ignore_retcode",
    "saltenv",
    "use_vt",
    "password",
    "prepend_path",
    "success_retcodes",
    "success_stdout",
    "success_stderr",
];

fn signature(optional: &[&'static str]) -> Signature {
    optional
        .iter()
        .fold(Signature::new().required("cmd"), |s, p| s.optional(*p))
        .varkw()
}

const DOC_RUN: &str = "Execute the passed command and return its output (stdout and stderr \
combined) as a string. The command runs without a shell unless python_shell=True or a shell \
is named; its exit code becomes the job's retcode.\n\nCLI Example:\n\n    brine '*' cmd.run \"ls -l /tmp\"";
const DOC_SHELL: &str = "Execute the passed command through a shell (pipes, redirection) and \
return its output as a string.\n\nCLI Example:\n\n    brine '*' cmd.shell \"ls -l | wc -l\"";
const DOC_RUN_ALL: &str = "Execute the passed command and return a dict with pid, retcode, \
stdout and stderr.\n\nCLI Example:\n\n    brine '*' cmd.run_all \"ls -l /tmp\"";
const DOC_RETCODE: &str = "Execute the passed command and return its exit code.\n\nCLI \
Example:\n\n    brine '*' cmd.retcode \"test -f /etc/hosts\"";
const DOC_RUN_STDOUT: &str = "Execute the passed command and return only its stdout.\n\nCLI \
Example:\n\n    brine '*' cmd.run_stdout \"ls -l /tmp\"";
const DOC_RUN_STDERR: &str = "Execute the passed command and return only its stderr.\n\nCLI \
Example:\n\n    brine '*' cmd.run_stderr \"ls -l /tmp\"";

#[async_trait]
impl Module for Cmd {
    fn name(&self) -> &str {
        "cmd"
    }

    fn functions(&self) -> Vec<FunctionSpec> {
        vec![
            FunctionSpec::new("run", DOC_RUN, signature(RUN)),
            FunctionSpec::new("shell", DOC_SHELL, signature(SHELL)),
            FunctionSpec::new("run_all", DOC_RUN_ALL, signature(RUN_ALL)),
            FunctionSpec::new("retcode", DOC_RETCODE, signature(RETCODE)),
            FunctionSpec::new("run_stdout", DOC_RUN_STDOUT, signature(RUN_STREAM)),
            FunctionSpec::new("run_stderr", DOC_RUN_STDERR, signature(RUN_STREAM)),
        ]
    }

    async fn call(&self, call: Call<'_>) -> Result<Value, ModuleError> {
        let function = call.function().to_owned();
        let merge_default = function == "run";
        let result = execute(&call, function == "shell", merge_default).await?;
        let hide = flag(&call, "hide_output", false);
        Ok(match function.as_str() {
            "run" | "shell" => {
                if result.retcode != 0
                    && !flag(&call, "ignore_retcode", false)
                    && flag(&call, "raise_err", false)
                {
                    return Err(ModuleError::command(if hide {
                        String::new()
                    } else {
                        result.stdout
                    }));
                }
                Value::from(if hide { String::new() } else { result.stdout })
            }
            "run_all" => {
                let (stdout, stderr) = if hide {
                    (String::new(), String::new())
                } else {
                    (result.stdout, result.stderr)
                };
                Value::Map(vec![
                    (Value::from("pid"), Value::from(result.pid)),
                    (Value::from("retcode"), Value::Int(result.retcode)),
                    (Value::from("stdout"), Value::from(stdout)),
                    (Value::from("stderr"), Value::from(stderr)),
                ])
            }
            "retcode" => Value::Int(result.retcode),
            "run_stdout" => Value::from(if hide { String::new() } else { result.stdout }),
            _ => Value::from(if hide { String::new() } else { result.stderr }),
        })
    }
}

/// What `_run` hands back.
struct Ran {
    pid: u32,
    retcode: i64,
    stdout: String,
    stderr: String,
}

fn flag(call: &Call<'_>, name: &str, default: bool) -> bool {
    match call.param(name) {
        None | Some(Value::Nil) => default,
        Some(v) => is_truthy(v),
    }
}

/// A text parameter; nil and empty text are "not given".
fn text(call: &Call<'_>, name: &str) -> Option<String> {
    match call.param(name) {
        None | Some(Value::Nil) => None,
        Some(v) => Some(py_str(v)).filter(|s| !s.is_empty()),
    }
}

/// Salt's `split_input`: a list as is, anything else split on commas.
fn split_input(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(py_str).collect(),
        other => py_str(other)
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect(),
    }
}

/// Salt's `_parse_env`: a map, or a list of maps merged; anything else is empty.
fn parse_env(value: Option<&Value>) -> Vec<(String, String)> {
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_map()
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| {
                if v.is_nil() {
                    tracing::warn!(var = %py_str(k), "environment variable passed without a value, set to an empty string");
                    (py_str(k), String::new())
                } else {
                    (py_str(k), py_str(v))
                }
            })
            .collect()
    };
    match value {
        Some(v @ Value::Map(_)) => pairs(v),
        Some(Value::Array(items)) => items.iter().flat_map(pairs).collect(),
        _ => Vec::new(),
    }
}

const LOCALE_VARS: [&str; 13] = [
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "LC_MESSAGES",
    "LC_PAPER",
    "LC_NAME",
    "LC_ADDRESS",
    "LC_TELEPHONE",
    "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
    "LANGUAGE",
];

/// Python's text for an OS error: `[Errno 2] No such file or directory: 'x'`.
fn os_error_text(err: &std::io::Error, program: &str) -> String {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    match err.raw_os_error() {
        Some(code) => format!("[Errno {code}] {text}: '{program}'"),
        None => text,
    }
}

/// The user a command runs as, resolved off the runtime.
struct Identity {
    uid: Option<u32>,
    gid: Option<u32>,
    env: Vec<(String, String)>,
    home: Option<PathBuf>,
}

fn resolve_identity(runas: Option<&str>, group: Option<&str>) -> Result<Identity, ModuleError> {
    let root = Path::new("/");
    let mut id = Identity {
        uid: None,
        gid: None,
        env: Vec::new(),
        home: None,
    };
    match runas {
        Some(name) => {
            let user = users::user_by_name(root, name)
                .ok_or_else(|| ModuleError::command(format!("User '{name}' is not available")))?;
            id.uid = Some(user.uid);
            id.gid = Some(user.gid);
            id.env = vec![
                ("HOME".into(), user.home.display().to_string()),
                ("USER".into(), user.name.clone()),
                ("LOGNAME".into(), user.name.clone()),
                ("SHELL".into(), user.shell.clone()),
            ];
            id.home = Some(user.home);
        }
        None => {
            id.home = std::env::var_os("HOME").map(PathBuf::from).or_else(|| {
                users::user_by_uid(root, rustix::process::getuid().as_raw()).map(|u| u.home)
            });
        }
    }
    if let Some(name) = group {
        let gid = users::gid_by_name(root, name)
            .ok_or_else(|| ModuleError::command(format!("Group '{name}' is not available")))?;
        id.gid = Some(gid);
    }
    Ok(id)
}

/// Salt's `_run` for one call.
async fn execute(
    call: &Call<'_>,
    is_shell_fn: bool,
    merge_default: bool,
) -> Result<Ran, ModuleError> {
    let options = call.ctx.options;
    for unsupported in ["template", "umask"] {
        if let Some(v) = call.param(unsupported).filter(|v| !v.is_nil()) {
            return Err(ModuleError::command(format!(
                "{unsupported}={} is not supported by Brine",
                py_str(v)
            )));
        }
    }
    if flag(call, "bg", false) {
        return Err(ModuleError::command("bg=True is not supported by Brine"));
    }
    let cmd_value = call.param("cmd").cloned().unwrap_or(Value::Nil);

    // shell or not, as _python_shell_default decides
    let shell_param = text(call, "shell");
    let python_shell_param = call
        .param("python_shell")
        .filter(|v| !v.is_nil())
        .map(is_truthy)
        .or_else(|| call.kwargs.get("python_shell").map(is_truthy));
    let (python_shell, shell) = if is_shell_fn {
        (
            python_shell_param.unwrap_or(true),
            shell_param.unwrap_or_else(|| options.shell.clone()),
        )
    } else if shell_param.is_some() {
        (
            python_shell_param.unwrap_or(true),
            shell_param.unwrap_or_default(),
        )
    } else {
        (python_shell_param.unwrap_or(false), options.shell.clone())
    };

    // the argument vector, and how a time-out message names the command
    let shell_to_check = python_shell.then(|| shell.clone());
    let (argv, shown) = if python_shell {
        let line = py_str(&cmd_value);
        (vec![shell, "-c".to_owned(), line.clone()], line)
    } else {
        let argv = match &cmd_value {
            Value::Array(items) => items.iter().map(py_str).collect(),
            other => shlex::split(&py_str(other))
                .map_err(|e| ModuleError::exception("ValueError", e.to_string()))?,
        };
        let shown = py_repr(&Value::Array(
            argv.iter()
                .map(|a: &String| Value::from(a.as_str()))
                .collect(),
        ));
        (argv, shown)
    };
    if argv.is_empty() {
        return Err(ModuleError::exception(
            "IndexError",
            "list index out of range",
        ));
    }

    // command time-out (the job's deadline caps it)
    let own_timeout = match call.param("timeout") {
        None | Some(Value::Nil) | Some(Value::Bool(false)) => None,
        Some(v @ (Value::Int(_) | Value::UInt(_) | Value::Float(_))) => {
            let secs: f64 = match v {
                Value::Float(f) => *f,
                other => py_str(other).parse().unwrap_or(f64::MAX),
            };
            (secs != 0.0).then(|| {
                (
                    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX),
                    py_str(v),
                )
            })
        }
        Some(other) => {
            return Err(ModuleError::exception(
                "TimedProcTimeoutError",
                format!("Error: timeout {} must be a number", py_str(other)),
            ));
        }
    };
    let timeout = match (own_timeout, call.timeout) {
        (Some((own, shown)), Some(job)) if own <= job => Some((own, shown)),
        (_, Some(job)) => Some((job, float_repr(job.as_secs_f64()))),
        (own, None) => own,
    };

    // who runs it, and where
    let runas = text(call, "runas");
    let group = text(call, "group");
    let cwd_param = text(call, "cwd");
    let (identity, cwd) = tokio::task::spawn_blocking(move || {
        if let Some(shell) = shell_to_check
            && !Path::new(&shell).is_file()
        {
            return Err(ModuleError::command(format!(
                "The shell {shell} is not available"
            )));
        }
        let identity = resolve_identity(runas.as_deref(), group.as_deref())?;
        let cwd = match cwd_param {
            Some(c) => PathBuf::from(c),
            // Salt falls back to / when the home is not accessible
            None => identity
                .home
                .clone()
                .filter(|h| h.is_dir())
                .unwrap_or_else(|| PathBuf::from("/")),
        };
        if !cwd.is_absolute() || !cwd.is_dir() {
            return Err(ModuleError::command(format!(
                "Specified cwd '{}' either not absolute or does not exist",
                cwd.display()
            )));
        }
        Ok((identity, cwd))
    })
    .await
    .map_err(|e| ModuleError::exception("RuntimeError", e.to_string()))??;

    // the environment
    let user_env = parse_env(call.param("env"));
    let mut env = identity.env;
    if flag(call, "reset_system_locale", true) {
        for var in LOCALE_VARS {
            if !user_env.iter().any(|(k, _)| k == var) {
                env.push((var.to_owned(), "C".to_owned()));
            }
        }
    }
    env.extend(user_env.iter().cloned());
    let clear_env = flag(call, "clean_env", false);
    if let Some(prefix) = text(call, "prepend_path") {
        let current = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        env.push(("PATH".into(), format!("{prefix}:{current}")));
    }
    let remove_env = if user_env.iter().any(|(k, _)| k == "NOTIFY_SOCKET") {
        Vec::new()
    } else {
        vec!["NOTIFY_SOCKET".to_owned()]
    };

    let stdin = call.param("stdin").filter(|v| !v.is_nil()).map(|v| {
        let text = py_str(v);
        let raw = call.kwargs.get("stdin_raw_newlines").is_some_and(is_truthy);
        if raw { text } else { text.replace("\\n", "\n") }.into_bytes()
    });

    let spec = Spec {
        argv,
        cwd,
        clear_env,
        remove_env,
        env,
        stdin,
        merge_stderr: flag(call, "redirect_stderr", merge_default),
        timeout: timeout.as_ref().map(|(d, _)| *d),
        output_cap: options.output_cap,
        uid: identity.uid,
        gid: identity.gid,
    };
    let program = spec.argv.first().cloned().unwrap_or_default();
    tracing::debug!(jid = call.jid, fun = call.fun, "executing command");
    let output = process::run(spec).await.map_err(|e| {
        ModuleError::command(format!(
            "Unable to run command '{shown}', reason: {}",
            os_error_text(&e, &program)
        ))
    })?;

    let (mut stdout, mut stderr) = (output.stdout, output.stderr);
    let retcode = match output.status {
        Status::TimedOut => {
            let after = timeout.map(|(_, shown)| shown).unwrap_or_default();
            tracing::warn!(
                jid = call.jid,
                pid = output.pid,
                "command timed out and was killed"
            );
            // Salt returns here without touching the job's retcode
            return Ok(Ran {
                pid: output.pid,
                retcode: 1,
                stdout: format!("{shown} : Timed out after {after} seconds"),
                stderr: String::new(),
            });
        }
        Status::Exited(code) => code,
    };
    if flag(call, "rstrip", true) {
        stdout.truncate(stdout.trim_end().len());
        stderr.truncate(stderr.trim_end().len());
    }
    let mut retcode = retcode;
    if let Some(v) = call.param("success_retcodes").filter(|v| !v.is_nil()) {
        let codes: Result<Vec<i64>, _> = split_input(v)
            .iter()
            .map(|s| s.trim().parse::<i64>())
            .collect();
        let codes = codes
            .map_err(|_| ModuleError::invocation("success_retcodes must be a list of integers"))?;
        if codes.contains(&retcode) {
            retcode = 0;
        }
    }
    let found = |param: &str, haystack: &str| {
        call.param(param)
            .filter(|v| !v.is_nil())
            .is_some_and(|v| split_input(v).iter().any(|s| haystack.contains(s.as_str())))
    };
    if found("success_stdout", &stdout) || found("success_stderr", &stderr) {
        retcode = 0;
    }
    let context_retcode = if flag(call, "ignore_retcode", false) {
        0
    } else {
        retcode
    };
    if context_retcode != 0 {
        tracing::info!(jid = call.jid, retcode, "command failed");
    }
    call.ctx.set_retcode(context_retcode);
    Ok(Ran {
        pid: output.pid,
        retcode,
        stdout,
        stderr,
    })
}
