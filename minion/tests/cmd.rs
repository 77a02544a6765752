//! `cmd.*` with real processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use brine_minion::{ExecOptions, Jobs, Modules, execute};
use brine_protocol::Value;
use support::{grains, load, run, run_with, s, wait_running};

#[tokio::test]
async fn run_returns_output_without_a_shell() {
    let ret = run("cmd.run", &["echo hi"]).await;
    assert_eq!(ret.ret, s("hi"));
    assert_eq!(ret.retcode, 0);
    assert!(ret.success);
    // no shell: the rest of the line is echo's arguments, as in Salt 3007
    assert_eq!(
        run("cmd.run", &["echo a; echo b"]).await.ret,
        s("a; echo b")
    );
    assert_eq!(
        run("cmd.run", &["echo 'a  b' \"c\""]).await.ret,
        s("a  b c")
    );
}

#[tokio::test]
async fn shell_when_asked() {
    assert_eq!(
        run("cmd.run", &["echo a; echo b", "python_shell=True"])
            .await
            .ret,
        s("a\nb")
    );
    assert_eq!(run("cmd.shell", &["echo a | tr a b"]).await.ret, s("b"));
    assert_eq!(
        run("cmd.run", &["echo $0", "shell=/bin/sh"]).await.ret,
        s("/bin/sh")
    );
    let missing = run("cmd.run", &["true", "shell=/no/such/shell"]).await;
    assert_eq!(
        missing.ret,
        s("ERROR: The shell /no/such/shell is not available")
    );
    assert_eq!(missing.retcode, 1);
}

#[tokio::test]
async fn run_merges_stderr_and_sets_the_job_retcode() {
    let ret = run("cmd.run", &["sh -c 'echo out; echo err >&2; exit 3'"]).await;
    assert_eq!(ret.ret, s("out\nerr"));
    assert_eq!(ret.retcode, 3);
    assert!(!ret.success);
}

#[tokio::test]
async fn run_all_keeps_streams_apart() {
    let ret = run("cmd.run_all", &["sh -c 'echo out; echo err >&2; exit 3'"]).await;
    let keys: Vec<&str> = ret
        .ret
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["pid", "retcode", "stdout", "stderr"]);
    assert_eq!(ret.ret.get("retcode"), Some(&Value::Int(3)));
    assert_eq!(ret.ret.get("stdout"), Some(&s("out")));
    assert_eq!(ret.ret.get("stderr"), Some(&s("err")));
    assert!(ret.ret.get("pid").and_then(Value::as_u64).unwrap() > 0);
    assert_eq!(ret.retcode, 3);

    let merged = run(
        "cmd.run_all",
        &["sh -c 'echo out; echo err >&2'", "redirect_stderr=True"],
    )
    .await;
    assert_eq!(merged.ret.get("stdout"), Some(&s("out\nerr")));
    assert_eq!(merged.ret.get("stderr"), Some(&s("")));
}

#[tokio::test]
async fn retcode_stdout_stderr_variants() {
    let ret = run("cmd.retcode", &["sh -c 'exit 3'"]).await;
    assert_eq!(ret.ret, Value::Int(3));
    assert_eq!(ret.retcode, 3);
    assert_eq!(
        run("cmd.retcode", &["sh -c 'exit 0'"]).await.ret,
        Value::Int(0)
    );
    let both = "sh -c 'echo out; echo err >&2'";
    assert_eq!(run("cmd.run_stdout", &[both]).await.ret, s("out"));
    assert_eq!(run("cmd.run_stderr", &[both]).await.ret, s("err"));
    // a signal-ended command has minus the signal as its code
    assert_eq!(
        run("cmd.retcode", &["sh -c 'kill -TERM $$'"]).await.ret,
        Value::Int(-15)
    );
}

#[tokio::test]
async fn retcode_options() {
    let ignored = run("cmd.run", &["sh -c 'exit 3'", "ignore_retcode=True"]).await;
    assert_eq!(ignored.retcode, 0);
    let ok = run("cmd.run_all", &["sh -c 'exit 3'", "success_retcodes=[3]"]).await;
    assert_eq!(ok.ret.get("retcode"), Some(&Value::Int(0)));
    assert_eq!(ok.retcode, 0);
    let by_output = run(
        "cmd.run_all",
        &["sh -c 'echo fine; exit 2'", "success_stdout=fine"],
    )
    .await;
    assert_eq!(by_output.retcode, 0);
    let raised = run("cmd.run", &["sh -c 'echo boom; exit 1'", "raise_err=True"]).await;
    assert_eq!(raised.ret, s("ERROR: boom"));
    assert_eq!(raised.retcode, 1);
    assert_eq!(raised.out.as_deref(), Some("nested"));
    let hidden = run("cmd.run", &["echo secret", "hide_output=True"]).await;
    assert_eq!(hidden.ret, s(""));
}

#[tokio::test]
async fn stdin_env_cwd_and_locale() {
    assert_eq!(
        run("cmd.run", &["cat", "stdin=one\\ntwo"]).await.ret,
        s("one\ntwo")
    );
    assert_eq!(
        run("cmd.run", &["sh -c 'echo $FOO'", "env={FOO: bar}"])
            .await
            .ret,
        s("bar")
    );
    assert_eq!(
        run("cmd.run", &["sh -c 'echo $LC_CTYPE'"]).await.ret,
        s("C")
    );
    assert_eq!(
        run(
            "cmd.run",
            &[
                "sh -c 'echo ${LC_CTYPE:-unset}'",
                "reset_system_locale=False",
                "clean_env=True"
            ]
        )
        .await
        .ret,
        s("unset")
    );
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let cwd = cwd.to_str().unwrap();
    assert_eq!(
        run("cmd.run", &["pwd", &format!("cwd={cwd}")]).await.ret,
        s(cwd)
    );
    let bad = run("cmd.run", &["pwd", "cwd=relative/dir"]).await;
    assert_eq!(
        bad.ret,
        s("ERROR: Specified cwd 'relative/dir' either not absolute or does not exist")
    );
    assert_eq!(bad.retcode, 1);
}

