//! The agent process, wired together: raise the descriptor limit and drop
//! capabilities (before any thread exists), parse flags, load the PKI,
//! serve the API over mutual TLS on two lanes (see [`main`]), configure the
//! network, record this boot in the boot history (docs/history.md; opened
//! beside the TLS set-up, and only waited for once the API serves), and
//! mark the boot successful once serving and healthy. Logs go to stderr,
//! which init captures.
//!
//! It lives in the library, not in `main.rs`, so the test images' agent
//! (`matic-agent-fault-injection`, feature `fault-injection`) is the same
//! process under another binary name: built beside the release one in the
//! same target directory, it shares every compiled dependency and never
//! overwrites `matic-agent`. It owns the order of start-up, nothing the
//! modules it calls own.
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::node_config::NodeConfig;
use crate::service::Agent;
use crate::{
    auth, caps, health, history, hostname, init_link, limits, net, service, slots, sntp, tls,
};
use clap::Parser;
use matic_boot::Slot;
use matic_contract::control::Command;
use matic_proto::v1::machine_service_server::MachineServiceServer;
use tokio::runtime::Handle;
use tonic::transport::server::Router;
use tower::layer::util::{Identity, Stack};

/// HTTP/2 windows: large, so an image stream is not throttled by round trips.
const STREAM_WINDOW: u32 = 16 << 20;
const CONNECTION_WINDOW: u32 = 32 << 20;
/// Largest HTTP/2 frame we accept: fewer frames per image chunk.
const MAX_FRAME: u32 = 1 << 20;

/// Two runtimes: the main one serves readers and operators, the TLS
/// handshakes and the network; the admin lane (its own worker thread and
/// blocking pool) serves connections whose certificate has `os:admin` and
/// marks the boot successful, so no number of readers can make either wait
/// behind them (docs/api.md, "Limits under load").
pub fn main() {
    // The timeline's `agent-main`: what exec, the dynamic loader and Rust's
    // start-up cost comes before it; the agent's own start after.
    let main_ms = history::facts::boottime_ms();
    abort_on_panic();
    // First, while descriptors 3 on are still the ones init handed over.
    let handed = history::service_logs::take_handed();
    // Then our own lines: on to init as before, and stamped for the record
    // (only when init handed the pipes over: it started us, there is a
    // record to write them to). The pipe now, its thread after the
    // capabilities are dropped.
    let cfg = Config::parse();
    let own_log = if handed.is_empty() {
        None
    } else {
        match history::own_log::capture() {
            Ok(own) => Some(own),
            Err(e) => {
                eprintln!("matic-agent: own log lines stay out of the record: {e}");
                None
            }
        }
    };
    // Before any thread exists: capability sets are per thread.
    match limits::raise_nofile() {
        Ok(n) if n < limits::DESCRIPTORS_NEEDED => eprintln!(
            "matic-agent: descriptor limit {n}, below the {} the caps can use: expect EMFILE under load",
            limits::DESCRIPTORS_NEEDED
        ),
        Ok(n) => eprintln!("matic-agent: descriptor limit {n}"),
        Err(e) => eprintln!("matic-agent: raising the descriptor limit: {e}"),
    }
    let dropped = caps::drop_all_but(caps::needed(&cfg));
    eprintln!(
        "matic-agent: capabilities kept: {}{}",
        caps::names(dropped.kept),
        if dropped.notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", dropped.notes.join("; "))
        }
    );
    let mut own_log = own_log.and_then(|own| match own.start() {
        Ok(own) => Some(own),
        Err(e) => {
            eprintln!("matic-agent: own log lines stay out of the record: {e}");
            None
        }
    });
    let own_lines = own_log.as_mut().and_then(|own| own.take_lines());
    let own_log: history::own_log::Shared = Arc::new(std::sync::Mutex::new(own_log));
    let built = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(limits::SHARED_BLOCKING_THREADS)
        .on_thread_start(limits::lower_priority)
        .build()
        .and_then(|rt| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(limits::ADMIN_BLOCKING_THREADS)
                .thread_name("matic-admin")
                .enable_all()
                .build()
                .map(|admin| (rt, admin))
        });
    let (rt, admin) = match built {
        Ok(r) => r,
        Err(e) => {
            eprintln!("matic-agent: starting the runtime: {e}");
            history::own_log::finish_shared(&own_log);
            std::process::exit(1);
        }
    };
    let result = rt.block_on(run(
        cfg,
        main_ms,
        admin.handle().clone(),
        handed,
        own_lines,
        own_log.clone(),
    ));
    admin.shutdown_background();
    // What is still in our pipe on to init before we exit (run finished
    // it already unless it returned early).
    history::own_log::finish_shared(&own_log);
    if let Err(e) = result {
        eprintln!("matic-agent: {e}");
        std::process::exit(1);
    }
}

