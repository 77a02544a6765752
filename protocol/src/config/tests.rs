//! Loader tests over real temporary config directories.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::{Serialization, Value};

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn master(dir: &Path) -> Loaded<MasterConfig> {
    MasterConfig::load(dir, Missing::Error).unwrap()
}

#[test]
fn master_defaults_follow_salt_with_brine_paths() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("master"), "# nothing set\n");
    let Loaded {
        config: c,
        warnings,
    } = master(dir.path());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.interface, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!((c.publish_port, c.ret_port), (4505, 4506));
    assert_eq!(c.transport, "zeromq");
    assert_eq!(c.worker_threads, 5);
    assert!(!c.auto_accept && !c.open_mode && !c.permissive_pki_access);
    assert_eq!(c.autosign_file, None);
    assert_eq!(c.pki_dir, Path::new("/etc/brine/pki/master"));
    assert_eq!(c.cachedir, Path::new("/var/cache/brine/master"));
    assert_eq!(c.sock_dir, Path::new("/var/run/brine/master"));
    assert_eq!(c.log_file, Path::new("/var/log/brine/master"));
    assert_eq!(c.key_logfile, Path::new("/var/log/brine/key"));
    assert_eq!(c.keep_jobs, 24);
    assert_eq!(c.keep_jobs_duration(), Some(Duration::from_secs(86_400)));
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(c.gather_job_timeout, Duration::from_secs(10));
    assert_eq!(c.loop_interval, Duration::from_secs(60));
    assert_eq!(c.log_level, LogLevel::Warning);
    assert_eq!(c.serial, Serialization::Msgpack);
    assert_eq!(c.max_minions, 0);
    assert_eq!(c.minimum_auth_version, 0, "Salt 3006 minions are served");
    assert_eq!(c.user, "root");
    assert!(c.id.ends_with("_master"), "{}", c.id);
    assert!(c.rotate_aes_key);
    assert_eq!(c.hash_type, "sha256");
    assert_eq!(c.nodegroups, Value::map());
    assert!(c.transport_settings.is_empty());
    assert_eq!(c.conf_file, dir.path().join("master"));
}

#[test]
fn minion_defaults_follow_salt_with_brine_paths() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("minion"), "");
    let Loaded {
        config: c,
        warnings,
    } = MinionConfig::load(dir.path(), Missing::Error).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.master, ["salt"]);
    assert_eq!(c.master_port, 4506);
    assert_eq!(c.id, None);
    assert_eq!(c.pki_dir, Path::new("/etc/brine/pki/minion"));
    assert_eq!(c.cachedir, Path::new("/var/cache/brine/minion"));
    assert_eq!(c.sock_dir, Path::new("/var/run/brine/minion"));
    assert_eq!(c.log_file, Path::new("/var/log/brine/minion"));
    assert_eq!(c.acceptance_wait_time, Duration::from_secs(10));
    assert_eq!(c.acceptance_wait_time_max, Duration::ZERO);
    assert_eq!(c.random_reauth_delay, Duration::from_secs(10));
    assert_eq!(c.auth_timeout, Duration::from_secs(5));
    assert_eq!(c.auth_tries, 7);
    assert_eq!(c.return_retry_tries, 3);
    assert!(!c.rejected_retry && !c.zmq_filtering);
    assert_eq!(c.grains, Value::map());
    assert_eq!(c.recon_default, Duration::from_millis(1000));
    assert_eq!(c.loop_interval, Duration::from_secs(1));
}

#[test]
fn minion_keys_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("minion"),
        "id: 1234\nmaster: [m1.example.com, m2.example.com]\nmaster_port: '14506'\n\
         grains:\n  role: web\n  tags: [a, b]\nacceptance_wait_time: 0.5\ntransport: QUIC\n\
         quic_idle_timeout: 30\n",
    );
    let Loaded {
        config: c,
        warnings,
    } = MinionConfig::load(dir.path(), Missing::Error).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.id.as_deref(), Some("1234"));
    assert_eq!(c.master, ["m1.example.com", "m2.example.com"]);
    assert_eq!(c.master_port, 14506);
    assert_eq!(c.grains.get("role").and_then(Value::as_str), Some("web"));
    assert_eq!(c.acceptance_wait_time, Duration::from_millis(500));
    assert_eq!(c.transport, "quic");
    assert_eq!(
        c.transport_settings,
        [("quic_idle_timeout".to_owned(), "30".to_owned())]
    );
}

