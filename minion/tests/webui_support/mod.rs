//! A tiny W3C WebDriver client for the web UI test: HTTP/1.1 and JSON over
//! `std::net::TcpStream` to a `chromedriver` this module starts, driving a
//! headless Debian `chromium` with a fresh profile. Blocking: call it from
//! `spawn_blocking`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a wait for the page may take.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often an element command is retried when the page re-rendered it.
const STALE_RETRIES: usize = 5;

/// The browser and its driver.
#[derive(Debug, Clone)]
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// `BRINE_CHROMIUM` / `BRINE_CHROMEDRIVER`, else `/usr/bin/chromium` and
/// `/usr/bin/chromedriver` (Debian's `chromium` and `chromium-driver`).
pub fn find_tools() -> Result<Tools, String> {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = pick("BRINE_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = pick("BRINE_CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<String> = [&chromium, &chromedriver]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(Tools {
            chromium,
            chromedriver,
        })
    } else {
        Err(format!("not found: {}", missing.join(", ")))
    }
}

/// The tools, or `None` (with a note) when they are missing outside CI.
/// Under `CI` a missing browser is a failure, not a skip.
pub fn tools_or_skip() -> Option<Tools> {
    match find_tools() {
        Ok(tools) => Some(tools),
        Err(why) if std::env::var_os("CI").is_some() => panic!(
            "the web UI browser test needs chromium and chromedriver ({why}); \
             install them with `apt-get install -y chromium chromium-driver` \
             (scripts/test.sh does this when it runs as root or with sudo)"
        ),
        Err(why) => {
            eprintln!(
                "note: skipping the web UI browser test, chromium/chromedriver missing ({why}); \
                 `apt-get install chromium chromium-driver` to run it"
            );
            None
        }
    }
}

/// Where the test's artifacts go: `target/webui/`.
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("webui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The chromedriver process, killed when dropped (also when a start-up
/// step panics).
#[derive(Debug)]
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless chromium session through its own chromedriver; both end
/// when this is dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Driver,
    port: u16,
    session: String,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session with
    /// a fresh profile and a `width`×`height` window.
    pub fn start(tools: &Tools, width: u32, height: u32) -> Browser {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port for chromedriver");
        let log = artifacts_dir().join("chromedriver.log");
        let mut driver = Driver(
            Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", tools.chromedriver.display())),
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok((200, body)) = http(port, "GET", "/status", None)
                && serde_json::from_str::<Value>(&body).is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            if let Ok(Some(status)) = driver.0.try_wait() {
                panic!("chromedriver exited with {status}; see {}", log.display());
            }
            if Instant::now() > deadline {
                panic!("chromedriver not ready on port {port} after {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("a profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": tools.chromium, "args": args},
        }}});
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            profile,
        };
        let created = browser.command("POST", "/session", Some(caps));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; panics with the driver's error message.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"))
    }

    /// One WebDriver command; the driver's error as `"<error>: <message>"`.
    fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let text = body.map(|b| b.to_string());
        let (status, reply) =
            http(self.port, method, path, text.as_deref()).map_err(|e| e.to_string())?;
        let json: Value =
            serde_json::from_str(&reply).map_err(|e| format!("not JSON ({e}): {reply}"))?;
        if status != 200 {
            return Err(format!(
                "{status} {}: {}",
                json["value"]["error"], json["value"]["message"]
            ));
        }
        Ok(json["value"].clone())
    }

    /// Finds `css` and runs one element command on it; when the page
    /// re-rendered that element in between (a live list refreshing), finds
    /// it again rather than failing on the stale reference.
    fn on_element(&self, css: &str, action: &str, body: Value) {
        let mut last = String::new();
        for _ in 0..STALE_RETRIES {
            let id = self.find(css);
            let path = self.session_path(&format!("/element/{id}/{action}"));
            match self.try_command("POST", &path, Some(body.clone())) {
                Ok(_) => return,
                Err(e) if e.contains("stale element reference") => last = e,
                Err(e) => panic!("chromedriver {action} on {css}: {e}"),
            }
        }
        panic!("chromedriver {action} on {css}: still stale after {STALE_RETRIES} tries: {last}");
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.command(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        );
    }

    /// The element `css` selects (the first), waiting for it to exist.
    pub fn find(&self, css: &str) -> String {
        self.wait_for(
            &format!("an element {css}"),
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        );
        let found = self.command(
            "POST",
            &self.session_path("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for {css}: {found}"))
            .to_owned()
    }

    /// Clicks the element `css` selects, as a user would.
    pub fn click(&self, css: &str) {
        self.on_element(css, "click", json!({}));
    }

    /// Types `text` into the element `css` selects (after clearing it).
    pub fn fill(&self, css: &str, text: &str) {
        self.on_element(css, "clear", json!({}));
        self.on_element(css, "value", json!({"text": text}));
    }

    /// Runs `body` (a function body; its arguments are `arguments[..]`) in
    /// the page and gives what it returns.
    pub fn script(&self, body: &str, args: Value) -> Value {
        self.command(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": body, "args": args})),
        )
    }

    /// Polls `body` until it returns something other than `false`, `null`
    /// or `0` and gives that; on timeout saves `failure.png` and panics
    /// naming `what` and what the page shows.
    pub fn wait_for(&self, what: &str, body: &str, args: Value) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.script(body, args.clone());
            if !matches!(value, Value::Null | Value::Bool(false)) && value != json!(0) {
                return value;
            }
            if Instant::now() > deadline {
                let shot = artifacts_dir().join("failure.png");
                self.screenshot(&shot);
                let page = self.script(
                    "return document.body ? document.body.innerText.slice(0, 3000) : ''",
                    json!([]),
                );
                panic!(
                    "timed out after {PATIENCE:?} waiting for {what}; screenshot {}; the page shows:\n{}",
                    shot.display(),
                    page.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text of the element `css` selects.
    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        let value = self.command(
            "GET",
            &self.session_path(&format!("/element/{id}/text")),
            None,
        );
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let value = self.command("GET", &self.session_path("/screenshot"), None);
        let png = base64_decode(value.as_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("the screenshot is not base64"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        // then `driver` drops: chromedriver is killed
    }
}

/// One HTTP/1.1 request to chromedriver (`Connection: close`); the status
/// and the body.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    // chromedriver keeps the connection open: read the headers, then
    // exactly the body they announce
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(bad("closed before the end of the headers"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let length: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let mut body = raw.split_off(split + 4);
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let complete = match length {
            Some(len) => body.len() >= len,
            None if chunked => dechunk(&body).is_some(),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let chunk = data.get(eol + 2..eol + 2 + size)?;
        out.extend_from_slice(chunk);
        data = data.get(eol + 4 + size..)?;
    }
}

/// Standard base64 (with or without padding), as WebDriver screenshots are.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGVsbG8hIQ").unwrap(), b"hello!!");
    assert!(base64_decode("a*b").is_none());
}
