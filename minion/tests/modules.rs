//! The built-in `test`, `grains`, `sys` and `saltutil` functions, through
//! the executor, with Salt's arguments and return shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use brine_minion::{ExecOptions, Jobs, Modules, execute};
use brine_protocol::Value;
use support::{grains, load, run, run_with, s, wait_running};

fn strs(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|x| s(x)).collect())
}

#[tokio::test]
async fn test_functions() {
    assert_eq!(run("test.echo", &["hello"]).await.ret, s("hello"));
    // the CLI types arguments; echo hands them back as typed
    assert_eq!(run("test.echo", &["1"]).await.ret, Value::Int(1));
    assert_eq!(run("test.echo", &["text=hi"]).await.ret, s("hi"));
    assert_eq!(run("test.version", &[]).await.ret, s(brine_minion::VERSION));
    assert_eq!(run("test.sleep", &["0"]).await.ret, Value::Bool(true));

    let fib = run("test.fib", &["10"]).await.ret;
    let parts = fib.as_array().unwrap();
    assert_eq!(parts[0], Value::Int(55));
    assert!(parts[1].as_f64().unwrap() >= 0.0);
    let neg = run("test.fib", &["-1"]).await;
    assert_eq!(
        neg.ret,
        s("The minion function caused an exception: ValueError: Negative number is not allowed!")
    );
    let bad = run("test.sleep", &["soon"]).await;
    assert_eq!(
        bad.ret,
        s(
            "The minion function caused an exception: ValueError: invalid literal for int() with base 10: 'soon'"
        )
    );
}

#[tokio::test]
async fn test_arg_returns_args_kwargs_and_pub_data() {
    let l = load("test.arg", &["1", "two", "3.1", "txt=hello", "wow={a: 1}"]);
    let ret = support::run_load(&l).await.ret;
    assert_eq!(
        ret.get("args"),
        Some(&Value::Array(vec![
            Value::Int(1),
            s("two"),
            Value::Float(3.1)
        ]))
    );
    let kwargs = ret.get("kwargs").unwrap();
    let keys: Vec<&str> = kwargs
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "txt",
            "wow",
            "__pub_fun",
            "__pub_arg",
            "__pub_tgt",
            "__pub_jid",
            "__pub_ret",
            "__pub_tgt_type"
        ]
    );
    assert_eq!(kwargs.get("txt"), Some(&s("hello")));
    assert_eq!(
        kwargs.get("wow"),
        Some(&Value::Map(vec![(s("a"), Value::Int(1))]))
    );
    assert_eq!(kwargs.get("__pub_jid"), Some(&Value::from(l.jid.as_str())));
    assert_eq!(kwargs.get("__pub_fun"), Some(&s("test.arg")));
}

#[tokio::test]
async fn grains_functions() {
    assert_eq!(run("grains.items", &[]).await.ret, grains());
    assert_eq!(
        run("grains.ls", &[]).await.ret,
        strs(&["id", "num_cpus", "os", "pkg"])
    );
    assert_eq!(run("grains.get", &["os"]).await.ret, s("Debian"));
    assert_eq!(run("grains.get", &["pkg:apache"]).await.ret, s("httpd"));
    assert_eq!(run("grains.get", &["nope"]).await.ret, s(""));
    assert_eq!(run("grains.get", &["nope", "dflt"]).await.ret, s("dflt"));
    assert_eq!(
        run("grains.get", &["pkg|apache", "delimiter=|"]).await.ret,
        s("httpd")
    );
    assert_eq!(
        run("grains.item", &["os", "num_cpus", "missing", "default=x"])
            .await
            .ret,
        Value::Map(vec![
            (s("os"), s("Debian")),
            (s("num_cpus"), Value::Int(2)),
            (s("missing"), s("x")),
        ])
    );
}