#[test]
fn drop_in_files_merge_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("master"),
        "ret_port: 1000\npublish_port: 1001\nexternal_auth:\n  pam:\n    alice: ['.*']\n",
    );
    // sorted: 10-a.conf, 20-b.conf; later wins
    write(
        &d.join("master.d/20-b.conf"),
        "ret_port: 3000\nnodegroups:\n  web: 'G@role:web'\n",
    );
    write(
        &d.join("master.d/10-a.conf"),
        "ret_port: 2000\nworker_threads: 9\nnodegroups:\n  db: 'L@db1,db2'\n\
         external_auth:\n  pam:\n    bob: ['test.*']\n",
    );
    write(&d.join("master.d/ignored.txt"), "ret_port: 9999\n");
    let raw = RawConfig::load(d, Role::Master, Missing::Error).unwrap();
    assert_eq!(
        raw.files(),
        [
            d.join("master"),
            d.join("master.d/10-a.conf"),
            d.join("master.d/20-b.conf")
        ]
    );
    let c = MasterConfig::from_raw(&raw).unwrap().config;
    assert_eq!(c.ret_port, 3000);
    assert_eq!(c.worker_threads, 9);
    assert_eq!(c.publish_port, 1001);
    // among drop-in files nested mappings merge key by key (Salt's
    // dictupdate.update(..., merge_lists=True))
    let groups: Vec<_> = c
        .nodegroups
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(groups, ["db", "web"]);
    // ...but an included mapping replaces the main file's whole key
    // (Salt's plain dict.update of the overrides)
    let pam = c.external_auth.get("pam").unwrap();
    assert!(pam.get("alice").is_none());
    assert!(pam.get("bob").is_some());
    // the option remembers the file it came from
    assert_eq!(
        raw.get("ret_port").unwrap().file,
        d.join("master.d/20-b.conf")
    );
}

#[test]
fn lists_concatenate_across_drop_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("minion"), "master: main-master\n");
    write(&d.join("minion.d/a.conf"), "master: [m1, m2]\n");
    write(&d.join("minion.d/b.conf"), "master: [m2, m3]\n");
    let c = MinionConfig::load(d, Missing::Error).unwrap().config;
    assert_eq!(c.master, ["m1", "m2", "m3"]);
}

#[test]
fn include_directive_and_default_include_override() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("master"),
        "default_include: conf.d/*.yml\ninclude: [extra/one.conf, missing/*.conf]\nret_port: 1\n",
    );
    write(&d.join("conf.d/x.yml"), "ret_port: 2\npublish_port: 7\n");
    write(&d.join("master.d/y.conf"), "publish_port: 99\n");
    write(
        &d.join("extra/one.conf"),
        "ret_port: 3\ninclude: two.conf\n",
    );
    write(&d.join("extra/two.conf"), "worker_threads: 11\n");
    let Loaded {
        config: c,
        warnings,
    } = master(d);
    assert_eq!(c.ret_port, 3);
    assert_eq!(
        c.publish_port, 7,
        "master.d is not read when default_include moves it"
    );
    assert_eq!(c.worker_threads, 11);
    assert_eq!(
        warnings,
        [ConfigWarning::IncludeMatchedNothing {
            pattern: d.join("missing/*.conf"),
            file: d.join("master"),
        }]
    );
}

#[test]
fn include_loop_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("master"), "include: a.conf\n");
    write(&d.join("a.conf"), "include: b.conf\n");
    write(&d.join("b.conf"), "include: a.conf\n");
    let err = MasterConfig::load(d, Missing::Error).unwrap_err();
    assert_eq!(err.key(), Some("include"));
    assert!(err.to_string().contains("include loop"), "{err}");
}

