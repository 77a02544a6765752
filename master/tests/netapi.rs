//! The REST API against an in-process master on loopback: logins and
//! sessions, every error status, the permission matrix for runner and
//! wheel, keys, hooks, live events (SSE and WebSocket) with a slow client,
//! CORS, YAML, TLS. Jobs on real minions are in `minion/tests/netapi.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netapi_support;
mod support;

use std::time::Duration;

use brine_protocol::PrivateKey;
use brine_protocol::Value;
use brine_protocol::keys::{KeyState, MasterPki};
use brine_transport_api::Event;
use futures_util::{SinkExt, StreamExt};
use netapi_support::{Api, request};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn master(dir: &std::path::Path) -> brine_master::MasterHandle {
    support::init_tracing();
    let config = netapi_support::with_api(support::master_config(dir, "tcp"), dir);
    support::start(&config).await
}

fn pending_key(dir: &std::path::Path, id: &str) {
    let pem = PrivateKey::generate(1024)
        .unwrap()
        .public_key()
        .to_pem()
        .unwrap();
    MasterPki::new(dir.join("pki"))
        .write_minion_key(KeyState::Pending, id, &pem)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sessions_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path()).await;
    let addr = master.netapi_addr().expect("rest_api enabled");
    let anon = Api::new(addr);

    let welcome = anon.get("/").await;
    assert_eq!(welcome.status, 200);
    assert_eq!(welcome.json()["return"], "Welcome");
    assert!(
        welcome.json()["clients"]
            .as_array()
            .unwrap()
            .contains(&json!("local_async"))
    );
    let browser = request(addr, "GET", "/", &[("Accept", "text/html")], b"").await;
    assert!(
        browser
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(anon.get("/static/app.js").await.status == 200);
    let form = anon.get("/login").await;
    assert_eq!(form.json()["return"], "Please log in");
    assert_eq!(form.header("www-authenticate"), Some("Session"));

    // bad credentials, unknown eauth, missing fields
    for body in [
        json!({"username": "admin", "password": "wrong", "eauth": "file"}),
        json!({"username": "admin", "password": "adminpw", "eauth": "pam"}),
        json!({"username": "admin"}),
    ] {
        let reply = anon.post_json("/login", &body).await;
        assert_eq!(reply.status, 401, "{body}: {}", reply.text());
    }

    let (admin, login) = Api::login(addr, "admin", "adminpw").await;
    let item = &login["return"][0];
    let token = admin.token.clone().unwrap();
    assert_eq!(token.len(), 40);
    assert_eq!(item["user"], "admin");
    assert_eq!(item["eauth"], "file");
    assert_eq!(item["perms"], json!([".*", "@runner", "@wheel"]));
    let lifetime = item["expire"].as_f64().unwrap() - item["start"].as_f64().unwrap();
    assert!((lifetime - 43_200.0).abs() < 1.0, "{lifetime}");
    // a user with no entry gets perms {}
    let (_, nobody) = Api::login(addr, "nobody", "nopw").await;
    assert_eq!(nobody["return"][0]["perms"], json!({}));

    // form and YAML logins, headers and cookie
    let reply = anon
        .post(
            "/login",
            "application/x-www-form-urlencoded",
            b"username=dev&password=devpw&eauth=file",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let session = reply.header("x-auth-token").unwrap().to_owned();
    let cookie = reply.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.starts_with(&format!("session_id={session};")),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/"), "{cookie}");
    let reply = anon
        .post(
            "/login",
            "application/x-yaml",
            b"username: ops\npassword: opspw\neauth: file\n",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // the session works from the header and from the cookie; 401 without
    let ping = json!([{"client": "wheel", "fun": "key.list_all"}]);
    assert_eq!(anon.run(ping.clone()).await.status, 401);
    assert_eq!(admin.run(ping.clone()).await.status, 200);
    let cookie_header = format!("session_id={token}");
    let by_cookie = request(
        addr,
        "POST",
        "/",
        &[
            ("Cookie", &cookie_header),
            ("Content-Type", "application/json"),
        ],
        ping.to_string().as_bytes(),
    )
    .await;
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.text());
    let bogus = Api {
        addr,
        token: Some("0".repeat(40)),
    };
    assert_eq!(bogus.run(ping.clone()).await.status, 401);

    let out = admin.post("/logout", "application/json", b"").await;
    assert_eq!(out.status, 200);
    assert_eq!(out.json()["return"], "Your token has been cleared");
    assert_eq!(admin.run(ping.clone()).await.status, 401);
    assert_eq!(
        admin.post("/logout", "application/json", b"").await.status,
        401
    );

    // /token and /run: an eauth token in each lowstate, or credentials
    let reply = anon
        .post_json(
            "/token",
            &json!({"username": "admin", "password": "adminpw", "eauth": "file"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let eauth_token = reply.json()[0]["token"].as_str().unwrap().to_owned();
    assert_eq!(eauth_token.len(), 64);
    let run = anon
        .post_json(
            "/run",
            &json!([{"client": "wheel", "fun": "key.list_all", "token": eauth_token}]),
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.text());
    let run = anon
        .post_json(
            "/run",
            &json!([{"client": "wheel", "fun": "key.list_all", "username": "admin", "password": "adminpw", "eauth": "file"}]),
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.text());
    for chunk in [
        json!({"client": "wheel", "fun": "key.list_all", "token": "not-hex!"}),
        json!({"client": "wheel", "fun": "key.list_all", "token": "ab".repeat(32)}),
        json!({"client": "wheel", "fun": "key.list_all"}),
    ] {
        let run = anon.post_json("/run", &json!([chunk])).await;
        assert_eq!(run.status, 401, "{chunk}: {}", run.text());
    }
    assert_eq!(
        anon.post_json("/token", &json!({"username": "admin"}))
            .await
            .status,
        400
    );
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path()).await;
    let addr = master.netapi_addr().unwrap();
    let (admin, _) = Api::login(addr, "admin", "adminpw").await;
    let token = admin.token.clone().unwrap();
    let auth = [("X-Auth-Token", token.as_str())];

    // 400: bad JSON, not lowstates, invalid and disabled clients, bad syntax
    let bad_json = admin.post("/", "application/json", b"[{\"client\": ").await;
    assert_eq!(bad_json.status, 400);
    assert_eq!(bad_json.json()["status"], 400);
    assert!(
        bad_json.json()["return"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON document")
    );
    let not_list = admin.post("/", "application/json", b"\"test.ping\"").await;
    assert_eq!(not_list.status, 400);
    assert_eq!(not_list.json()["return"], "Lowstates must be a list");
    let empty = admin.post("/", "application/json", b"").await;
    assert_eq!(empty.status, 400);
    let invalid = admin
        .run(json!([{"client": "nope", "fun": "test.ping"}]))
        .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json()["return"], "Invalid client specified: 'nope'");
    let disabled = admin
        .run(json!([{"client": "runner_async", "fun": "jobs.active"}]))
        .await;
    assert_eq!(disabled.status, 400);
    assert_eq!(
        disabled.json()["return"],
        "Client disabled: 'runner_async'. Add to 'netapi_enable_clients' master config option to enable."
    );
    let syntax = admin
        .run(json!([{"client": "runner", "fun": "lookup_jid"}]))
        .await;
    assert_eq!(syntax.status, 400);
    assert_eq!(
        syntax.json()["return"],
        "A command invocation error occurred: Check syntax."
    );
    let unknown = admin
        .run(json!([{"client": "runner", "fun": "jobs.nope"}]))
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    let no_tgt = admin
        .run(json!([{"client": "local", "fun": "test.ping"}]))
        .await;
    assert_eq!(no_tgt.status, 400);

    // 401 without a session, 403 without permission
    assert_eq!(
        Api::new(addr)
            .run(json!([{"client": "local", "tgt": "*", "fun": "test.ping"}]))
            .await
            .status,
        401
    );
    let (dev, _) = Api::login(addr, "dev", "devpw").await;
    let denied = dev
        .run(json!([{"client": "local", "tgt": "*", "fun": "cmd.run", "arg": ["id"]}]))
        .await;
    assert_eq!(denied.status, 403, "{}", denied.text());

    // 404
    assert_eq!(admin.get("/no/such/path").await.status, 404);

    // 406: Accept and Content-Type
    let html = request(addr, "GET", "/login", &[("Accept", "text/plain")], b"").await;
    assert_eq!(html.status, 406);
    let xml = request(
        addr,
        "POST",
        "/",
        &[auth[0], ("Content-Type", "application/xml")],
        b"<lowstate/>",
    )
    .await;
    assert_eq!(xml.status, 406, "{}", xml.text());

    // 413: declared or streamed past max_request_body_size (64 KiB here)
    let big = vec![b' '; 65 * 1024];
    let too_big = admin.post("/", "application/json", &big).await;
    assert_eq!(too_big.status, 413);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Auth-Token: {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..20 {
        let chunk = vec![b' '; 8192];
        let _ = stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = stream.write_all(&chunk).await;
        let _ = stream.write_all(b"\r\n").await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    assert_eq!(netapi_support::parse(&raw).status, 413);

    // 503: the master's event bus is gone (Salt checks its IPC socket too)
    let sock_dir = master.config().sock_dir.clone();
    let moved = sock_dir.with_extension("moved");
    std::fs::rename(&sock_dir, &moved).unwrap();
    let down = admin
        .run(json!([{"client": "wheel", "fun": "key.list_all"}]))
        .await;
    assert_eq!(down.status, 503, "{}", down.text());
    std::fs::rename(&moved, &sock_dir).unwrap();
    assert_eq!(
        admin
            .run(json!([{"client": "wheel", "fun": "key.list_all"}]))
            .await
            .status,
        200
    );

    // YAML out
    let yaml = request(addr, "GET", "/", &[("Accept", "application/x-yaml")], b"").await;
    assert_eq!(yaml.status, 200);
    assert_eq!(yaml.header("content-type"), Some("application/x-yaml"));
    assert!(yaml.text().contains("return: Welcome"), "{}", yaml.text());
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_timeout_is_504() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path()).await;
    let addr = master.netapi_addr().unwrap();
    // an accepted minion that never answers keeps manage.status waiting
    let pem = PrivateKey::generate(1024)
        .unwrap()
        .public_key()
        .to_pem()
        .unwrap();
    MasterPki::new(dir.path().join("pki"))
        .write_minion_key(KeyState::Accepted, "ghost", &pem)
        .unwrap();
    let (admin, _) = Api::login(addr, "admin", "adminpw").await;
    let reply = admin
        .run(json!([{"client": "runner", "fun": "manage.status", "timeout": 0.2}]))
        .await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wheel_keys_and_the_permission_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path()).await;
    let addr = master.netapi_addr().unwrap();
    for id in ["web1", "web2", "db1"] {
        pending_key(dir.path(), id);
    }
    let (admin, _) = Api::login(addr, "admin", "adminpw").await;

    let listed = admin
        .run(json!([{"client": "wheel", "fun": "key.list_all"}]))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let element = &listed.json()["return"][0];
    let jid = element["data"]["jid"].as_str().unwrap();
    assert_eq!(element["tag"], format!("salt/wheel/{jid}"));
    assert_eq!(element["data"]["fun"], "wheel.key.list_all");
    assert_eq!(element["data"]["user"], "admin");
    assert_eq!(element["data"]["success"], true);
    let ret = &element["data"]["return"];
    assert_eq!(ret["minions_pre"], json!(["db1", "web1", "web2"]));
    assert_eq!(ret["minions"], json!([]));
    assert_eq!(ret["local"], json!(["master.pem", "master.pub"]));

    let accepted = admin
        .run(json!([{"client": "wheel", "fun": "key.accept", "match": "web*"}]))
        .await;
    assert_eq!(
        accepted.json()["return"][0]["data"]["return"],
        json!({"minions": ["web1", "web2"]})
    );
    let rejected = admin
        .run(json!([{"client": "wheel", "fun": "key.reject", "kwarg": {"match": "db1"}}]))
        .await;
    assert_eq!(
        rejected.json()["return"][0]["data"]["return"],
        json!({"minions_rejected": ["db1"]})
    );
    let deleted = admin
        .run(json!([{"client": "wheel", "fun": "key.delete", "match": "web2"}]))
        .await;
    assert_eq!(deleted.json()["return"][0]["data"]["return"], json!({}));

    let keys = admin.get("/keys").await;
    assert_eq!(keys.status, 200);
    assert_eq!(keys.json()["return"]["minions"], json!(["web1"]));
    assert_eq!(keys.json()["return"]["minions_rejected"], json!(["db1"]));
    let finger = admin.get("/keys/web1").await;
    let fp = finger.json()["return"]["minions"]["web1"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fp.matches(':').count(), 31, "{fp}");

    // POST /keys: a new accepted key, as a tar
    let gen_body = json!({"mid": "new1", "username": "admin", "password": "adminpw", "eauth": "file", "keysize": 1024});
    let tar = Api::new(addr).post_json("/keys", &gen_body).await;
    assert_eq!(tar.status, 200, "{}", tar.text());
    assert_eq!(tar.header("content-type"), Some("application/x-tar"));
    assert_eq!(
        tar.header("content-disposition"),
        Some("attachment; filename=\"saltkeys-new1.tar\"")
    );
    assert!(tar.text().contains("minion.pem") && tar.text().contains("BEGIN PUBLIC KEY"));
    let again = Api::new(addr).post_json("/keys", &gen_body).await;
    assert_eq!(again.status, 400);
    let wrong = Api::new(addr)
        .post_json(
            "/keys",
            &json!({"mid": "new2", "username": "dev", "password": "devpw", "eauth": "file"}),
        )
        .await;
    assert_eq!(wrong.status, 403);

    // the matrix: (user, lowstate, allowed)
    let (dev, _) = Api::login(addr, "dev", "devpw").await;
    let (ops, _) = Api::login(addr, "ops", "opspw").await;
    let (keyman, _) = Api::login(addr, "keyman", "keypw").await;
    let (nobody, _) = Api::login(addr, "nobody", "nopw").await;
    let list_all = json!({"client": "wheel", "fun": "key.list_all"});
    let accept = json!({"client": "wheel", "fun": "key.accept", "match": "nothing"});
    let jobs = json!({"client": "runner", "fun": "jobs.list_jobs"});
    let manage = json!({"client": "runner", "fun": "manage.present"});
    let cases = [
        (&admin, &list_all, true),
        (&admin, &manage, true),
        (&dev, &list_all, false),
        (&dev, &jobs, false),
        (&ops, &jobs, true),
        (&ops, &manage, false),
        (&ops, &list_all, false),
        (&keyman, &list_all, true),
        (&keyman, &accept, false),
        (&keyman, &jobs, false),
        (&nobody, &jobs, false),
        (&nobody, &list_all, false),
    ];
    for (user, chunk, allowed) in cases {
        let reply = user.run(json!([chunk])).await;
        let expected = if allowed { 200 } else { 403 };
        assert_eq!(reply.status, expected, "{chunk}: {}", reply.text());
    }
    // runner results: the plain return, or the full event with full_return
    let plain = ops.run(json!([jobs])).await.json();
    assert!(plain["return"][0].is_object(), "{plain}");
    let full = ops
        .run(json!([{"client": "runner", "fun": "jobs.list_jobs", "full_return": true}]))
        .await
        .json();
    let event = &full["return"][0];
    assert!(event["tag"].as_str().unwrap().starts_with("salt/run/"));
    assert!(event["tag"].as_str().unwrap().ends_with("/ret"));
    assert_eq!(event["data"]["fun"], "runner.jobs.list_jobs");
    assert_eq!(event["data"]["success"], true);
    assert!(event["data"]["_stamp"].is_string());
    // bad runner arguments come back as the runner's error text
    let bad = ops
        .run(json!([{"client": "runner", "fun": "jobs.lookup_jid", "nope": 1}]))
        .await;
    assert_eq!(bad.status, 200);
    assert!(
        bad.json()["return"][0]
            .as_str()
            .unwrap()
            .contains("unexpected keyword argument")
    );
    master.shutdown().await;
}

/// Reads SSE text from `stream` until `needle` shows up.
async fn read_until(stream: &mut TcpStream, seen: &mut String, needle: &str) {
    let mut buf = vec![0u8; 16 * 1024];
    tokio::time::timeout(netapi_support::WAIT, async {
        while !seen.contains(needle) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended before {needle:?}: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in time: {seen}"));
}

async fn open_sse(addr: std::net::SocketAddr, query: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /events{query} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "retry: 400\n").await;
    (stream, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_over_sse_and_websocket_and_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path()).await;
    let addr = master.netapi_addr().unwrap();
    let (admin, _) = Api::login(addr, "admin", "adminpw").await;
    let token = admin.token.clone().unwrap();

    let refused = request(addr, "GET", "/events", &[], b"").await;
    assert_eq!(refused.status, 401);
    let refused = request(addr, "GET", "/events?token=feed", &[], b"").await;
    assert_eq!(refused.status, 401);

    let (mut sse, mut seen) = open_sse(addr, &format!("?token={token}")).await;
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/{token}"))
        .await
        .unwrap();
    let (mut ws_tx, mut ws_rx) = ws.split();
    ws_tx
        .send(tokio_tungstenite::tungstenite::Message::Text(
            "websocket client ready".into(),
        ))
        .await
        .unwrap();

    // a hook fires salt/netapi/hook/<path> with the body
    let hook = admin
        .post_json("/hook/deploy/web", &json!({"ref": "main"}))
        .await;
    assert_eq!(hook.status, 200, "{}", hook.text());
    assert_eq!(hook.json(), json!({"success": true}));
    assert_eq!(
        Api::new(addr).post_json("/hook/x", &json!({})).await.status,
        401
    );

    read_until(&mut sse, &mut seen, "tag: salt/netapi/hook/deploy/web\n").await;
    let block = seen
        .split("\n\n")
        .find(|b| b.contains("tag: salt/netapi/hook/deploy/web"))
        .unwrap();
    let data_line = block
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let data: serde_json::Value = serde_json::from_str(data_line).unwrap();
    assert_eq!(data["tag"], "salt/netapi/hook/deploy/web");
    assert_eq!(data["data"]["post"], json!({"ref": "main"}));
    assert_eq!(data["data"]["body"], r#"{"ref":"main"}"#);
    assert!(data["data"]["_stamp"].is_string());
    assert!(data["data"]["headers"]["content-type"].is_string());

    let message = tokio::time::timeout(netapi_support::WAIT, async {
        loop {
            let msg = ws_rx.next().await.unwrap().unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                if v["tag"] == "salt/netapi/hook/deploy/web" {
                    return v;
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(message["data"]["post"], json!({"ref": "main"}));

    // a WebSocket without a login is refused
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .is_err()
    );
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_event_client_is_dropped_and_never_delays_others() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path()).await;
    let addr = master.netapi_addr().unwrap();
    let (admin, _) = Api::login(addr, "admin", "adminpw").await;
    let token = admin.token.clone().unwrap();
    // the slow client connects and then never reads
    let (_slow, _) = open_sse(addr, &format!("?token={token}")).await;
    let (mut fast, mut seen) = open_sse(addr, &format!("?token={token}")).await;
    let bus = master.event_bus();
    let payload = Value::from("x".repeat(16 * 1024));
    let mut dropped = false;
    for batch in 0..200 {
        for i in 0..200 {
            let data: Value = [("n", Value::from(i)), ("blob", payload.clone())]
                .into_iter()
                .collect();
            bus.fire(Event::new(
                format!("test/flood/{batch}/{i}"),
                data.to_event_bytes().unwrap(),
            ))
            .unwrap();
        }
        // the fast client gets every event of the batch
        read_until(
            &mut fast,
            &mut seen,
            &format!("tag: test/flood/{batch}/199\n"),
        )
        .await;
        seen.clear();
        let stats = admin.get("/stats").await.json();
        if stats["event_clients_dropped"].as_u64().unwrap() >= 1 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the slow client was never dropped");
    // the fast one still streams
    bus.fire(Event::new(
        "test/after",
        Value::map().to_event_bytes().unwrap(),
    ))
    .unwrap();
    read_until(&mut fast, &mut seen, "tag: test/after\n").await;
    master.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_when_cors_origin_is_set() {
    let dir = tempfile::tempdir().unwrap();
    support::init_tracing();
    let mut config =
        netapi_support::with_api(support::master_config(dir.path(), "tcp"), dir.path());
    if let Some(rest) = config.rest.as_mut() {
        rest.cors_origin = vec!["https://ui.example".to_owned()];
    }
    let master = support::start(&config).await;
    let addr = master.netapi_addr().unwrap();
    let preflight = request(
        addr,
        "OPTIONS",
        "/",
        &[
            ("Origin", "https://ui.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 200);
    assert!(preflight.body.is_empty());
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://ui.example")
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("Content-Type, X-Auth-Token, X-Requested-With")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("1400"));
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    let simple = request(addr, "GET", "/", &[("Origin", "https://ui.example")], b"").await;
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("https://ui.example")
    );
    assert_eq!(
        simple.header("access-control-expose-headers"),
        Some("GET, POST")
    );
    let other = request(addr, "GET", "/", &[("Origin", "https://evil.example")], b"").await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    master.shutdown().await;

    // without cors_origin: no CORS headers
    let dir = tempfile::tempdir().unwrap();
    let master = master_default(dir.path()).await;
    let addr = master.netapi_addr().unwrap();
    let plain = request(addr, "GET", "/", &[("Origin", "https://ui.example")], b"").await;
    assert_eq!(plain.header("access-control-allow-origin"), None);
    master.shutdown().await;
}

async fn master_default(dir: &std::path::Path) -> brine_master::MasterHandle {
    master(dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_ssl_crt_and_ssl_key() {
    let dir = tempfile::tempdir().unwrap();
    support::init_tracing();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let crt = dir.path().join("api.crt");
    let key = dir.path().join("api.key");
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let mut config =
        netapi_support::with_api(support::master_config(dir.path(), "tcp"), dir.path());
    if let Some(rest) = config.rest.as_mut() {
        rest.ssl_crt = Some(crt.clone());
        rest.ssl_key = Some(key);
    }
    let master = support::start(&config).await;
    let addr = master.netapi_addr().unwrap();
    let output = tokio::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&crt)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
        .arg(format!("https://localhost:{}/", addr.port()))
        .output()
        .await
        .expect("curl runs");
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(
        body.contains("\"Welcome\""),
        "{body} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // plain HTTP on the TLS port gets no answer
    let plain = TcpStream::connect(addr).await;
    assert!(plain.is_ok());
    master.shutdown().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}
