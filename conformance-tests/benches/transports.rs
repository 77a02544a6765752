//! Transport benchmark: every built-in backend against a raw tokio loopback
//! TCP reference measured in the same run, plus the ZeroMQ backend against
//! libzmq (pyzmq peers from the project's venv, when it exists).
//!
//! `cargo bench -p brine-conformance-tests --bench transports [-- --quick] [-- --only tcp]`
//! Prints a Markdown table and writes it to `results/transport-bench.md`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use brine_transport_api::{
    Audience, ClientOptions, PublishClient, Received, Registry, RequestClient, ServerOptions,
    TlsOptions, Transport, handler_fn,
};
use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy)]
struct Plan {
    rtt_samples: usize,
    throughput_requests: usize,
    in_flight: usize,
    subscribers: usize,
    fanout_rounds: usize,
}

#[derive(Default, Clone)]
struct Row {
    name: String,
    p50_us: f64,
    p99_us: f64,
    req_per_s: f64,
    fanout_ms: f64,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let plan = if quick {
        Plan {
            rtt_samples: 500,
            throughput_requests: 5_000,
            in_flight: 64,
            subscribers: 200,
            fanout_rounds: 5,
        }
    } else {
        Plan {
            rtt_samples: 5_000,
            throughput_requests: 50_000,
            in_flight: 64,
            subscribers: 1_000,
            fanout_rounds: 10,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(plan, only))
}

async fn run(plan: Plan, only: Option<String>) -> Result<(), BoxError> {
    let mut registry = Registry::new();
    brine_transport_tcp::register(&mut registry)?;
    brine_transport_quic::register(&mut registry)?;
    brine_transport_zeromq::register(&mut registry)?;
    let pki = tempfile::tempdir()?;

    let raw = bench_raw_tcp(plan).await?;
    eprintln!("raw tcp: {:.1} us p50", raw.p50_us);
    let mut rows = vec![raw.clone()];
    for name in ["tcp", "quic", "zeromq"] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let transport = registry.get(name)?;
        let row = bench_transport(&transport, plan, pki.path()).await?;
        eprintln!("{name}: {:.1} us p50", row.p50_us);
        rows.push(row);
    }
    let libzmq = if only.as_deref().is_none_or(|o| o == "zeromq") {
        bench_libzmq(&registry, plan).await.unwrap_or_else(|err| {
            eprintln!("libzmq comparison skipped: {err}");
            Vec::new()
        })
    } else {
        Vec::new()
    };

    let table = render(&rows, &raw, &libzmq, plan);
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("transport-bench.md"), &table)?;
    Ok(())
}

fn render(rows: &[Row], raw: &Row, libzmq: &[(String, f64, f64)], plan: Plan) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "| transport | RTT p50 (µs) | RTT p99 (µs) | p50 / raw | req/s ({} in flight) | raw / req/s | fan-out 1 KiB → {} subs (ms) | fan-out / raw |\n",
        plan.in_flight, plan.subscribers
    ));
    t.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        t.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.2}x | {:.0} | {:.2}x | {:.2} | {:.2}x |\n",
            r.name,
            r.p50_us,
            r.p99_us,
            r.p50_us / raw.p50_us,
            r.req_per_s,
            raw.req_per_s / r.req_per_s,
            r.fanout_ms,
            r.fanout_ms / raw.fanout_ms,
        ));
    }
    if !libzmq.is_empty() {
        t.push_str("\n| ZeroMQ pairing (REQ/DEALER client → ROUTER server) | RTT p50 (µs) | RTT p99 (µs) |\n| --- | ---: | ---: |\n");
        for (name, p50, p99) in libzmq {
            t.push_str(&format!("| {name} | {p50:.1} | {p99:.1} |\n"));
        }
    }
    t
}

fn server_options(transport: &dyn Transport, pki: &Path) -> ServerOptions {
    let mut opts = ServerOptions::new(loopback());
    opts.limits.queue_depth = 4096;
    if transport.capabilities().tls_always {
        opts.tls = Some(TlsOptions {
            pki_dir: Some(pki.join("server")),
            ..TlsOptions::default()
        });
    }
    opts
}