/// A panic anywhere in the agent, a tokio task's or a helper thread's too,
/// ends the process with SIGABRT once the message is out, and init
/// restarts it (docs/api.md, docs/init.md): a half-dead agent whose
/// panicked task held a lock or left a state half written would answer
/// wrongly for good.
/// Release builds get this from `panic = "abort"`; the hook makes it the
/// program's own rule, so the agent the tests start behaves the same
/// whatever their build's panic strategy (scripts/test builds the test
/// tree unwinding: one dependency build for test harnesses and binaries).
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}

/// The API server, configured the same for both lanes.
fn router(agent: Agent) -> Router<Stack<auth::AuthLayer, Identity>> {
    tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(limits::STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(auth::AuthLayer)
        .add_service(MachineServiceServer::new(agent))
}

async fn run(
    cfg: Config,
    main_ms: u64,
    admin: Handle,
    handed: Vec<(&'static str, std::os::fd::OwnedFd)>,
    own_lines: Option<std::sync::mpsc::Receiver<history::own_log::Line>>,
    own_log: history::own_log::Shared,
) -> Result<(), Box<dyn std::error::Error>> {
    tls::install_provider();
    let cfg = Arc::new(cfg);
    let boot = match init_link::read_boot(&cfg.boot_file()) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("matic-agent: {e}; running slot unknown");
            None
        }
    };
    let disk = cfg.disk.clone().or(boot.as_ref().map(|b| b.disk.clone()));
    let running = boot.map(|b| b.slot);
    // The history's start (crash dumps, the previous boot's ending, fsyncs)
    // runs beside the TLS set-up and the bind, off the runtime's threads.
    let opening = {
        let cfg = cfg.clone();
        let slot = running.map(|s| s.to_string()).unwrap_or_default();
        let os = service::os_version(&cfg.os_release);
        tokio::task::spawn_blocking(move || history::open(&cfg, slot, os))
    };
    let tls_config = Arc::new(tls::server_config(&cfg.pki_dir)?);
    let tls_ms = history::facts::boottime_ms();
    // The machine configuration before the network: once applied, its
    // hostname wins over the command line's, DHCP's and the MAC's.
    if let Some(f) = &cfg.hostname_file {
        hostname::write_to_file(f.clone());
    }
    let node_config = match NodeConfig::open(&cfg) {
        Ok(nc) => Some(Arc::new(nc)),
        Err(e) => {
            eprintln!("matic-agent: config: {e}; the configuration RPCs are unavailable");
            None
        }
    };
    let start_reboot = match &node_config {
        Some(nc) => nc.start().await,
        None => None,
    };
    // Networking first: a --listen address may only exist once it is configured.
    if !cfg.no_network {
        let cmdline = cfg.cmdline.clone();
        let (resolver, interfaces, requests) = match &node_config {
            Some(nc) => {
                let interfaces = nc.interfaces().await;
                // Attached before anything can apply a generation: a live
                // change queues until the task has configured the start.
                let requests = nc.net_control().attach(interfaces.clone());
                (nc.resolver(), interfaces, requests)
            }
            None => (
                Arc::new(crate::resolv::Resolver::new(cfg.resolv_file())),
                Default::default(),
                None,
            ),
        };
        tokio::spawn(async move {
            if let Err(e) = net::run(&cmdline, resolver, &interfaces, requests).await {
                eprintln!("matic-agent: network: {e}");
            }
        });
    }

    // The listener, the accept loop and the handshakes live on the admin
    // lane: a fresh admin connection never queues behind readers' calls
    // (and the shared lane runs at a lower priority).
    let listen_addr = cfg.listen;
    let listener = admin.spawn(bind(listen_addr)).await??;
    let local = listener.local_addr()?;
    // Serve before the history's open is over: the API answers while it
    // settles earlier boots (docs/history.md); a reboot asked meanwhile
    // waits for it to record its ending.
    let (opened, late) = history::LateRecorder::pending();
    let sntp = node_config.as_ref().map(|nc| {
        let clock = match &cfg.clock_file {
            Some(f) => sntp::Clock::File(f.clone()),
            None => sntp::Clock::System,
        };
        let s = Arc::new(sntp::Sntp::new(cfg.ntp_port, clock));
        tokio::spawn(s.clone().run(nc.ntp_servers()));
        s
    });
    let mut stamped: Vec<&'static str> = handed.iter().map(|(name, _)| *name).collect();
    if own_lines.is_some() {
        stamped.push(history::own_log::NAME);
    }
    let agent = Agent::new(cfg.clone(), disk.clone(), running)
        .with_history(late)
        .with_stamped(stamped)
        .with_node_config(node_config.clone())
        .with_sntp(sntp);
    if let Some(nc) = node_config {
        let a = agent.clone();
        let reboot: crate::node_config::Reboot = Arc::new(move |why| {
            let a = a.clone();
            Box::pin(async move { a.reboot_for_config(why).await })
        });
        tokio::spawn(nc.run_timer(reboot));
    }
    let config_agent = agent.clone();
    let incoming = {
        let _lane = admin.enter();
        tls::incoming(listener, tls_config)
    };
    let admin_server = router(agent.clone()).serve_with_incoming(incoming.admin);
    admin.spawn(async move {
        if let Err(e) = admin_server.await {
            eprintln!("matic-agent: admin lane: {e}");
        }
    });
    let server = tokio::spawn(
        router(agent).serve_with_incoming_shutdown(incoming.shared, shutdown_signal()),
    );
    // The pod sandbox image, once containerd answers (its own task).
    tokio::spawn(crate::workloads::pause::ensure(
        cfg.containerd_socket.clone(),
        cfg.pause_archive.clone(),
    ));
    // The timeline's `agent-listening`: bound, TLS loaded, both lanes
    // serving.
    let listening_ms = history::facts::boottime_ms();
    tell_init_listening(&cfg);
    eprintln!(
        "matic-agent {} listening on {} (disk {:?}, running slot {:?})",
        env!("CARGO_PKG_VERSION"),
        local,
        disk,
        running
    );

    let history_opened = opening.await.ok().flatten();
    let resumed = history_opened.as_ref().is_some_and(|o| o.resumed);
    let (recorder, copier) = start_history(&cfg, history_opened);
    opened.send(recorder.clone());
    if let Some(rec) = recorder.clone() {
        tokio::task::spawn_blocking(move || {
            rec.mark("agent-main", main_ms);
            rec.mark("agent-tls-loaded", tls_ms);
            rec.mark("agent-listening", listening_ms);
        });
    }
    let service_logs = {
        let (cfg, rec) = (cfg.clone(), recorder.clone());
        tokio::task::spawn_blocking(move || {
            start_service_logs(&cfg, rec, resumed, handed, own_lines)
        })
        .await
        .ok()
        .flatten()
    };
    if let Some(why) = start_reboot {
        config_agent.reboot_for_config(why).await;
    }

    if !cfg.no_boot_ok {
        // On the admin lane: its GPT write uses that lane's blocking pool.
        admin.spawn(mark_boot_successful(cfg.clone(), disk, running, recorder));
    }
    let served = server.await;
    if let Some(reader) = service_logs {
        // Our own last lines ("SIGTERM, stopping"...) out of the pipe and
        // into the queue, then the services' last lines and that queue,
        // before the record is closed. What we print after this goes to
        // init's log only.
        let _ = tokio::task::spawn_blocking(move || {
            history::own_log::finish_shared(&own_log);
            reader.stop();
        })
        .await;
    }
    if let Some(copier) = copier {
        // Init's shutdown lines (logged before it stopped us) into the log.
        let _ = tokio::task::spawn_blocking(move || copier.stop()).await;
    }
    served??;
    eprintln!("matic-agent: stopped");
    Ok(())
}

