//! The executor's return shapes: values, Salt's error texts and retcodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use brine_minion::args::Signature;
use brine_minion::{
    Call, ExecOptions, FunctionSpec, Jobs, MISSING_FUNCTION_RETCODE, Module, ModuleError, Modules,
    PublishLoad, execute,
};
use brine_protocol::Value;
use support::{grains, jid, load, run, run_load, run_with, s};

#[tokio::test]
async fn ping_returns_true_in_salts_shape() {
    let mut l = load("test.ping", &[]);
    l.user = Some("root".into());
    let ret = run_load(&l).await;
    assert_eq!(ret.ret, Value::Bool(true));
    assert_eq!(ret.retcode, 0);
    assert!(ret.success);
    assert_eq!(ret.out, None);
    let wire = ret.to_value();
    let keys: Vec<&str> = wire
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "success", "return", "retcode", "jid", "fun", "fun_args", "user"
        ]
    );
    assert_eq!(wire.get("jid"), Some(&Value::from(l.jid.as_str())));
}

#[tokio::test]
async fn unknown_function_is_not_available_with_retcode_254() {
    let ret = run("nomod.nofun", &[]).await;
    assert_eq!(ret.ret, s("'nomod.nofun' is not available."));
    assert_eq!(ret.retcode, MISSING_FUNCTION_RETCODE);
    assert!(!ret.success);
    assert_eq!(ret.out.as_deref(), Some("nested"));

    let ret = run("test.nope", &[]).await;
    assert_eq!(ret.ret, s("'test.nope' is not available."));

    // a prefix of real functions: Salt returns their docs plus the message
    let ret = run("test.pin", &[]).await;
    assert!(ret.ret.get("test.ping").and_then(Value::as_str).is_some());
    assert_eq!(
        ret.ret.get("test.pin"),
        Some(&s("'test.pin' is not available."))
    );
    assert_eq!(ret.retcode, MISSING_FUNCTION_RETCODE);
}

#[tokio::test]
async fn invalid_keyword_is_an_invocation_error() {
    let ret = run("test.echo", &["hi", "foo=1"]).await;
    assert_eq!(
        ret.ret,
        s("ERROR executing 'test.echo': The following keyword arguments are not valid: foo=1")
    );
    assert_eq!(ret.retcode, 1);
    assert!(!ret.success);
    assert_eq!(ret.out.as_deref(), Some("nested"));
}

#[tokio::test]
async fn wrong_arguments_are_a_type_error_with_the_doc() {
    let ret = run("test.echo", &[]).await;
    let text = ret.ret.as_str().unwrap();
    assert!(
        text.starts_with(
            "Passed invalid arguments to test.echo: echo() missing 1 required positional argument: 'text'\n"
        ),
        "{text}"
    );
    assert!(text.contains("test.echo"), "doc appended: {text}");
    assert_eq!(ret.retcode, 1);

    let ret = run("test.ping", &["extra"]).await;
    assert!(
        ret.ret
            .as_str()
            .unwrap()
            .contains("ping() takes 0 positional arguments but 1 was given")
    );
}

#[tokio::test]
async fn exception_fails_the_job() {
    let ret = run("test.exception", &[]).await;
    assert_eq!(
        ret.ret,
        s("The minion function caused an exception: Exception: Test Exception")
    );
    assert_eq!(ret.retcode, 1);
    assert!(!ret.success);
    assert_eq!(ret.out.as_deref(), Some("nested"));

    let ret = run("test.exception", &["Oh noes!"]).await;
    assert_eq!(
        ret.ret,
        s("The minion function caused an exception: Exception: Oh noes!")
    );
}

#[tokio::test]
async fn a_false_result_fails_the_job() {
    #[derive(Debug)]
    struct State;
    #[async_trait]
    impl Module for State {
        fn name(&self) -> &str {
            "state"
        }
        fn functions(&self) -> Vec<FunctionSpec> {
            vec![
                FunctionSpec::new("bad", "fails", Signature::new()),
                FunctionSpec::new("good", "works", Signature::new()),
            ]
        }
        async fn call(&self, call: Call<'_>) -> Result<Value, ModuleError> {
            let ok = call.function() == "good";
            Ok(Value::Map(vec![
                (s("result"), Value::Bool(ok)),
                (s("comment"), s("x")),
            ]))
        }
    }
    let mut modules = Modules::builtin();
    modules.register(Arc::new(State)).unwrap();
    let opts = ExecOptions::default();
    let bad = run_with(&modules, &load("state.bad", &[]), &Jobs::new(), &opts).await;
    assert_eq!(bad.retcode, 1);
    assert!(!bad.success);
    assert_eq!(bad.out, None);
    let good = run_with(&modules, &load("state.good", &[]), &Jobs::new(), &opts).await;
    assert_eq!(good.retcode, 0);
}

#[tokio::test(start_paused = true)]
async fn job_timeout_stops_the_function() {
    let mut l = load("test.sleep", &["3600"]);
    l.timeout = Some(Duration::from_secs(2));
    let jobs = Jobs::new();
    let ret = run_with(&Modules::builtin(), &l, &jobs, &ExecOptions::default()).await;
    assert_eq!(ret.retcode, 1);
    assert!(!ret.success);
    assert!(
        ret.ret.as_str().unwrap().contains("timeout of 2 seconds"),
        "{:?}",
        ret.ret
    );
    assert!(jobs.is_empty());
}

#[tokio::test]
async fn duplicate_jid_is_ignored_while_running() {
    let jobs = Jobs::new();
    let modules = Modules::builtin();
    let l = load("test.sleep", &["3600"]);
    let first = {
        let (jobs, modules, l) = (jobs.clone(), modules.clone(), l.clone());
        tokio::spawn(async move {
            execute(&modules, &l, &jobs, &grains(), &ExecOptions::default()).await
        })
    };
    support::wait_running(&jobs, &l.jid).await;
    assert!(
        execute(&modules, &l, &jobs, &grains(), &ExecOptions::default())
            .await
            .is_none()
    );
    assert!(jobs.kill(&l.jid).is_some());
    assert!(
        first.await.unwrap().is_none(),
        "a killed job returns nothing"
    );
    assert!(jobs.is_empty());
}

#[tokio::test]
async fn publish_extras_reach_the_return() {
    let wire = Value::Map(vec![
        (s("fun"), s("test.ping")),
        (s("arg"), Value::Array(vec![])),
        (s("tgt"), s("*")),
        (s("jid"), Value::from(jid())),
        (s("ret"), s("")),
        (s("tgt_type"), s("glob")),
        (s("user"), s("sudo_alice")),
        (s("master_id"), s("master1")),
        (s("metadata"), Value::Map(vec![(s("k"), s("v"))])),
    ]);
    let l = PublishLoad::from_value(&wire).unwrap();
    let ret = run_load(&l).await.to_value();
    assert_eq!(ret.get("user"), Some(&s("sudo_alice")));
    assert_eq!(ret.get("master_id"), Some(&s("master1")));
    assert_eq!(ret.get("metadata").and_then(|m| m.get("k")), Some(&s("v")));
    assert_eq!(ret.get("fun_args"), Some(&Value::Array(vec![])));
}
