//! Requests a stock Salt minion makes that Brine has no backend for yet:
//! the file server (`_file_*`, `_serve_file`, `_dir_list`, …), the master
//! options and tops the state system asks for, the mine and peer
//! publishing. Each gets the answer a stock 3007.8 master gives when the
//! feature has nothing to offer (no file roots, no tops, mine cache and
//! `peer` off), so `cp.*`, `saltutil.sync_*` and `state.*` on a stock
//! minion end with Salt's own "nothing found" results instead of
//! tracebacks, and no request goes unanswered.

use brine_protocol::Value;
use tracing::debug;

/// Whether `cmd` is one of the requests answered here.
pub(super) fn handles(cmd: &str) -> bool {
    matches!(
        cmd,
        "_file_envs"
            | "_file_list"
            | "_file_list_emptydirs"
            | "_dir_list"
            | "_symlink_list"
            | "_file_hash"
            | "_file_hash_and_stat"
            | "_file_find"
            | "_serve_file"
            | "_file_recv"
            | "_master_opts"
            | "_master_tops"
            | "_ext_nodes"
            | "_mine"
            | "_mine_get"
            | "_mine_delete"
            | "_mine_flush"
            | "minion_pub"
            | "minion_publish"
            | "minion_runner"
            | "pub_ret"
            | "revoke_auth"
            | "verify_minion"
    )
}

/// The answer to `cmd` (one [`handles`] accepts) from `minion`;
/// `nodegroups` is the master's, for `_master_opts`.
pub(super) fn answer(nodegroups: &Value, minion: &str, cmd: &str, load: &Value) -> Value {
    debug!(minion, cmd, "answered with an empty result (no backend)");
    match cmd {
        // `Fileserver.file_envs`: a list of environments, or a
        // `{backend: [envs]}` map when `sources` is asked for.
        "_file_envs" if load.get("sources").is_some_and(is_truthy) => Value::map(),
        "_file_envs" | "_file_list" | "_file_list_emptydirs" | "_dir_list" => {
            Value::Array(Vec::new())
        }
        "_symlink_list" => Value::map(),
        // `file_hash`: "" for a file not found; `file_hash_and_stat`: ("", None).
        "_file_hash" => Value::from(""),
        "_file_hash_and_stat" => Value::Array(vec![Value::from(""), Value::Nil]),
        "_file_find" => entries([("path", Value::from("")), ("rel", Value::from(""))]),
        "_serve_file" => entries([("data", Value::from("")), ("dest", Value::from(""))]),
        // `file_recv` is off by default on a stock master too.
        "_file_recv" => Value::Bool(false),
        "_master_opts" => master_opts(nodegroups, load),
        "_master_tops" | "_ext_nodes" | "_mine_get" => Value::map(),
        // Nothing is stored: say so rather than claim success.
        "_mine" | "_mine_delete" | "_mine_flush" => Value::Bool(false),
        // Peer publishing is refused as with `peer` / `peer_run` unset.
        "minion_pub" | "minion_publish" | "minion_runner" | "pub_ret" => Value::map(),
        // A minion cannot revoke its own key here; `verify_minion` is for syndics.
        _ => Value::Bool(false),
    }
}

/// `AESFuncs._master_opts`: what the state system reads from the master,
/// with Salt's defaults and no file-server environments.
fn master_opts(nodegroups: &Value, load: &Value) -> Value {
    let mut opts = vec![
        ("file_roots", Value::map()),
        ("top_file_merging_strategy", Value::from("merge")),
        ("env_order", Value::Array(Vec::new())),
        ("default_top", Value::from("base")),
    ];
    if !load.get("env_only").is_some_and(is_truthy) {
        opts.extend([
            ("renderer", Value::from("jinja|yaml")),
            ("failhard", Value::Bool(false)),
            ("state_top", Value::from("salt://top.sls")),
            ("state_top_saltenv", Value::Nil),
            ("nodegroups", nodegroups.clone()),
            ("state_auto_order", Value::Bool(true)),
            ("state_events", Value::Bool(false)),
            ("state_aggregate", Value::Bool(false)),
            ("jinja_env", Value::map()),
            ("jinja_sls_env", Value::map()),
            ("jinja_lstrip_blocks", Value::Bool(false)),
            ("jinja_trim_blocks", Value::Bool(false)),
        ]);
    }
    entries(opts)
}

fn entries(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    pairs.into_iter().collect()
}

fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Str(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&'static str, Value)]) -> Value {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn each_request_gets_the_shape_salt_gives() {
        let none = Value::map();
        let empty_list = Value::Array(Vec::new());
        for (cmd, want) in [
            ("_file_envs", empty_list.clone()),
            ("_file_list", empty_list.clone()),
            ("_dir_list", empty_list.clone()),
            ("_file_list_emptydirs", empty_list.clone()),
            ("_symlink_list", Value::map()),
            ("_file_hash", Value::from("")),
            (
                "_file_hash_and_stat",
                Value::Array(vec![Value::from(""), Value::Nil]),
            ),
            (
                "_serve_file",
                load(&[("data", Value::from("")), ("dest", Value::from(""))]),
            ),
            (
                "_file_find",
                load(&[("path", Value::from("")), ("rel", Value::from(""))]),
            ),
            ("_master_tops", Value::map()),
            ("_mine_get", Value::map()),
            ("_mine", Value::Bool(false)),
            ("minion_publish", Value::map()),
            ("revoke_auth", Value::Bool(false)),
        ] {
            assert!(handles(cmd), "{cmd}");
            assert_eq!(answer(&none, "m1", cmd, &Value::map()), want, "{cmd}");
        }
        assert!(!handles("_return") && !handles("_pillar") && !handles("nonsense"));
        let sources = load(&[("sources", Value::Bool(true))]);
        assert_eq!(answer(&none, "m1", "_file_envs", &sources), Value::map());
    }

    #[test]
    fn master_opts_carry_the_nodegroups_unless_env_only() {
        let groups = load(&[("web", Value::from("L@m1,m2"))]);
        let full = answer(&groups, "m1", "_master_opts", &Value::map());
        assert_eq!(full.get("nodegroups"), Some(&groups));
        assert_eq!(full.get("file_roots"), Some(&Value::map()));
        assert_eq!(full.get("renderer"), Some(&Value::from("jinja|yaml")));
        let env_only = load(&[("env_only", Value::Bool(true))]);
        let short = answer(&groups, "m1", "_master_opts", &env_only);
        assert_eq!(short.get("nodegroups"), None);
        assert_eq!(short.get("default_top"), Some(&Value::from("base")));
    }
}
