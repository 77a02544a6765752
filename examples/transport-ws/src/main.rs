//! `brine-transport-ws-example [--transport NAME]`: builds its own registry
//! with the WebSocket transport in it, picks a transport by name (default
//! `ws`), and does one request round trip and one publish over loopback.

use std::{error::Error, process::ExitCode, time::Duration};

use brine_transport_api::{
    Audience, ClientOptions, Received, Registry, ServerOptions, Transport, handler_fn,
};
use bytes::Bytes;

const USAGE: &str = "usage: brine-transport-ws-example [--transport NAME]";

fn transport_arg() -> Result<Option<String>, String> {
    let mut args = std::env::args().skip(1);
    let mut name = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--transport" | "-t" => {
                name = Some(args.next().ok_or("--transport needs a name")?);
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => match other.strip_prefix("--transport=") {
                Some(value) => name = Some(value.to_owned()),
                None => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            },
        }
    }
    Ok(name)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let name = match transport_arg() {
        Ok(name) => name.unwrap_or_else(|| brine_transport_ws_example::NAME.to_owned()),
        Err(why) => {
            eprintln!("{why}");
            return ExitCode::from(2);
        }
    };
    match run(&name).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(name: &str) -> Result<(), Box<dyn Error>> {
    // A downstream crate starts from the built-ins and adds its own transport;
    // the same registry then goes to the master and minion libraries.
    let mut registry: Registry = brine_master::builtin_registry();
    brine_transport_ws_example::register(&mut registry)?;
    let transport = registry.get(name)?;
    println!(
        "transport {:?} picked from a registry of [{}]",
        transport.name(),
        registry.names().collect::<Vec<_>>().join(", ")
    );
    round_trip(&*transport).await?;
    publish_once(&*transport).await?;
    Ok(())
}

async fn round_trip(transport: &dyn Transport) -> Result<(), Box<dyn Error>> {
    let server = transport
        .bind_requests(
            ServerOptions::new(([127, 0, 0, 1], 0).into()),
            handler_fn(|frame: Bytes, _| async move {
                let mut reply = b"pong: ".to_vec();
                reply.extend_from_slice(&frame);
                Bytes::from(reply)
            }),
        )
        .await?;
    let client = transport
        .connect_requests(ClientOptions::new(server.local_addr(), "minion-1"))
        .await?;
    let reply = client
        .request(Bytes::from_static(b"ping"), Duration::from_secs(10))
        .await?;
    println!(
        "request server on {}: sent \"ping\", got {:?}",
        server.local_addr(),
        String::from_utf8_lossy(&reply)
    );
    client.close().await?;
    server.close().await?;
    Ok(())
}

async fn publish_once(transport: &dyn Transport) -> Result<(), Box<dyn Error>> {
    let server = transport
        .bind_publisher(ServerOptions::new(([127, 0, 0, 1], 0).into()))
        .await?;
    let sub = transport
        .subscribe(ClientOptions::new(server.local_addr(), "minion-1"))
        .await?;
    let frame = Bytes::from_static(b"hello, minions");
    // Publish until the subscriber has it: PUB/SUB transports may drop
    // frames sent just after a subscriber connects.
    for _ in 0..50 {
        server.publish(frame.clone(), &Audience::All).await?;
        let got = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                match sub.recv().await? {
                    Received::Frame(got) => return Ok::<_, Box<dyn Error>>(got),
                    Received::Connected | Received::Disconnected { .. } => {}
                }
            }
        })
        .await;
        if let Ok(got) = got {
            println!(
                "publisher on {}: published {:?}, subscriber minion-1 received {:?}",
                server.local_addr(),
                String::from_utf8_lossy(&frame),
                String::from_utf8_lossy(&got?)
            );
            sub.close().await?;
            server.close().await?;
            return Ok(());
        }
    }
    Err("the subscriber received nothing within 10 s".into())
}
