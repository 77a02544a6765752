//! Tests of the SQLite job cache on real temporary files.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use brine_protocol::Value;

use super::*;

fn load_at(jid: &str, fun: &str, user: &str, start: SystemTime) -> JobLoad {
    let mut load = JobLoad::new(
        jid,
        fun,
        Value::Array(vec![Value::from("echo hi")]),
        "web*",
        "glob",
        user,
        start,
        vec!["m1".into(), "m2".into()],
    );
    load.missing = vec!["m3".into()];
    load
}

fn ret(jid: &str, id: &str, value: Value) -> JobReturn {
    let mut r = JobReturn::new(jid, id, "cmd.run", value.clone());
    r.retcode = Some(0);
    r.success = Some(true);
    r.load = [
        ("cmd", Value::from("_return")),
        ("id", Value::from(id)),
        ("jid", Value::from(jid)),
        ("return", value),
        ("fun_args", Value::Array(vec![Value::from("echo hi")])),
    ]
    .into_iter()
    .collect();
    r
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

#[tokio::test]
async fn loads_and_returns_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let start = SystemTime::now();
    let load = load_at("20260101000000000001", "cmd.run", "root", start);
    let r1 = ret("20260101000000000001", "m1", Value::from("hi"));
    let mut r2 = JobReturn::new(
        "20260101000000000001",
        "m2",
        "cmd.run",
        Value::Bytes(vec![0xff, 0]),
    );
    r2.retcode = Some(1);
    {
        let cache = SqliteJobCache::open(dir.path()).unwrap();
        cache.save_load(&load).await.unwrap();
        assert_eq!(cache.save_return(&r1).await.unwrap(), SaveOutcome::Stored);
        assert_eq!(cache.save_return(&r2).await.unwrap(), SaveOutcome::Stored);
    }
    let cache = SqliteJobCache::open(dir.path()).unwrap();
    let got = cache.get_load(&load.jid).await.unwrap().unwrap();
    // times are stored to the microsecond
    assert_eq!(
        got.start_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
        start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    );
    assert_eq!(
        JobLoad {
            start_time: start,
            ..got
        },
        load
    );
    let returns = cache.get_returns(&load.jid).await.unwrap();
    assert_eq!(returns.len(), 2);
    assert_eq!(returns["m1"], r1);
    assert_eq!(returns["m2"], r2);
    assert!(
        cache
            .get_load("20990101000000000000")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        cache
            .get_returns("20990101000000000000")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn duplicate_returns_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = SqliteJobCache::open(dir.path()).unwrap();
    let jid = "20260101000000000002";
    let first = ret(jid, "m1", Value::from("first"));
    let again = ret(jid, "m1", Value::from("resent"));
    assert_eq!(
        cache.save_return(&first).await.unwrap(),
        SaveOutcome::Stored
    );
    assert_eq!(
        cache.save_return(&first).await.unwrap(),
        SaveOutcome::Duplicate
    );
    assert_eq!(
        cache.save_return(&again).await.unwrap(),
        SaveOutcome::Duplicate
    );
    let returns = cache.get_returns(jid).await.unwrap();
    assert_eq!(returns.len(), 1);
    assert_eq!(returns["m1"].ret, Value::from("first"));
}

#[tokio::test]
async fn prune_removes_old_jobs_and_their_returns() {
    let dir = tempfile::tempdir().unwrap();
    let cache = SqliteJobCache::open(dir.path()).unwrap();
    let old = load_at("20200101000000000001", "test.ping", "root", ago(7200));
    let new = load_at("20200101000000000002", "test.ping", "root", ago(60));
    for load in [&old, &new] {
        cache.save_load(load).await.unwrap();
        cache
            .save_return(&ret(&load.jid, "m1", Value::Bool(true)))
            .await
            .unwrap();
    }
    // a return whose job has no load, stored now: kept by an hour cutoff
    cache
        .save_return(&ret("20200101000000000003", "m1", Value::Nil))
        .await
        .unwrap();
    assert_eq!(cache.prune(ago(3600)).await.unwrap(), 1);
    assert!(cache.get_load(&old.jid).await.unwrap().is_none());
    assert!(cache.get_returns(&old.jid).await.unwrap().is_empty());
    assert!(cache.get_load(&new.jid).await.unwrap().is_some());
    assert_eq!(cache.get_returns(&new.jid).await.unwrap().len(), 1);
    assert_eq!(
        cache
            .get_returns("20200101000000000003")
            .await
            .unwrap()
            .len(),
        1
    );
    // a cutoff in the future takes the rest, orphan returns included
    let future = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(cache.prune(future).await.unwrap(), 2);
    assert!(
        cache
            .get_returns("20200101000000000003")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(cache.prune(future).await.unwrap(), 0);
}

#[tokio::test]
async fn list_jobs_filters_and_orders_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = SqliteJobCache::open(dir.path()).unwrap();
    let jobs = [
        load_at("20200101000000000001", "test.ping", "root", ago(400)),
        load_at("20200101000000000002", "cmd.run", "alice", ago(300)),
        load_at("20200101000000000003", "test.ping", "alice", ago(200)),
        load_at("20200101000000000004", "test.ping", "root", ago(100)),
    ];
    for job in &jobs {
        cache.save_load(job).await.unwrap();
    }
    let jids = |list: Vec<JobLoad>| list.into_iter().map(|j| j.jid).collect::<Vec<_>>();
    let all = jids(cache.list_jobs(&JobFilter::default()).await.unwrap());
    assert_eq!(
        all,
        [
            "20200101000000000004",
            "20200101000000000003",
            "20200101000000000002",
            "20200101000000000001"
        ]
    );
    let filter = JobFilter {
        fun: Some("test.ping".into()),
        ..JobFilter::default()
    };
    assert_eq!(jids(cache.list_jobs(&filter).await.unwrap()).len(), 3);
    let filter = JobFilter {
        fun: Some("test.ping".into()),
        user: Some("alice".into()),
        ..JobFilter::default()
    };
    assert_eq!(
        jids(cache.list_jobs(&filter).await.unwrap()),
        ["20200101000000000003"]
    );
    let filter = JobFilter {
        since: Some(ago(350)),
        until: Some(ago(150)),
        ..JobFilter::default()
    };
    assert_eq!(
        jids(cache.list_jobs(&filter).await.unwrap()),
        ["20200101000000000003", "20200101000000000002"]
    );
    let filter = JobFilter {
        limit: Some(2),
        ..JobFilter::default()
    };
    assert_eq!(
        jids(cache.list_jobs(&filter).await.unwrap()),
        ["20200101000000000004", "20200101000000000003"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let cache: Arc<dyn JobCache> = Arc::new(SqliteJobCache::open(dir.path()).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..16u32 {
        let cache = Arc::clone(&cache);
        tasks.spawn(async move {
            let jid = format!("202001010000000000{writer:02}");
            let load = load_at(&jid, "test.ping", "root", SystemTime::now());
            cache.save_load(&load).await.unwrap();
            for minion in 0..40u32 {
                let r = ret(&jid, &format!("m{minion}"), Value::from(minion));
                assert_eq!(cache.save_return(&r).await.unwrap(), SaveOutcome::Stored);
                // every other return is sent twice, as a spool would
                if minion % 2 == 0 {
                    assert_eq!(cache.save_return(&r).await.unwrap(), SaveOutcome::Duplicate);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let jobs = cache.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len(), 16);
    for job in jobs {
        let returns = cache.get_returns(&job.jid).await.unwrap();
        assert_eq!(returns.len(), 40, "{}", job.jid);
        assert_eq!(returns["m7"].ret, Value::from(7u32));
    }
}

#[tokio::test]
async fn corrupt_file_is_a_typed_error_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOB_CACHE_FILE);
    let garbage = b"this is not a database, but someone's data".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = SqliteJobCache::open(dir.path()).unwrap_err();
    assert!(matches!(err, JobCacheError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[tokio::test]
async fn newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOB_CACHE_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteJobCache::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            JobCacheError::NewerSchema {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("version 99"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[tokio::test]
async fn missing_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteJobCache::open(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, JobCacheError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn full_disk_is_a_typed_error_and_the_cache_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        max_page_count: Some(64),
        ..SqliteOptions::default()
    };
    let cache = SqliteJobCache::open_file(&dir.path().join(JOB_CACHE_FILE), options).unwrap();
    let old = load_at("20200101000000000001", "test.ping", "root", ago(7200));
    cache.save_load(&old).await.unwrap();
    let big = Value::Bytes(vec![7u8; 16 * 1024]);
    let mut full = None;
    for i in 0..100u32 {
        match cache
            .save_return(&ret(&old.jid, &format!("m{i}"), big.clone()))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let err = full.expect("a 64-page database fills up");
    assert!(err.is_disk_full(), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("is full"), "{err}");
    // reads still work, and pruning makes room again
    assert!(cache.get_load(&old.jid).await.unwrap().is_some());
    assert!(cache.prune(ago(3600)).await.unwrap() >= 1);
    cache
        .save_return(&ret("20200101000000000009", "m1", big))
        .await
        .unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn the_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = SqliteJobCache::open(dir.path()).unwrap();
    let mode = std::fs::metadata(cache.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