fn client_options(
    transport: &dyn Transport,
    to: SocketAddr,
    id: &str,
    pki: &Path,
) -> ClientOptions {
    let mut opts = ClientOptions::new(to, id);
    opts.limits.queue_depth = 4096;
    if transport.capabilities().tls_always {
        opts.tls = Some(TlsOptions {
            ca: Some(pki.join("server").join("quic.crt")),
            ..TlsOptions::default()
        });
    }
    opts
}

async fn bench_transport(
    transport: &Arc<dyn Transport>,
    plan: Plan,
    pki: &Path,
) -> Result<Row, BoxError> {
    std::fs::create_dir_all(pki.join("server"))?;
    let server = transport
        .bind_requests(
            server_options(transport.as_ref(), pki),
            handler_fn(|frame, _| async move { frame }),
        )
        .await?;
    let client: Arc<dyn RequestClient> = Arc::from(
        transport
            .connect_requests(client_options(
                transport.as_ref(),
                server.local_addr(),
                "bench",
                pki,
            ))
            .await?,
    );
    let frame = Bytes::from(vec![b'x'; 100]);
    let timeout = Duration::from_secs(10);
    // The first requests may wait for the connection to come up.
    for _ in 0..200 {
        client.request(frame.clone(), timeout).await?;
    }
    let mut samples = Vec::with_capacity(plan.rtt_samples);
    for _ in 0..plan.rtt_samples {
        let start = Instant::now();
        client.request(frame.clone(), timeout).await?;
        samples.push(start.elapsed());
    }
    samples.sort();
    let req_per_s = {
        let (client, frame) = (client.clone(), frame.clone());
        throughput(plan, move |_| {
            let client = client.clone();
            let frame = frame.clone();
            async move {
                client
                    .request(frame, timeout)
                    .await
                    .map(drop)
                    .map_err(BoxError::from)
            }
        })
        .await?
    };
    client.close().await?;
    server.close().await?;

    eprintln!("{}: fan-out", transport.name());
    let fanout_ms = fanout(transport, plan, pki).await?;
    Ok(Row {
        name: transport.name().to_owned(),
        p50_us: percentile(&samples, 0.5),
        p99_us: percentile(&samples, 0.99),
        req_per_s,
        fanout_ms,
    })
}