#[test]
fn root_dir_reroots_path_options() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("root");
    write(
        &d.join("master"),
        &format!(
            "root_dir: {}\ncachedir: cache/master\nautosign_file: /etc/brine/autosign.conf\n\
             log_file: udp://localhost:514\npki_dir: {}/pki\n",
            root.display(),
            root.display()
        ),
    );
    let c = master(d).config;
    assert_eq!(c.root_dir, root);
    // relative: under root_dir
    assert_eq!(c.cachedir, root.join("cache/master"));
    // absolute elsewhere, default or not: re-rooted
    assert_eq!(c.sock_dir, root.join("var/run/brine/master"));
    assert_eq!(c.autosign_file, Some(root.join("etc/brine/autosign.conf")));
    assert_eq!(c.key_logfile, root.join("var/log/brine/key"));
    // already under root_dir: kept
    assert_eq!(c.pki_dir, root.join("pki"));
    // URIs are left alone
    assert_eq!(c.log_file, PathBuf::from("udp://localhost:514"));

    let dir2 = tempfile::tempdir().unwrap();
    write(
        &dir2.path().join("minion"),
        &format!("root_dir: {}\n", root.display()),
    );
    let m = MinionConfig::load(dir2.path(), Missing::Error)
        .unwrap()
        .config;
    assert_eq!(m.pki_dir, root.join("etc/brine/pki/minion"));
    assert_eq!(m.log_file, root.join("var/log/brine/minion"));
}

#[test]
fn log_dir_moves_log_file() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("master"), "log_dir: /logs\n");
    assert_eq!(
        master(dir.path()).config.log_file,
        Path::new("/logs/master")
    );
    write(
        &dir.path().join("master"),
        "log_dir: /logs\nlog_file: m.log\n",
    );
    assert_eq!(master(dir.path()).config.log_file, Path::new("/logs/m.log"));
}

#[test]
fn long_sock_dir_moves_under_cachedir() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("master"),
        "cachedir: /c\nsock_dir: /a/rather/long/socket/directory\n",
    );
    assert_eq!(
        master(dir.path()).config.sock_dir,
        Path::new("/c/.brine-unix")
    );
}

#[test]
fn unknown_keys_are_warnings_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("master"),
        "file_roots:\n  base: [/srv/salt]\nret_port: 4506\n",
    );
    write(&d.join("master.d/x.conf"), "fileserver_backend: [roots]\n");
    let Loaded { warnings, .. } = master(d);
    let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            format!(
                "unknown key file_roots in {}; ignored",
                d.join("master").display()
            ),
            format!(
                "unknown key fileserver_backend in {}; ignored",
                d.join("master.d/x.conf").display()
            ),
        ]
    );
}

