//! A small HTTP/1.1 client over tokio for the REST API tests (real
//! sockets on loopback), and config helpers. Shared by
//! `master/tests/netapi.rs` and `minion/tests/netapi.rs`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use brine_protocol::Value;
use brine_protocol::config::{MasterConfig, RestApiConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const WAIT: Duration = Duration::from_secs(30);

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    parse(&raw)
}

/// Parses a complete HTTP/1.1 answer (Content-Length, chunked or
/// close-delimited).
pub fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// A client bound to one API address and, once logged in, one session.
#[derive(Debug, Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Self {
        Api { addr, token: None }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let mut headers = vec![("Accept", "application/json")];
        if let Some(t) = &self.token {
            headers.push(("X-Auth-Token", t.as_str()));
        }
        request(self.addr, "GET", path, &headers, b"").await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        let text = body.to_string();
        self.post(path, "application/json", text.as_bytes()).await
    }

    pub async fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        let mut headers = vec![
            ("Accept", "application/json"),
            ("Content-Type", content_type),
        ];
        if let Some(t) = &self.token {
            headers.push(("X-Auth-Token", t.as_str()));
        }
        request(self.addr, "POST", path, &headers, body).await
    }

    /// Logs in; panics unless 200.
    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> (Api, serde_json::Value) {
        let api = Api::new(addr);
        let reply = api
            .post_json(
                "/login",
                &serde_json::json!({"username": user, "password": password, "eauth": "file"}),
            )
            .await;
        assert_eq!(reply.status, 200, "login {user}: {}", reply.text());
        let json = reply.json();
        let token = json["return"][0]["token"].as_str().unwrap().to_owned();
        (
            Api {
                addr,
                token: Some(token),
            },
            json,
        )
    }

    /// `POST /` with lowstates; returns the reply.
    pub async fn run(&self, lowstates: serde_json::Value) -> Reply {
        self.post_json("/", &lowstates).await
    }
}

/// The users every netapi test logs in with (file eauth, plain text).
pub const USERS: &str = "admin:adminpw\ndev:devpw\nops:opspw\nkeyman:keypw\nnobody:nopw\n";

/// `external_auth` for [`USERS`]: admin may do everything, dev only
/// `test.*` on `web*`-free targets and `grains.items`, ops the `jobs`
/// runners, keyman `key.list_all`, nobody nothing.
pub fn external_auth(users_file: &Path) -> Value {
    let yaml = format!(
        "file:\n  ^filename: {}\n  admin: ['.*', '@runner', '@wheel']\n  dev: ['test.*', 'grains.items']\n  ops: ['@jobs']\n  keyman: [{{'@key': ['list_all']}}]\n",
        users_file.display()
    );
    brine_protocol::load_yaml(&yaml).unwrap()
}

/// `config` with the REST API on loopback port 0 and the users above.
pub fn with_api(mut config: MasterConfig, dir: &Path) -> MasterConfig {
    let users = dir.join("api-users");
    std::fs::write(&users, USERS).unwrap();
    let mut rest = RestApiConfig::new("rest_api");
    rest.host = "127.0.0.1".parse().unwrap();
    rest.port = 0;
    rest.max_request_body_size = 64 * 1024;
    config.rest = Some(rest);
    config.external_auth = external_auth(&users);
    config.netapi_enable_clients = ["local", "local_async", "local_batch", "runner", "wheel"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    config
}
