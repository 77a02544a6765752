//! Shared helpers: run one job through the real executor.
#![allow(dead_code)]

use std::time::Duration;

use brine_minion::{ExecOptions, Jobs, Modules, PublishLoad, ReturnData, args, execute};
use brine_protocol::Value;

/// Grains small enough to reason about.
pub(crate) fn grains() -> Value {
    Value::Map(vec![
        (Value::from("id"), Value::from("m1")),
        (Value::from("os"), Value::from("Debian")),
        (
            Value::from("pkg"),
            Value::Map(vec![(Value::from("apache"), Value::from("httpd"))]),
        ),
        (Value::from("num_cpus"), Value::Int(2)),
    ])
}

/// A fresh jid for each call, so tests never collide in a shared table.
pub(crate) fn jid() -> String {
    brine_protocol::jid::gen_jid()
}

/// The load `brine m1 <fun> <cli args...>` would publish.
pub(crate) fn load(fun: &str, cli: &[&str]) -> PublishLoad {
    PublishLoad::new(jid(), fun, args::parse_cli(cli))
}

/// Runs `fun` with command-line arguments and default options.
pub(crate) async fn run(fun: &str, cli: &[&str]) -> ReturnData {
    run_load(&load(fun, cli)).await
}

pub(crate) async fn run_load(load: &PublishLoad) -> ReturnData {
    run_with(
        &Modules::builtin(),
        load,
        &Jobs::new(),
        &ExecOptions::default(),
    )
    .await
}

pub(crate) async fn run_with(
    modules: &Modules,
    load: &PublishLoad,
    jobs: &Jobs,
    options: &ExecOptions,
) -> ReturnData {
    execute(modules, load, jobs, &grains(), options)
        .await
        .expect("the job returns")
}

/// Waits (bounded) until job `jid` is in the table.
pub(crate) async fn wait_running(jobs: &Jobs, jid: &str) {
    for _ in 0..2000 {
        if jobs.find(jid).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("job {jid} never started");
}

pub(crate) fn s(v: &str) -> Value {
    Value::from(v)
}