/// Tells init the API serves (`listening` on its control FIFO): init
/// holds containerd until then, so that its start does not compete with
/// ours (docs/init.md, "Held until the agent listens"). Without init (a
/// development run, no FIFO) there is nothing to release: one line, no
/// retry; init starts containerd at its own time limit anyway.
fn tell_init_listening(cfg: &Config) {
    if let Err(e) = init_link::send_command(&cfg.control_fifo(), Command::Listening) {
        eprintln!("matic-agent: telling init it listens: {e}");
    }
}

/// The running boot's recorder and its kernel log copier, when the
/// history opened. A restarted agent's copy resumes after the last line
/// the boot's `kmsg.log` holds.
fn start_history(
    cfg: &Config,
    opened: Option<history::Opened>,
) -> (
    Option<history::Recorder>,
    Option<history::kmsg_copy::Copier>,
) {
    let Some(opened) = opened else {
        return (None, None);
    };
    let rec = opened.recorder;
    let after_us = opened.resumed.then(|| {
        let log = rec
            .store()
            .boot_dir(rec.number())
            .join(matic_history::store::KMSG);
        history::kmsg_copy::last_stamp_us(&log).unwrap_or(0)
    });
    eprintln!(
        "matic-agent: boot history: recording boot {}{}",
        rec.number(),
        if opened.resumed { " (resumed)" } else { "" }
    );
    match history::kmsg_copy::Copier::spawn(cfg.kmsg.clone(), rec.clone(), after_us) {
        Ok(copier) => (Some(rec), Some(copier)),
        Err(e) => {
            eprintln!(
                "matic-agent: boot history: no kernel log copy ({}): {e}",
                cfg.kmsg.display()
            );
            (Some(rec), None)
        }
    }
}

