//! `brine-quickstart`: a master and one local minion in one process, with
//! every file under a local state dir (default `./.brine`), no root needed.
//!
//! First run: writes `<state>/etc/master` and `<state>/etc/minion` (with
//! `root_dir: <state>`, so every path lands inside it), makes the minion's
//! key pair and accepts it, then starts both. Later runs reuse the files.
//! Ctrl-C (or SIGTERM) stops both cleanly.
//!
//! The master serves the REST API, live events and web UI on
//! `127.0.0.1:<--api-port>` (8000) for the user `admin`, whose random
//! password the first run writes to `<state>/etc/api-password` (the file
//! eauth backend reads its SHA-256 from `<state>/etc/api-users`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use brine_master::keys::KeyStore;
use brine_master::{BuiltinTransports, Master, cli};
use brine_minion::Modules;
use brine_minion::daemon::{Minion, MinionState};
use brine_protocol::config::{LogLevel, MasterConfig, MinionConfig, Missing, hostname};
use brine_protocol::keys::{KeyState, MinionPki, write_atomic};
use brine_transport_api::Registry;
use clap::Parser;
use tracing::info;

const PROGRAM: &str = "brine-quickstart";
/// The REST API's users file (file eauth, SHA-256 hashes), under `etc`.
const API_USERS_FILE: &str = "api-users";
/// The admin's password, under `etc` (owner-only).
const API_PASSWORD_FILE: &str = "api-password";

/// Start a Brine master and a local minion under a local state directory.
#[derive(Debug, Parser)]
#[command(
    name = "brine-quickstart",
    version,
    about = "Start a Brine master and one local minion, every file under a local state dir"
)]
struct Args {
    /// The state directory (created if missing).
    #[arg(long = "state-dir", default_value = ".brine")]
    state_dir: PathBuf,
    /// The transport for a new config: zeromq, tcp or quic.
    #[arg(long = "transport", default_value = "zeromq")]
    transport: String,
    /// The publish port for a new config.
    #[arg(long = "publish-port", default_value_t = 4505)]
    publish_port: u16,
    /// The request (return) port for a new config.
    #[arg(long = "ret-port", default_value_t = 4506)]
    ret_port: u16,
    /// The REST API port for a new config (on 127.0.0.1).
    #[arg(long = "api-port", default_value_t = 8000)]
    api_port: u16,
    /// The minion id for a new config (default: the host name).
    #[arg(long = "id")]
    id: Option<String>,
    /// Console log level.
    #[arg(short = 'l', long = "log-level", default_value = "warning")]
    log_level: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => cli::fail(PROGRAM, message, 1),
    }
}

fn run(args: &Args) -> Result<(), String> {
    let level = cli::log_level(Some(&args.log_level), LogLevel::Warning)?;
    cli::init_logging(level, None)?;
    cli::raise_open_files_limit(cli::WANTED_OPEN_FILES);
    std::fs::create_dir_all(&args.state_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.state_dir.display()))?;
    let state = std::fs::canonicalize(&args.state_dir)
        .map_err(|e| format!("cannot resolve {}: {e}", args.state_dir.display()))?;
    let etc = state.join("etc");
    write_configs(args, &state, &etc)?;
    let master_config = MasterConfig::load(&etc, Missing::Error)
        .map_err(|e| e.to_string())?
        .config;
    let minion_config = MinionConfig::load(&etc, Missing::Error)
        .map_err(|e| e.to_string())?
        .config;
    preaccept(&master_config, &minion_config)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the runtime: {e}"))?;
    runtime.block_on(async move {
        let registry = Registry::builtin();
        let master = Master::start(master_config.clone(), &registry)
            .await
            .map_err(|e| format!("the master did not start: {e}"))?;
        let minion = match Minion::start(minion_config, &registry, Modules::builtin()).await {
            Ok(minion) => minion,
            Err(err) => {
                master.shutdown().await;
                return Err(format!("the minion did not start: {err}"));
            }
        };
        let state = tokio::select! {
            state = minion.wait_authenticated() => state,
            () = cli::wait_for_signal() => MinionState::Stopped,
        };
        if state == MinionState::Running {
            let etc_arg = relative_to_cwd(&etc);
            println!(
                "Brine is running: master on {} (publish {}, requests {}), minion {:?}.",
                master_config.transport,
                master.publish_addr(),
                master.ret_addr(),
                minion.id()
            );
            println!("Try:   brine -c {etc_arg} '*' test.ping");
            println!("       brine-key -c {etc_arg} -L");
            if let Some(api) = master.netapi_addr() {
                let password = relative_to_cwd(&etc.join(API_PASSWORD_FILE));
                println!("REST API and web UI: http://{api}/  (user admin, password in {password})");
                println!(
                    "       curl -si http://{api}/login -d username=admin -d password=\"$(cat {password})\" -d eauth=file"
                );
                println!(
                    "       curl -s http://{api}/ -H 'X-Auth-Token: <token>' -d client=local -d tgt='*' -d fun=test.ping"
                );
            }
            println!("Stop with Ctrl-C.");
            info!("quickstart running");
            tokio::select! {
                () = cli::wait_for_signal() => {}
                _ = minion.wait_for(MinionState::is_final) => {}
            }
        }
        let ended = minion.state();
        let _ = minion.shutdown().await;
        master.shutdown().await;
        println!("Brine stopped.");
        match ended {
            MinionState::Failed(reason) => Err(format!("the minion stopped: {reason}")),
            _ => Ok(()),
        }
    })
}