/// Requests per second with `plan.in_flight` workers sharing the work.
async fn throughput<F, Fut>(plan: Plan, one: F) -> Result<f64, BoxError>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send,
{
    let per_worker = plan.throughput_requests / plan.in_flight;
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..plan.in_flight {
        let one = one.clone();
        workers.spawn(async move {
            for _ in 0..per_worker {
                one(w).await?;
            }
            Ok::<_, BoxError>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok((per_worker * plan.in_flight) as f64 / start.elapsed().as_secs_f64())
}

/// Median time from one publish of a 1 KiB frame until every subscriber has it.
async fn fanout(transport: &Arc<dyn Transport>, plan: Plan, pki: &Path) -> Result<f64, BoxError> {
    let publisher = transport
        .bind_publisher(server_options(transport.as_ref(), pki))
        .await?;
    let (tx, mut rx) = mpsc::channel::<(usize, u8)>(plan.subscribers * 4);
    let mut subscribers: Vec<Arc<dyn PublishClient>> = Vec::new();
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..plan.subscribers {
        let sub: Arc<dyn PublishClient> = Arc::from(
            transport
                .subscribe(client_options(
                    transport.as_ref(),
                    publisher.local_addr(),
                    &format!("m{i}"),
                    pki,
                ))
                .await?,
        );
        subscribers.push(sub.clone());
        let tx = tx.clone();
        readers.spawn(async move {
            while let Ok(received) = sub.recv().await {
                let marker = match received {
                    Received::Frame(frame) => frame.first().copied().unwrap_or(0),
                    Received::Connected => 255,
                    Received::Disconnected { .. } => continue,
                };
                if tx.send((i, marker)).await.is_err() {
                    return;
                }
            }
        });
    }
    let mut connected = 0;
    while connected < plan.subscribers {
        let (_, m) = rx.recv().await.ok_or("subscribers ended")?;
        if m == 255 {
            connected += 1;
        }
    }
    // Warm up until every subscriber has seen a frame (PUB/SUB slow joiners).
    let mut warm = vec![false; plan.subscribers];
    let mut warmed = 0;
    while warmed < plan.subscribers {
        publisher
            .publish(Bytes::from(vec![0u8; 1024]), &Audience::All)
            .await?;
        let deadline = tokio::time::sleep(Duration::from_millis(100));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                got = rx.recv() => {
                    let (i, m) = got.ok_or("subscribers ended")?;
                    if m == 0 && !warm[i] { warm[i] = true; warmed += 1; }
                    if warmed == plan.subscribers { break; }
                }
                _ = &mut deadline => break,
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    while rx.try_recv().is_ok() {}
    let mut rounds = Vec::new();
    for round in 1..=plan.fanout_rounds {
        let marker = round as u8;
        let start = Instant::now();
        publisher
            .publish(Bytes::from(vec![marker; 1024]), &Audience::All)
            .await?;
        let mut seen = 0;
        while seen < plan.subscribers {
            let (_, m) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await?
                .ok_or("subscribers ended")?;
            if m == marker {
                seen += 1;
            }
        }
        rounds.push(start.elapsed());
    }
    rounds.sort();
    for sub in &subscribers {
        sub.close().await?;
    }
    readers.abort_all();
    publisher.close().await?;
    Ok(percentile(&rounds, 0.5) / 1000.0)
}

async fn bench_raw_tcp(plan: Plan) -> Result<Row, BoxError> {
    let listener = TcpListener::bind(loopback()).await?;
    let addr = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let mut len = [0u8; 4];
                    if stream.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let n = u32::from_be_bytes(len) as usize;
                    buf.resize(n, 0);
                    if stream.read_exact(&mut buf[..n]).await.is_err()
                        || stream.write_all(&len).await.is_err()
                        || stream.write_all(&buf[..n]).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    async fn round_trip(stream: &mut TcpStream, frame: &[u8]) -> Result<(), BoxError> {
        let mut msg = (frame.len() as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(frame);
        stream.write_all(&msg).await?;
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).await?;
        Ok(())
    }
    let frame = vec![b'x'; 100];
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    for _ in 0..200 {
        round_trip(&mut stream, &frame).await?;
    }
    let mut samples = Vec::new();
    for _ in 0..plan.rtt_samples {
        let start = Instant::now();
        round_trip(&mut stream, &frame).await?;
        samples.push(start.elapsed());
    }
    samples.sort();
    let mut streams = Vec::new();
    for _ in 0..plan.in_flight {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        streams.push(Arc::new(tokio::sync::Mutex::new(s)));
    }
    let streams = Arc::new(streams);
    let req_per_s = throughput(plan, move |w| {
        let streams = streams.clone();
        async move {
            let mut s = streams[w].lock().await;
            round_trip(&mut s, &[b'x'; 100]).await
        }
    })
    .await?;
    echo.abort();
    eprintln!("raw tcp: fan-out");
    let fanout_ms = raw_fanout(plan).await?;
    Ok(Row {
        name: "raw tokio TCP (reference)".to_owned(),
        p50_us: percentile(&samples, 0.5),
        p99_us: percentile(&samples, 0.99),
        req_per_s,
        fanout_ms,
    })
}

async fn raw_fanout(plan: Plan) -> Result<f64, BoxError> {
    let listener = TcpListener::bind(loopback()).await?;
    let addr = listener.local_addr()?;
    let subscribers = plan.subscribers;
    let accepting = tokio::spawn(async move {
        let mut accepted = Vec::with_capacity(subscribers);
        while accepted.len() < subscribers {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            accepted.push(s);
        }
        Ok::<_, std::io::Error>(accepted)
    });
    let (tx, mut rx) = mpsc::channel::<u8>(plan.subscribers * 2);
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..plan.subscribers {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let tx = tx.clone();
        readers.spawn(async move {
            let mut buf = vec![0u8; 1028];
            while s.read_exact(&mut buf).await.is_ok() {
                if tx.send(buf[4]).await.is_err() {
                    return;
                }
            }
        });
    }
    let mut queues = Vec::new();
    let mut writers = tokio::task::JoinSet::new();
    for mut s in accepting.await?? {
        let (qtx, mut qrx) = mpsc::channel::<Bytes>(1024);
        queues.push(qtx);
        writers.spawn(async move {
            while let Some(frame) = qrx.recv().await {
                if s.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
    }
    let mut rounds = Vec::new();
    for round in 1..=plan.fanout_rounds {
        let mut frame = 1024u32.to_be_bytes().to_vec();
        frame.extend(std::iter::repeat_n(round as u8, 1024));
        let frame = Bytes::from(frame);
        let start = Instant::now();
        for q in &queues {
            q.try_send(frame.clone())?;
        }
        for _ in 0..plan.subscribers {
            rx.recv().await.ok_or("raw readers ended")?;
        }
        rounds.push(start.elapsed());
    }
    rounds.sort();
    readers.abort_all();
    writers.abort_all();
    Ok(percentile(&rounds, 0.5) / 1000.0)
}

fn venv_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var_os("BRINE_VENV").map_or_else(|| root.join(".venv"), PathBuf::from);
    let python = venv.join("bin/python");
    python.exists().then_some(python)
}

/// Brine's ZeroMQ ends against libzmq's: each pairing's request round trip.
async fn bench_libzmq(
    registry: &Registry,
    plan: Plan,
) -> Result<Vec<(String, f64, f64)>, BoxError> {
    let python = venv_python().ok_or("no venv (run scripts/salt-venv.sh)")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/zmq_peer.py");
    let zmq = registry.get("zeromq")?;
    let mut rows = Vec::new();

    // Brine DEALER client -> libzmq ROUTER.
    let mut router = Command::new(&python)
        .arg(&script)
        .arg("router")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut port = String::new();
    {
        use std::io::BufRead;
        let stdout = router.stdout.take().ok_or("no stdout")?;
        std::io::BufReader::new(stdout).read_line(&mut port)?;
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", port.trim()).parse()?;
    let client = zmq
        .connect_requests(ClientOptions::new(addr, "bench"))
        .await?;
    let frame = Bytes::from(vec![b'x'; 100]);
    for _ in 0..200 {
        client
            .request(frame.clone(), Duration::from_secs(10))
            .await?;
    }
    let mut samples = Vec::new();
    for _ in 0..plan.rtt_samples {
        let start = Instant::now();
        client
            .request(frame.clone(), Duration::from_secs(10))
            .await?;
        samples.push(start.elapsed());
    }
    samples.sort();
    rows.push((
        "Brine zeromq client → libzmq ROUTER (python echo)".to_owned(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    ));
    client.close().await?;

    // libzmq REQ client -> libzmq ROUTER, then -> Brine ROUTER.
    let (p50, p99) =
        python_rtt(&python, &script, format!("tcp://{addr}"), plan.rtt_samples).await?;
    rows.push((
        "libzmq REQ → libzmq ROUTER (python both ends)".to_owned(),
        p50,
        p99,
    ));
    let _ = router.kill();
    let _ = router.wait();

    let server = zmq
        .bind_requests(
            ServerOptions::new(loopback()),
            handler_fn(|frame, _| async move { frame }),
        )
        .await?;
    let uri = format!("tcp://{}", server.local_addr());
    let (p50, p99) = python_rtt(&python, &script, uri, plan.rtt_samples).await?;
    rows.push((
        "libzmq REQ (python) → Brine zeromq ROUTER".to_owned(),
        p50,
        p99,
    ));
    server.close().await?;
    Ok(rows)
}

/// Runs the pyzmq REQ client against `uri`; its (p50, p99) in µs.
async fn python_rtt(
    python: &Path,
    script: &Path,
    uri: String,
    samples: usize,
) -> Result<(f64, f64), BoxError> {
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg("client")
        .arg(uri)
        .arg(samples.to_string())
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace().map(str::parse::<f64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Ok((a, b)),
        _ => Err(format!("python client printed {text:?}").into()),
    }
}