/// The reader of the services' pipes init handed over (none handed: the
/// agent was not started by init), into the record when there is one
/// (after moving in what init kept raw while no agent read them), else
/// into the raw files. Runs file I/O: call off the runtime's threads.
fn start_service_logs(
    cfg: &Config,
    rec: Option<history::Recorder>,
    resumed: bool,
    handed: Vec<(&'static str, std::os::fd::OwnedFd)>,
    own_lines: Option<std::sync::mpsc::Receiver<history::own_log::Line>>,
) -> Option<history::service_logs::Reader> {
    use history::raw_lines::move_raw;
    use history::service_logs::{Reader, Sink};
    if handed.is_empty() {
        eprintln!("matic-agent: no service log pipes handed over (not started by init)");
        return None;
    }
    let names: Vec<&str> = handed.iter().map(|(n, _)| *n).collect();
    let sink = match rec {
        Some(rec) => {
            match move_raw(&rec, &cfg.log_dir, resumed) {
                Ok(m) if m.lines > 0 => eprintln!(
                    "matic-agent: service logs: {} lines init kept while no agent read them moved into boot {}",
                    m.lines, m.boot
                ),
                Ok(_) => {}
                Err(e) => eprintln!("matic-agent: service logs: moving init's raw lines: {e}"),
            }
            Sink::Record(rec)
        }
        None => Sink::Files(cfg.log_dir.clone()),
    };
    // Our own lines only into a record: init writes the raw file itself.
    let own_lines = own_lines.filter(|_| matches!(sink, Sink::Record(_)));
    match Reader::spawn(handed, sink, own_lines) {
        Ok(reader) => {
            eprintln!(
                "matic-agent: service logs: stamping {} (pipes handed by init)",
                names.join(", ")
            );
            Some(reader)
        }
        Err(e) => {
            // The descriptors are gone with the closure: init reads the
            // pipes again only once this agent exits, so say it loudly.
            eprintln!("matic-agent: service logs: cannot start the reader: {e}");
            None
        }
    }
}

/// `name` on the timeline now, off the runtime's threads.
async fn mark_now(rec: &Option<history::Recorder>, name: &'static str) {
    if let Some(rec) = rec.clone() {
        let at_ms = history::facts::boottime_ms();
        let _ = tokio::task::spawn_blocking(move || rec.mark(name, at_ms)).await;
    }
}

/// Connections the kernel completes before the agent accepts them. tokio's
/// default (128) overflows under a burst of connections, and an
/// overflow drops the SYN: the client retries only after a second.
const LISTEN_BACKLOG: u32 = 1024;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let s = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(LISTEN_BACKLOG)
}