/// Writes the two config files if they are not there yet.
fn write_configs(args: &Args, state: &Path, etc: &Path) -> Result<(), String> {
    std::fs::create_dir_all(etc).map_err(|e| format!("cannot create {}: {e}", etc.display()))?;
    let root = state.display().to_string();
    let root = yaml_quote(&root);
    let transport = yaml_quote(&args.transport);
    let users = etc.join(API_USERS_FILE);
    let password_file = etc.join(API_PASSWORD_FILE);
    if !users.exists() || !password_file.exists() {
        let password = brine_protocol::crypto::gen_nonce()
            .map_err(|e| format!("cannot make a password: {e}"))?;
        write_atomic(&password_file, format!("{password}\n").as_bytes(), 0o600)
            .map_err(|e| format!("cannot write {}: {e}", password_file.display()))?;
        let line = format!(
            "admin:{}\n",
            brine_protocol::crypto::sha256_hex(password.as_bytes())
        );
        write_atomic(&users, line.as_bytes(), 0o600)
            .map_err(|e| format!("cannot write {}: {e}", users.display()))?;
    }
    let users_path = yaml_quote(&users.display().to_string());
    let master = etc.join("master");
    if !master.exists() {
        let text = format!(
            "# Written by brine-quickstart; every path is under root_dir.\n\
             root_dir: {root}\n\
             transport: {transport}\n\
             interface: 127.0.0.1\n\
             publish_port: {}\n\
             ret_port: {}\n\
             pki_dir: /pki/master\n\
             cachedir: /cache/master\n\
             sock_dir: /run/master\n\
             log_file: /log/master\n\
             rest_api:\n\
             \x20 host: 127.0.0.1\n\
             \x20 port: {}\n\
             \x20 disable_ssl: true\n\
             external_auth:\n\
             \x20 file:\n\
             \x20   ^filename: {users_path}\n\
             \x20   ^hashtype: sha256\n\
             \x20   admin: ['.*', '@runner', '@wheel', '@jobs']\n\
             netapi_enable_clients: [local, local_async, local_batch, runner, wheel]\n",
            args.publish_port, args.ret_port, args.api_port
        );
        write_atomic(&master, text.as_bytes(), 0o644)
            .map_err(|e| format!("cannot write {}: {e}", master.display()))?;
    }
    let minion = etc.join("minion");
    if !minion.exists() {
        let id = match &args.id {
            Some(id) => id.clone(),
            None => hostname().ok_or("cannot tell the host name; pass --id")?,
        };
        let text = format!(
            "# Written by brine-quickstart; every path is under root_dir.\n\
             root_dir: {root}\n\
             transport: {transport}\n\
             master: 127.0.0.1\n\
             master_port: {}\n\
             id: {}\n\
             pki_dir: /pki/minion\n\
             cachedir: /cache/minion\n\
             sock_dir: /run/minion\n\
             log_file: /log/minion\n",
            args.ret_port,
            yaml_quote(&id)
        );
        write_atomic(&minion, text.as_bytes(), 0o644)
            .map_err(|e| format!("cannot write {}: {e}", minion.display()))?;
    }
    Ok(())
}

/// Makes the minion's key pair and puts its public key among the
/// master's accepted keys, so the first `test.ping` needs no `brine-key`.
fn preaccept(master: &MasterConfig, minion: &MinionConfig) -> Result<(), String> {
    let id = match &minion.id {
        Some(id) => id.clone(),
        None => hostname().ok_or("the minion config has no id and the host name is unknown")?,
    };
    let keys = MinionPki::new(&minion.pki_dir)
        .load_or_generate_with_bits(minion.keysize)
        .map_err(|e| format!("cannot make the minion key: {e}"))?;
    let store = KeyStore::new(&master.pki_dir);
    let pki = store.pki();
    pki.ensure_layout()
        .map_err(|e| format!("cannot create {}: {e}", master.pki_dir.display()))?;
    let pem = keys
        .public
        .to_pem()
        .map_err(|e| format!("cannot encode the minion key: {e}"))?;
    if pki
        .read_minion_key(KeyState::Accepted, &id)
        .map_err(|e| e.to_string())?
        .as_deref()
        != Some(pem.as_str())
    {
        pki.write_minion_key(KeyState::Accepted, &id, &pem)
            .map_err(|e| format!("cannot accept the minion key: {e}"))?;
    }
    Ok(())
}

fn yaml_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `etc` as the user would type it from here (relative when inside the
/// working directory).
fn relative_to_cwd(path: &Path) -> String {
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| Path::new(".").join(p)))
        .unwrap_or_else(|| path.to_path_buf());
    shown.display().to_string()
}