#[tokio::test]
async fn missing_program_and_bad_quoting() {
    let ret = run("cmd.run", &["brine-no-such-program --flag"]).await;
    assert_eq!(
        ret.ret,
        s(
            "ERROR: Unable to run command '['brine-no-such-program', '--flag']', reason: [Errno 2] No such file or directory: 'brine-no-such-program'"
        )
    );
    assert_eq!(ret.retcode, 1);
    let quote = run("cmd.run", &["echo 'unclosed"]).await;
    assert_eq!(
        quote.ret,
        s("The minion function caused an exception: ValueError: No closing quotation")
    );
    let tmpl = run("cmd.run", &["true", "template=jinja"]).await;
    assert_eq!(
        tmpl.ret,
        s("ERROR: template=jinja is not supported by Brine")
    );
}

#[tokio::test]
async fn timeout_kills_the_command() {
    let ret = run("cmd.run_all", &["sleep 30", "timeout=0.3"]).await;
    assert_eq!(
        ret.ret.get("stdout"),
        Some(&s("['sleep', '30'] : Timed out after 0.3 seconds"))
    );
    assert_eq!(ret.ret.get("retcode"), Some(&Value::Int(1)));
    // as in Salt, a timed-out command leaves the job's retcode alone
    assert_eq!(ret.retcode, 0);

    let shell = run(
        "cmd.run",
        &["sleep 30; echo never", "python_shell=True", "timeout=0.3"],
    )
    .await;
    assert_eq!(
        shell.ret,
        s("sleep 30; echo never : Timed out after 0.3 seconds")
    );
}

#[tokio::test]
async fn job_timeout_caps_the_command() {
    let mut l = load("cmd.run", &["sleep 30"]);
    l.timeout = Some(Duration::from_millis(300));
    let ret = support::run_load(&l).await;
    assert_eq!(ret.ret, s("['sleep', '30'] : Timed out after 0.3 seconds"));
}

#[tokio::test]
async fn output_is_capped() {
    let options = ExecOptions {
        output_cap: 1000,
        ..ExecOptions::default()
    };
    let l = load("cmd.run_all", &["head -c 100000 /dev/zero"]);
    let ret = run_with(&Modules::builtin(), &l, &Jobs::new(), &options).await;
    let stdout = ret.ret.get("stdout").and_then(Value::as_str).unwrap();
    let (kept, note) = stdout.split_at(1000);
    assert!(kept.bytes().all(|b| b == 0));
    assert_eq!(
        note,
        "\n[brine: output truncated, 99000 bytes over the 1000-byte cap dropped]"
    );
    assert_eq!(ret.ret.get("retcode"), Some(&Value::Int(0)));
}

/// The state letter of a process, or `None` once it is gone.
fn proc_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[tokio::test]
async fn kill_job_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let jobs = Jobs::new();
    let modules = Modules::builtin();
    // the sleep is a grandchild: only a process-group kill reaches it
    let l = load(
        "cmd.run",
        &[
            &format!("sleep 300 & echo $! > {}; wait", pidfile.display()),
            "python_shell=True",
        ],
    );
    let task = {
        let (jobs, modules, l) = (jobs.clone(), modules.clone(), l.clone());
        tokio::spawn(async move {
            execute(&modules, &l, &jobs, &grains(), &ExecOptions::default()).await
        })
    };
    wait_running(&jobs, &l.jid).await;
    let mut pid = String::new();
    for _ in 0..2000 {
        if let Ok(text) = std::fs::read_to_string(&pidfile)
            && text.ends_with('\n')
        {
            pid = text.trim().to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!pid.is_empty(), "the command never started");
    assert!(proc_state(&pid).is_some_and(|c| c != 'Z'));

    let killed = run_with(
        &modules,
        &load("saltutil.kill_job", &[&l.jid]),
        &jobs,
        &ExecOptions::default(),
    )
    .await;
    assert!(
        killed
            .ret
            .as_str()
            .unwrap()
            .starts_with("Signal 9 sent to job")
    );
    assert!(task.await.unwrap().is_none());
    // the grandchild dies (it may linger briefly as a zombie until reaped)
    let mut gone = false;
    for _ in 0..2000 {
        if proc_state(&pid).is_none_or(|c| c == 'Z') {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(gone, "process {pid} survived the kill");
}

#[tokio::test]
async fn runas_switches_user_when_root() {
    if rustix::process::getuid().as_raw() != 0 {
        return; // only root may switch users
    }
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
        return;
    };
    let Some(nobody) = passwd.lines().find(|l| l.starts_with("nobody:")) else {
        return;
    };
    let uid = nobody.split(':').nth(2).unwrap();
    let ret = run("cmd.run", &["id -u", "runas=nobody"]).await;
    assert_eq!(ret.ret, s(uid));
    let unknown = run("cmd.run", &["id -u", "runas=brine-no-such-user"]).await;
    assert_eq!(
        unknown.ret,
        s("ERROR: User 'brine-no-such-user' is not available")
    );
}