/// Binds the API socket, waiting up to 30 s for an address that is not yet
/// configured (lo coming up, a static address, a DHCP lease).
async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match listen(addr) {
            Ok(l) => return Ok(l),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrNotAvailable
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // A kernel without IPv6: serve IPv4 on the same port instead.
            Err(e)
                if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED
                    && e.kind() != std::io::ErrorKind::AddrInUse =>
            {
                let v4 = std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port()));
                eprintln!("matic-agent: cannot listen on {addr} ({e}); trying {v4}");
                return listen(v4).map_err(|e| format!("listening on {v4}: {e}"));
            }
            Err(e) => return Err(format!("listening on {addr}: {e}")),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => eprintln!("matic-agent: SIGTERM, stopping"),
        _ = int.recv() => eprintln!("matic-agent: SIGINT, stopping"),
    }
}

/// Once serving and healthy: set the running slot's successful bit, then
/// tell init `boot-ok`. Retries until both are done.
async fn mark_boot_successful(
    cfg: Arc<Config>,
    disk: Option<std::path::PathBuf>,
    running: Option<Slot>,
    history: Option<history::Recorder>,
) {
    let (Some(disk), Some(slot)) = (disk, running) else {
        eprintln!("matic-agent: not marking the boot successful: disk or running slot unknown");
        return;
    };
    let mut last_problem = String::new();
    let mut report = |p: String| {
        if p != last_problem {
            eprintln!("matic-agent: boot not yet marked successful: {p}");
            last_problem = p;
        }
    };
    let (mut gpt_done, mut was_healthy) = (false, false);
    loop {
        let h = health::run(&cfg, Some(&disk)).await;
        if h.healthy && !was_healthy {
            was_healthy = true;
            mark_now(&history, "healthy").await;
        }
        if !h.healthy {
            let failing: Vec<String> = h
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            report(format!("unhealthy ({})", failing.join("; ")));
        } else if !gpt_done {
            let d = disk.clone();
            match tokio::task::spawn_blocking(move || slots::mark_successful(&d, slot)).await {
                Ok(Ok(())) => {
                    eprintln!("matic-agent: slot {slot} marked successful");
                    gpt_done = true;
                    if let Some(rec) = history.clone() {
                        let at_ms = history::facts::boottime_ms();
                        let event = matic_history::Event::Successful { at_ms };
                        let _ = tokio::task::spawn_blocking(move || {
                            rec.mark("marked-successful", at_ms);
                            if let Err(e) = rec.event(&event) {
                                eprintln!("matic-agent: {e}");
                            }
                        })
                        .await;
                    }
                    continue;
                }
                Ok(Err(e)) => report(e.to_string()),
                Err(e) => report(e.to_string()),
            }
        } else {
            match init_link::send_command(&cfg.control_fifo(), Command::BootOk) {
                Ok(()) => {
                    eprintln!("matic-agent: told init boot-ok");
                    return;
                }
                Err(e) => report(e.to_string()),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