#[tokio::test]
async fn sys_functions() {
    let all = run("sys.list_functions", &[]).await.ret;
    let all = all.as_array().unwrap();
    assert!(all.contains(&s("cmd.run_all")));
    assert!(
        all.windows(2).all(|w| w[0].as_str() < w[1].as_str()),
        "sorted"
    );
    assert_eq!(
        run("sys.list_functions", &["saltutil"]).await.ret,
        strs(&[
            "saltutil.find_job",
            "saltutil.kill_job",
            "saltutil.refresh_pillar",
            "saltutil.running",
            "saltutil.sync_grains"
        ])
    );
    assert_eq!(
        run("sys.list_modules", &[]).await.ret,
        strs(&["cmd", "grains", "saltutil", "sys", "test"])
    );
    let doc = run("sys.doc", &["test.ping"]).await.ret;
    assert!(
        doc.get("test.ping")
            .and_then(Value::as_str)
            .unwrap()
            .contains("Returns True")
    );
    assert_eq!(doc.as_map().unwrap().len(), 1);
}

#[tokio::test]
async fn saltutil_sees_and_kills_running_jobs() {
    let jobs = Jobs::new();
    let modules = Modules::builtin();
    let opts = ExecOptions::default();
    let mut sleeper = load("test.sleep", &["3600"]);
    sleeper.user = Some("root".into());
    let task = {
        let (jobs, modules, sleeper) = (jobs.clone(), modules.clone(), sleeper.clone());
        tokio::spawn(async move {
            execute(
                &modules,
                &sleeper,
                &jobs,
                &grains(),
                &ExecOptions::default(),
            )
            .await
        })
    };
    wait_running(&jobs, &sleeper.jid).await;

    let found = run_with(
        &modules,
        &load("saltutil.find_job", &[&sleeper.jid]),
        &jobs,
        &opts,
    )
    .await
    .ret;
    assert_eq!(found.get("fun"), Some(&s("test.sleep")));
    assert_eq!(found.get("jid"), Some(&Value::from(sleeper.jid.as_str())));
    assert_eq!(
        found.get("arg"),
        Some(&Value::Array(vec![Value::Int(3600)]))
    );
    assert_eq!(found.get("user"), Some(&s("root")));
    assert_eq!(found.get("tgt_type"), Some(&s("glob")));
    assert_eq!(
        found.get("pid").and_then(Value::as_u64),
        Some(u64::from(std::process::id()))
    );

    let running = run_with(&modules, &load("saltutil.running", &[]), &jobs, &opts)
        .await
        .ret;
    let running = running.as_array().unwrap();
    assert_eq!(running.len(), 1, "the running call does not list itself");
    assert_eq!(running[0].get("fun"), Some(&s("test.sleep")));

    let missing = run_with(
        &modules,
        &load("saltutil.find_job", &["20000101000000000000"]),
        &jobs,
        &opts,
    )
    .await
    .ret;
    assert_eq!(missing, Value::map());

    let killed = run_with(
        &modules,
        &load("saltutil.kill_job", &[&sleeper.jid]),
        &jobs,
        &opts,
    )
    .await;
    assert_eq!(
        killed.ret,
        Value::from(format!(
            "Signal 9 sent to job {} at pid {}",
            sleeper.jid,
            std::process::id()
        ))
    );
    assert!(
        task.await.unwrap().is_none(),
        "a killed job sends no return"
    );
    assert!(jobs.find(&sleeper.jid).is_none());

    let nothing = run_with(
        &modules,
        &load("saltutil.kill_job", &[&sleeper.jid]),
        &jobs,
        &opts,
    )
    .await;
    assert_eq!(nothing.ret, s(""));
}

#[tokio::test]
async fn saltutil_no_ops() {
    assert_eq!(
        run("saltutil.sync_grains", &[]).await.ret,
        Value::Array(vec![])
    );
    assert_eq!(
        run("saltutil.refresh_pillar", &[]).await.ret,
        Value::Bool(true)
    );
}