#[test]
fn wrong_types_name_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("master"), "ret_port: 4506\n");
    write(&d.join("master.d/ports.conf"), "publish_port: [1, 2]\n");
    let err = MasterConfig::load(d, Missing::Error).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("'publish_port'"), "{text}");
    assert!(
        text.contains(&d.join("master.d/ports.conf").display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("an integer is required, found a list"),
        "{text}"
    );

    for (yaml, key) in [
        ("auto_accept: maybe\n", "auto_accept"),
        ("worker_threads: 2.5\n", "worker_threads"),
        ("timeout: forever\n", "timeout"),
        ("nodegroups: 5\n", "nodegroups"),
        ("external_auth: [a]\n", "external_auth"),
        ("interface: not-an-ip\n", "interface"),
        ("serial: json\n", "serial"),
        ("log_level: loud\n", "log_level"),
        ("ret_port: 70000\n", "ret_port"),
        ("ret_port:\n", "ret_port"),
        ("worker_threads: 0\n", "worker_threads"),
        ("hash_type: crc32\n", "hash_type"),
        ("keep_jobs: -1\n", "keep_jobs"),
    ] {
        write(&d.join("master"), yaml);
        fs::remove_dir_all(d.join("master.d")).ok();
        let err = MasterConfig::load(d, Missing::Error).unwrap_err();
        assert_eq!(err.key(), Some(key), "{yaml}: {err}");
        assert!(
            err.to_string()
                .contains(&d.join("master").display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn lenient_scalars_as_salt() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("master"),
        "auto_accept: yes\nopen_mode: off\nret_port: '4510'\ntimeout: 2.5\nlog_level: DEBUG\n\
         hash_type: SHA512\nid: 42\nnodegroups:\n  - web: 'G@role:web'\n  - both: [web1, or, web2]\n",
    );
    let c = master(dir.path()).config;
    assert!(c.auto_accept);
    assert!(!c.open_mode);
    assert_eq!(c.ret_port, 4510);
    assert_eq!(c.timeout, Duration::from_millis(2500));
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.hash_type, "sha512");
    assert_eq!(c.id, "42");
    assert_eq!(
        c.nodegroups,
        [
            ("web", Value::from("G@role:web")),
            (
                "both",
                Value::Array(vec!["web1".into(), "or".into(), "web2".into()])
            ),
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn keep_jobs_follows_salt_deprecation_rule() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("master"), "keep_jobs: 2\n");
    assert_eq!(
        master(dir.path()).config.keep_jobs_duration(),
        Some(Duration::from_secs(7200))
    );
    write(
        &dir.path().join("master"),
        "keep_jobs: 2\nkeep_jobs_seconds: 60\n",
    );
    assert_eq!(
        master(dir.path()).config.keep_jobs_duration(),
        Some(Duration::from_secs(60))
    );
    write(&dir.path().join("master"), "keep_jobs_seconds: 0\n");
    assert_eq!(master(dir.path()).config.keep_jobs_duration(), None);
}

#[test]
fn backend_settings_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("master"),
        "transport: ws\nzmq_filtering: true\nzmq_backlog: 100\ntcp_keepalive: false\n\
         ws_path: /brine\npub_hwm: 5000\nquic_alpn: [a, b]\n",
    );
    let Loaded {
        config: c,
        warnings,
    } = master(dir.path());
    assert!(c.zmq_filtering);
    assert_eq!(
        c.transport_settings,
        [
            ("pub_hwm".to_owned(), "5000".to_owned()),
            ("tcp_keepalive".to_owned(), "false".to_owned()),
            ("ws_path".to_owned(), "/brine".to_owned()),
            ("zmq_backlog".to_owned(), "100".to_owned()),
            ("zmq_filtering".to_owned(), "true".to_owned()),
        ]
    );
    assert_eq!(
        warnings,
        [ConfigWarning::NonScalarSetting {
            key: "quic_alpn".into(),
            file: dir.path().join("master"),
        }]
    );
}

#[test]
fn missing_dir_and_file_follow_the_callers_choice() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nope");
    let err = MasterConfig::load(&gone, Missing::Error).unwrap_err();
    assert!(
        matches!(&err, ConfigError::DirNotFound { dir } if *dir == gone),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");

    let loaded = MasterConfig::load(&gone, Missing::UseDefaults).unwrap();
    assert_eq!(loaded.config.ret_port, 4506);
    assert_eq!(
        loaded.warnings,
        [ConfigWarning::MissingConfig { path: gone.clone() }]
    );

    // directory present, main file missing
    let err = MinionConfig::load(dir.path(), Missing::Error).unwrap_err();
    assert!(matches!(err, ConfigError::FileNotFound { .. }), "{err:?}");
    // the drop-in directory is still read when defaults are allowed (as Salt)
    write(&dir.path().join("minion.d/m.conf"), "master: 10.0.0.1\n");
    let loaded = MinionConfig::load(dir.path(), Missing::UseDefaults).unwrap();
    assert_eq!(loaded.config.master, ["10.0.0.1"]);
    assert_eq!(
        loaded.warnings,
        [ConfigWarning::MissingConfig {
            path: dir.path().join("minion")
        }]
    );

    // a file where the directory should be
    let file = dir.path().join("minion.d/m.conf");
    assert!(matches!(
        MinionConfig::load(&file, Missing::UseDefaults),
        Err(ConfigError::NotADirectory { .. })
    ));
}

#[test]
fn broken_yaml_in_a_drop_in_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("master"), "ret_port: 1\n");
    write(&dir.path().join("master.d/bad.conf"), "a: [\n");
    let err = MasterConfig::load(dir.path(), Missing::Error).unwrap_err();
    assert!(matches!(err, ConfigError::Yaml { .. }), "{err:?}");
    assert!(err.to_string().contains("bad.conf"), "{err}");
}

#[test]
fn command_line_overrides_replace_file_values() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("master"), "log_level: info\n");
    let mut raw = RawConfig::load(dir.path(), Role::Master, Missing::Error).unwrap();
    raw.set("log_level", "debug", "command line");
    let c = MasterConfig::from_raw(&raw).unwrap().config;
    assert_eq!(c.log_level, LogLevel::Debug);
}
