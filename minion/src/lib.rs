//! The Brine minion as a library: the [`daemon`] (authentication,
//! subscription, target matching, returns and their spool; started with
//! [`daemon::Minion::start`]), execution modules and their registry,
//! Salt's argument handling, the jobs table, the executor and grains.
//!
//! The daemon sits on top of the rest of this crate: for each publish it decodes a
//! [`PublishLoad`], spawns [`execute`] in its own task, and sends the
//! [`ReturnData`] it gets back (`None`: the job was killed or is a duplicate,
//! and nothing is sent). Everything here is independent of the transport.
//!
//! | module | what it holds | Salt counterpart |
//! | --- | --- | --- |
//! | [`daemon`] | [`daemon::Minion`], [`daemon::MinionHandle`], the return [`daemon::Spool`] | `salt/minion.py:Minion`, `salt/crypt.py:AsyncAuth` |
//! | [`modules`] | the [`Module`] trait (one object per module, e.g. `test`), [`FunctionSpec`], [`Call`], the [`Modules`] registry with [`Modules::builtin`] | the loader's `__salt__` |
//! | [`modules::test`] | `test.ping`, `echo`, `arg`, `sleep`, `version`, `fib`, `exception` | `salt/modules/test.py` |
//! | [`modules::cmd`] | `cmd.run`, `shell`, `run_all`, `retcode`, `run_stdout`, `run_stderr` on tokio processes (own process group, output cap, kill on timeout or job kill) | `salt/modules/cmdmod.py` |
//! | [`modules::grains`] | `grains.items`, `item`, `get`, `ls` | `salt/modules/grains.py` |
//! | [`modules::sys`] | `sys.doc`, `list_functions`, `list_modules` | `salt/modules/sysmod.py` |
//! | [`modules::saltutil`] | `saltutil.find_job`, `running`, `kill_job`, `sync_grains` (no-op), `refresh_pillar` (no-op) | `salt/modules/saltutil.py` |
//! | [`args`] | CLI typing ([`args::yamlify_arg`], [`args::parse_input`], [`args::condition_input`]), the minion-side split ([`args::load_args_and_kwargs`]), [`args::Signature`] with Python's binding errors | `salt/utils/args.py`, `salt/minion.py:load_args_and_kwargs` |
//! | [`jobs`] | the [`Jobs`] table: running jobs' proc data and kill handles | `cachedir/proc`, `salt/utils/minion.py:running` |
//! | [`executor`] | [`execute`]: one job from load to return, Salt's return shapes and retcodes | `salt/minion.py:_thread_return` |
//! | [`grains`] | [`grains::compute`]/[`grains::load`]: grains from `/proc`, `/sys`, `/etc`, plus config grains | `salt/grains/core.py` |
//!
//! # Arguments and YAML
//!
//! Command-line arguments are typed with YAML as PyYAML's `SafeLoader`
//! types them (YAML 1.1: `yes`/`on` are booleans, `010` is 10 under Salt's
//! loader, `1e3` stays text), plus Salt's own exceptions (see
//! [`args::yamlify_arg`]). The text is parsed by `saphyr-parser`, a small
//! maintained pure-Rust YAML parser (no `unsafe` C port, two small
//! dependencies) that reports each scalar's style, so a quoted `'1'` stays
//! text; Brine then types plain scalars itself with the YAML 1.1 rules.
//! serde-based crates (`serde_norway`, the maintained fork of the archived
//! `serde_yaml`) resolve scalars with YAML 1.2's rules and hide the quoting,
//! so they cannot reproduce Salt's typing.
//!
//! # Differences from Salt, on purpose
//!
//! - An unknown function returns retcode [`MISSING_FUNCTION_RETCODE`] (254)
//!   where Salt 3007's minion returns 1.
//! - A function that raises a generic exception returns `The minion function
//!   caused an exception: <Class>: <message>` (Salt appends a traceback whose
//!   last line is that `<Class>: <message>`).
//! - Jobs are tasks, not processes: `saltutil.find_job`'s `pid` is the
//!   minion's; a killed job's task is dropped and its commands' process
//!   groups are killed ([`jobs`]).
//! - `test.arg` and every `**kwargs` function get `__pub_<key>` entries for
//!   each field of the publish load (`fun`, `arg`, `tgt`, `jid`, `ret`,
//!   `tgt_type`, `user`, extras), as Salt's minion adds them.
//! - `cmd.*` refuses `template`, `umask` and `bg`; `runas` switches ids from
//!   `/etc/passwd` rather than through `su` ([`modules::cmd`]).
//! - Grains cover the table in [`grains`]; `saltversion` is not claimed,
//!   `brineversion` stands in.
//!
//! # Example
//!
//! ```
//! use brine_minion::{ExecOptions, Jobs, Modules, PublishLoad, args, execute};
//! use brine_protocol::Value;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let modules = Modules::builtin();
//! let jobs = Jobs::new();
//! let grains = Value::Map(vec![(Value::from("id"), Value::from("m1"))]);
//! // what `brine m1 test.arg 1 two k=v` publishes
//! let load = PublishLoad::new("20260101000000000001", "test.arg", args::parse_cli(&["1", "two", "k=v"]));
//! let ret = execute(&modules, &load, &jobs, &grains, &ExecOptions::default()).await.unwrap();
//! assert!(ret.success);
//! assert_eq!(ret.ret.get("args"), Some(&Value::Array(vec![Value::Int(1), Value::from("two")])));
//! assert_eq!(ret.ret.get("kwargs").and_then(|k| k.get("k")), Some(&Value::from("v")));
//! # }
//! ```
#![warn(missing_docs)]

pub use brine_protocol::args;
mod context;
pub mod daemon;
pub mod error;
pub mod executor;
pub mod grains;
pub mod jobs;
mod load;
pub mod modules;
mod users;

pub use args::Kwargs;
pub use context::{DEFAULT_OUTPUT_CAP, ExecOptions, JobContext};
pub use error::{EX_GENERIC, ModuleError, RegistryError};
pub use executor::{MISSING_FUNCTION_RETCODE, execute};
pub use jobs::{JobGuard, Jobs};
pub use load::{LoadError, PublishLoad, ReturnData};
pub use modules::{Call, FunctionSpec, Module, Modules};

/// Brine's version: `test.version`'s answer and the `brineversion` grain.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
