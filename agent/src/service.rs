//! The `MachineService` implementation: each RPC delegates to the module
//! that owns the subject. Authorization already happened in
//! [`crate::auth::AuthLayer`] before any of this runs.
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use matic_boot::Slot;
use matic_proto::v1::machine_service_server::MachineService;
use matic_proto::v1::*;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Peer;
use crate::boots::{self, History};
use crate::config::Config;
use crate::history::LateRecorder;
use crate::init_link::{self, ControlFifo};
use crate::limits::{ADMIN_LOG_STREAMS, Budget, Exhausted, LOG_STREAMS, Permit};
use crate::node_config::{self, NodeConfig};
use crate::{health, install, kmsg, logs, release, root_device, slots, workloads};
use matic_contract::control::Command;
use matic_history::Ending;

/// How long a reboot, shutdown or rollback asked while the boot history
/// still opens (the agent serves before it) waits to record its ending: a
/// hung `MATIC_STATE` must not keep the node from rebooting.
pub const HISTORY_OPEN_WAIT: Duration = Duration::from_secs(5);

/// Name that makes `ServiceRestart` abort the agent (feature `fault-injection`).
pub const FAULT_ABORT: &str = "fault:abort-agent";
/// Name that makes `ServiceRestart` panic in a tokio task after the reply
/// (feature `fault-injection`): the agent must end as it would on abort.
pub const FAULT_PANIC: &str = "fault:panic-task";

/// Shared state of the running agent.
#[derive(Debug, Clone)]
pub struct Agent {
    pub cfg: Arc<Config>,
    /// The disk holding the GPT, when known.
    pub disk: Option<PathBuf>,
    /// The slot this boot runs from, when known.
    pub running: Option<Slot>,
    install_lock: Arc<Mutex<()>>,
    /// One `ImageImport` at a time (its spool is on MATIC_STATE).
    import_lock: Arc<Mutex<()>>,
    /// `Logs` and `Dmesg` streams open at once (shared by both lanes).
    log_streams: Budget,
    /// This boot's history record, once opened (none: the agent runs
    /// without history).
    pub history: LateRecorder,
    /// The machine configuration (none: its directory could not be opened).
    pub node_config: Option<Arc<NodeConfig>>,
    /// The services whose pipes init handed to this agent and whose lines
    /// it stamps into `history`: their `Logs` of the running boot read the
    /// record, the one place their lines are (docs/api.md, "Logs").
    pub stamped: Vec<&'static str>,
    /// The SNTP client (none without a machine configuration).
    pub sntp: Option<Arc<crate::sntp::Sntp>>,
}

impl Agent {
    pub fn new(cfg: Arc<Config>, disk: Option<PathBuf>, running: Option<Slot>) -> Agent {
        Agent {
            cfg,
            disk,
            running,
            install_lock: Arc::new(Mutex::new(())),
            import_lock: Arc::new(Mutex::new(())),
            log_streams: Budget::new("log streams", LOG_STREAMS, ADMIN_LOG_STREAMS),
            history: LateRecorder::ready(None),
            stamped: Vec::new(),
            node_config: None,
            sntp: None,
        }
    }

    /// The agent serving the machine configuration `nc`.
    pub fn with_node_config(mut self, nc: Option<Arc<NodeConfig>>) -> Agent {
        self.node_config = nc;
        self
    }

    /// The agent keeping the clock with `sntp`.
    pub fn with_sntp(mut self, sntp: Option<Arc<crate::sntp::Sntp>>) -> Agent {
        self.sntp = sntp;
        self
    }

    fn node_config(&self) -> Result<&Arc<NodeConfig>, Status> {
        self.node_config.as_ref().ok_or_else(|| {
            Status::unavailable(format!(
                "the machine configuration directory {} could not be opened (see the agent's log)",
                self.cfg.config_dir.display()
            ))
        })
    }

    /// Reboots for the machine configuration (`why`: the field or the
    /// trial), recorded in the boot history like any requested reboot.
    pub async fn reboot_for_config(&self, why: String) {
        let ending = Ending::Reboot {
            by: format!("machine configuration ({why})"),
        };
        if let Err(e) = self.after_reply(Command::Reboot, ending).await {
            eprintln!("matic-agent: config: cannot reboot: {}", e.message());
        }
    }

    /// The agent stamping the lines of `services` into its history.
    pub fn with_stamped(mut self, services: Vec<&'static str>) -> Agent {
        self.stamped = services;
        self
    }

    /// The agent recording into `history`.
    pub fn with_history(mut self, history: LateRecorder) -> Agent {
        self.history = history;
        self
    }

    fn disk(&self) -> Result<PathBuf, Status> {
        self.disk.clone().ok_or_else(|| {
            Status::failed_precondition("no disk known: neither --disk nor disk= in the boot file")
        })
    }

    /// The node's trusted release keys (`--release-keys`).
    fn keys(&self) -> matic_release::trusted::TrustedKeys {
        matic_release::trusted::TrustedKeys::new(&self.cfg.release_keys)
    }

    fn running(&self) -> Result<Slot, Status> {
        self.running.ok_or_else(|| {
            Status::failed_precondition(format!(
                "the running slot is unknown ({} has no slot=A|B)",
                self.cfg.boot_file().display()
            ))
        })
    }

    /// Records how this boot is about to end, fsynced, before init is
    /// asked (a request during the agent's first moments waits for the
    /// history's open, at most [`HISTORY_OPEN_WAIT`]). A history that
    /// cannot be written, or is still opening, is logged: it never stops
    /// the reboot asked for.
    async fn record_ending(&self, ending: Ending) -> Result<(), Status> {
        let history = match tokio::time::timeout(HISTORY_OPEN_WAIT, self.history.get()).await {
            Ok(h) => h,
            Err(_) => {
                eprintln!(
                    "matic-agent: boot history still opening after {} s: this ending ({}) is not recorded",
                    HISTORY_OPEN_WAIT.as_secs(),
                    ending
                );
                None
            }
        };
        if let Some(history) = history
            && let Err(e) = blocking(move || Ok(history.ended(ending))).await?
        {
            eprintln!("matic-agent: {e}");
        }
        Ok(())
    }

    /// Opens init's FIFO now (so a missing init is an error in the reply),
    /// records `ending` in the boot history (fsynced: it must survive what
    /// follows), sends `command` shortly after the reply has gone out.
    async fn after_reply(&self, command: Command<'static>, ending: Ending) -> Result<(), Status> {
        let fifo = ControlFifo::open(&self.cfg.control_fifo())
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.record_ending(ending).await?;
        let delay = Duration::from_millis(self.cfg.power_delay_ms);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            match fifo.send(command) {
                Ok(()) => eprintln!("matic-agent: sent \"{command}\" to init"),
                Err(e) => eprintln!("matic-agent: {e}"),
            }
        });
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker task: {e}")))?
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// `s`, keeping `permit` (its slot in the log-stream budget) until tonic
/// drops the stream: at its end, or when the client goes away.
fn holding<T: 'static>(
    s: impl Stream<Item = Result<T, Status>> + Send + 'static,
    permit: Permit,
) -> BoxStream<T> {
    Box::pin(s.map(move |item| {
        let _ = &permit;
        item
    }))
}

/// Whether the request came over a connection whose certificate has `os:admin`.
fn is_admin<T>(req: &Request<T>) -> bool {
    req.extensions().get::<Peer>().is_some_and(Peer::is_admin)
}

/// Who asked, for the boot history: the client certificate's common name
/// and " over the API".
fn requested_by<T>(req: &Request<T>) -> String {
    let name = req.extensions().get::<Peer>().map_or("", |p| &p.name);
    format!("{name} over the API")
}

/// `VERSION_ID` of the os-release file at `path` (empty when unknown).
pub fn os_version(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_default()
}

#[tonic::async_trait]
impl MachineService for Agent {
    async fn version(
        &self,
        _req: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        let uts = rustix::system::uname();
        let (disk, running, keys) = (self.disk.clone(), self.running, self.keys());
        let (release, root) = blocking(move || {
            // The running slot's manifest: none when the disk or the slot is
            // unknown or the manifest does not verify (BootStatus says why).
            let release = disk.zip(running).and_then(|(disk, s)| {
                let (file, table) = slots::open_table(&disk).ok()?;
                release::read_slot(&file, &disk, s, &table.get(s), &keys).ok()
            });
            let root = root_device::probe(
                std::path::Path::new("/proc/self/mountinfo"),
                std::path::Path::new("/sys"),
                running,
            );
            Ok((release, root))
        })
        .await?;
        Ok(Response::new(VersionResponse {
            os_version: os_version(&self.cfg.os_release),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel: uts.release().to_string_lossy().into_owned(),
            slot: self.running.map(|s| s.to_string()).unwrap_or_default(),
            arch: std::env::consts::ARCH.to_owned(),
            hostname: uts.nodename().to_string_lossy().into_owned(),
            release: release.as_ref().map(release::to_proto),
            root_device: root.source,
            root_verity: root.verity,
        }))
    }

    async fn install(
        &self,
        req: Request<Streaming<InstallRequest>>,
    ) -> Result<Response<InstallResponse>, Status> {
        let ctx = install::InstallCtx {
            disk: self.disk()?,
            running: self.running()?,
            tries: self.cfg.tries,
            keys: self.keys(),
            idle: Duration::from_secs(self.cfg.install_idle_secs),
        };
        // Its own task: if the client vanishes, hyper drops this handler, but
        // the install still sees the broken stream, cleans up and logs why.
        let task = tokio::spawn(install::run(
            self.install_lock.clone(),
            ctx,
            req.into_inner(),
        ));
        let resp = task
            .await
            .map_err(|e| Status::internal(format!("install task: {e}")))??;
        Ok(Response::new(resp))
    }

    async fn reboot(
        &self,
        req: Request<RebootRequest>,
    ) -> Result<Response<RebootResponse>, Status> {
        let by = requested_by(&req);
        self.after_reply(Command::Reboot, Ending::Reboot { by })
            .await?;
        Ok(Response::new(RebootResponse {}))
    }

    async fn shutdown(
        &self,
        req: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        let by = requested_by(&req);
        self.after_reply(Command::Poweroff, Ending::Poweroff { by })
            .await?;
        Ok(Response::new(ShutdownResponse {}))
    }

    async fn rollback(
        &self,
        req: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        let by = requested_by(&req);
        let no_reboot = req.into_inner().no_reboot;
        let (disk, running) = (self.disk()?, self.running()?);
        let target = running.other();
        // Fail before touching the GPT when init is not there to reboot us.
        let fifo = if no_reboot {
            None
        } else {
            Some(
                ControlFifo::open(&self.cfg.control_fifo())
                    .map_err(|e| Status::unavailable(e.to_string()))?,
            )
        };
        blocking(move || slots::rollback(&disk, running).map_err(slots::SlotError::into_status))
            .await?;
        eprintln!(
            "matic-agent: rollback: slot {target} boots next{}",
            if no_reboot { "" } else { "; rebooting" }
        );
        if let Some(fifo) = fifo {
            let by = format!("{by} (rollback to slot {target})");
            self.record_ending(Ending::Reboot { by }).await?;
            let delay = Duration::from_millis(self.cfg.power_delay_ms);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Err(e) = fifo.send(Command::Reboot) {
                    eprintln!("matic-agent: {e}");
                }
            });
        }
        Ok(Response::new(RollbackResponse {
            slot: target.to_string(),
            rebooting: !no_reboot,
        }))
    }

    async fn boot_status(
        &self,
        _req: Request<BootStatusRequest>,
    ) -> Result<Response<BootStatusResponse>, Status> {
        let disk = self.disk()?;
        let (running, keys) = (self.running, self.keys());
        let d = disk.clone();
        let (table, releases) = blocking(move || {
            let (file, table) = slots::open_table(&d).map_err(slots::SlotError::into_status)?;
            let releases =
                Slot::ALL.map(|s| release::read_slot(&file, &d, s, &table.get(s), &keys));
            Ok((table, releases))
        })
        .await?;
        let slots = Slot::ALL
            .iter()
            .zip(releases)
            .map(|(&s, rel)| {
                let a = table.get(s).attrs;
                let (release, release_error) = match rel {
                    Ok(m) => (Some(release::to_proto(&m)), String::new()),
                    Err(e) => (None, e.to_string()),
                };
                SlotStatus {
                    name: s.to_string(),
                    priority: u32::from(a.priority()),
                    tries: u32::from(a.tries()),
                    successful: a.successful(),
                    bootable: a.will_boot(),
                    version: release
                        .as_ref()
                        .map(|r| r.version.clone())
                        .unwrap_or_default(),
                    running: running == Some(s),
                    next_boot: table.next == Some(s),
                    release,
                    release_error,
                }
            })
            .collect();
        Ok(Response::new(BootStatusResponse {
            slots,
            disk: disk.display().to_string(),
        }))
    }

    async fn service_list(
        &self,
        _req: Request<ServiceListRequest>,
    ) -> Result<Response<ServiceListResponse>, Status> {
        let list = init_link::read_services(&self.cfg.services_file())
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let now = init_link::boottime_secs();
        Ok(Response::new(ServiceListResponse {
            services: list.iter().map(|s| s.to_proto(now)).collect(),
        }))
    }

    async fn service_restart(
        &self,
        req: Request<ServiceRestartRequest>,
    ) -> Result<Response<ServiceRestartResponse>, Status> {
        let name = req.into_inner().name;
        #[cfg(feature = "fault-injection")]
        if name == FAULT_ABORT {
            eprintln!("matic-agent: fault injection: aborting after the reply");
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                std::process::abort();
            });
            return Ok(Response::new(ServiceRestartResponse {}));
        }
        #[cfg(feature = "fault-injection")]
        if name == FAULT_PANIC {
            eprintln!("matic-agent: fault injection: a task panics after the reply");
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!("fault injection: {FAULT_PANIC}");
            });
            return Ok(Response::new(ServiceRestartResponse {}));
        }
        logs::validate_name(&name)?;
        let list = init_link::read_services(&self.cfg.services_file())
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if !list.iter().any(|s| s.name == name) {
            let known: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
            return Err(Status::not_found(format!(
                "no service named {name:?} (init supervises: {})",
                known.join(", ")
            )));
        }
        ControlFifo::open(&self.cfg.control_fifo())
            .and_then(|f| f.send(Command::Restart(name.as_bytes())))
            .map_err(|e| Status::unavailable(e.to_string()))?;
        eprintln!("matic-agent: asked init to restart {name}");
        Ok(Response::new(ServiceRestartResponse {}))
    }

    type LogsStream = BoxStream<LogsResponse>;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let admin = is_admin(&req);
        let r = req.into_inner();
        if r.boot != 0 {
            if r.follow {
                return Err(boots::no_follow(r.boot));
            }
            let permit = self
                .log_streams
                .try_acquire(admin)
                .map_err(Exhausted::into_status)?;
            let h = History::from_config(&self.cfg);
            let (boot, service) = (r.boot, r.service);
            let path = blocking(move || h.service_log_path(boot, &service)).await?;
            let s = logs::LogStream::open(path, r.tail_lines, false).await?;
            return Ok(Response::new(holding(s.into_stream(), permit)));
        }
        // The running boot's record (while it still opens, at most
        // HISTORY_OPEN_WAIT): the lines the agent stamps.
        let stamped = self.stamped.contains(&r.service.as_str());
        let recorder = match stamped {
            true => tokio::time::timeout(HISTORY_OPEN_WAIT, self.history.get())
                .await
                .ok()
                .flatten(),
            false => None,
        };
        let path = match recorder {
            Some(rec) => rec
                .store()
                .boot_dir(rec.number())
                .join(matic_history::store::SERVICES)
                .join(format!("{}.log", r.service)),
            _ => logs::log_path(&self.cfg.log_dir, &r.service)?,
        };
        let permit = self
            .log_streams
            .try_acquire(admin)
            .map_err(Exhausted::into_status)?;
        let s = logs::LogStream::open(path, r.tail_lines, r.follow).await?;
        Ok(Response::new(holding(s.into_stream(), permit)))
    }

    type DmesgStream = BoxStream<DmesgResponse>;

    async fn dmesg(
        &self,
        req: Request<DmesgRequest>,
    ) -> Result<Response<Self::DmesgStream>, Status> {
        let admin = is_admin(&req);
        let DmesgRequest { follow, boot } = req.into_inner();
        if boot != 0 && follow {
            return Err(boots::no_follow(boot));
        }
        let permit = self
            .log_streams
            .try_acquire(admin)
            .map_err(Exhausted::into_status)?;
        if boot != 0 {
            let h = History::from_config(&self.cfg);
            let log = blocking(move || h.kernel_log(boot)).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tokio::task::spawn_blocking(move || boots::send_kernel_log(log, &tx));
            let s = tokio_stream::wrappers::ReceiverStream::new(rx);
            return Ok(Response::new(holding(s, permit)));
        }
        let path = self.cfg.kmsg.clone();
        let k = kmsg::KmsgStream::open(&path, follow)
            .map_err(|e| Status::unavailable(format!("opening {}: {e}", path.display())))?;
        let s = futures::stream::unfold(Some(k), move |k| {
            let path = path.clone();
            async move {
                let mut k = k?;
                match k.next_batch().await {
                    Ok(Some(messages)) => Some((Ok(DmesgResponse { messages }), Some(k))),
                    Ok(None) => None,
                    Err(e) => Some((
                        Err(Status::internal(format!("reading {}: {e}", path.display()))),
                        None,
                    )),
                }
            }
        });
        Ok(Response::new(holding(s, permit)))
    }

    async fn health(
        &self,
        _req: Request<HealthRequest>,
    ) -> Result<Response<HealthResponse>, Status> {
        Ok(Response::new(
            health::run(&self.cfg, self.disk.as_deref()).await,
        ))
    }

    async fn boots(&self, req: Request<BootsRequest>) -> Result<Response<BootsResponse>, Status> {
        let (h, limit) = (History::from_config(&self.cfg), req.into_inner().limit);
        Ok(Response::new(blocking(move || h.list(limit)).await?))
    }

    async fn boot_timeline(
        &self,
        req: Request<BootTimelineRequest>,
    ) -> Result<Response<BootTimelineResponse>, Status> {
        let (h, boot) = (History::from_config(&self.cfg), req.into_inner().boot);
        Ok(Response::new(blocking(move || h.timeline(boot)).await?))
    }

    async fn config_apply(
        &self,
        req: Request<ConfigApplyRequest>,
    ) -> Result<Response<ConfigApplyResponse>, Status> {
        let nc = self.node_config()?.clone();
        let req = req.into_inner();
        let try_seconds = req.try_seconds;
        let out = nc.apply(req).await?;
        if let Some(why) = out.reboot.clone() {
            self.reboot_for_config(why).await;
        }
        Ok(Response::new(ConfigApplyResponse {
            generation: out.generation,
            changes: out.changes.iter().map(node_config::to_proto).collect(),
            rebooting: out.reboot.is_some(),
            reboot_reason: out.reboot.unwrap_or_default(),
            restarted: out.restarted,
            try_seconds,
        }))
    }

    async fn config_get(
        &self,
        req: Request<ConfigGetRequest>,
    ) -> Result<Response<ConfigGetResponse>, Status> {
        let admin = is_admin(&req);
        Ok(Response::new(self.node_config()?.get(admin).await?))
    }

    async fn config_history(
        &self,
        _req: Request<ConfigHistoryRequest>,
    ) -> Result<Response<ConfigHistoryResponse>, Status> {
        Ok(Response::new(self.node_config()?.history().await?))
    }

    async fn config_diff(
        &self,
        req: Request<ConfigDiffRequest>,
    ) -> Result<Response<ConfigDiffResponse>, Status> {
        Ok(Response::new(
            self.node_config()?.diff(req.into_inner()).await?,
        ))
    }

    async fn config_confirm(
        &self,
        _req: Request<ConfigConfirmRequest>,
    ) -> Result<Response<ConfigConfirmResponse>, Status> {
        Ok(Response::new(self.node_config()?.confirm().await?))
    }

    async fn config_rollback(
        &self,
        req: Request<ConfigRollbackRequest>,
    ) -> Result<Response<ConfigRollbackResponse>, Status> {
        let out = self.node_config()?.rollback(req.into_inner()).await?;
        if let Some(why) = out.reboot.clone() {
            self.reboot_for_config(why).await;
        }
        Ok(Response::new(ConfigRollbackResponse {
            generation: out.generation,
            changes: out.changes.iter().map(node_config::to_proto).collect(),
            rebooting: out.reboot.is_some(),
            reboot_reason: out.reboot.unwrap_or_default(),
            restarted: out.restarted,
        }))
    }

    async fn time(&self, _req: Request<TimeRequest>) -> Result<Response<TimeResponse>, Status> {
        let sntp = self.sntp.as_ref().ok_or_else(|| {
            Status::unavailable("the clock is not kept: the machine configuration is unavailable")
        })?;
        let st = sntp.status();
        let mut r = TimeResponse {
            servers: st.servers,
            last_attempt_unix: st.last_attempt_unix,
            now_unix: crate::history::facts::wall_ms().map_or(0, |ms| ms / 1000),
            errors: st
                .errors
                .into_iter()
                .map(|(server, error)| TimeServerError { server, error })
                .collect(),
            ..TimeResponse::default()
        };
        if let Some(l) = st.last {
            r.synced = true;
            r.server = l.server;
            r.offset_ns = l.sample.offset_ns;
            r.delay_ns = l.sample.delay_ns;
            r.stratum = u32::from(l.sample.stratum);
            r.action = l.action.as_str().to_owned();
            r.last_sync_unix = l.at_unix;
        }
        Ok(Response::new(r))
    }

    async fn image_list(
        &self,
        _req: Request<ImageListRequest>,
    ) -> Result<Response<ImageListResponse>, Status> {
        let images = workloads::images::list(&self.cfg.containerd_socket).await?;
        Ok(Response::new(ImageListResponse { images }))
    }

    async fn image_import(
        &self,
        req: Request<Streaming<ImageImportRequest>>,
    ) -> Result<Response<ImageImportResponse>, Status> {
        let ctx = workloads::import::ImportCtx {
            socket: self.cfg.containerd_socket.clone(),
            dir: self.cfg.import_dir.clone(),
            idle: Duration::from_secs(self.cfg.install_idle_secs),
        };
        // Its own task, as Install: a vanished client still ends in a
        // removed spool file and a deleted lease.
        let task = tokio::spawn(workloads::import::run(
            self.import_lock.clone(),
            ctx,
            req.into_inner(),
        ));
        let resp = task
            .await
            .map_err(|e| Status::internal(format!("import task: {e}")))??;
        Ok(Response::new(resp))
    }

    async fn container_list(
        &self,
        _req: Request<ContainerListRequest>,
    ) -> Result<Response<ContainerListResponse>, Status> {
        Ok(Response::new(
            workloads::cri::list(&self.cfg.containerd_socket).await?,
        ))
    }

    type ContainerLogsStream = BoxStream<LogsResponse>;

    async fn container_logs(
        &self,
        req: Request<ContainerLogsRequest>,
    ) -> Result<Response<Self::ContainerLogsStream>, Status> {
        let admin = is_admin(&req);
        let r = req.into_inner();
        let path = workloads::cri::log_path(&self.cfg.containerd_socket, &r.container).await?;
        let permit = self
            .log_streams
            .try_acquire(admin)
            .map_err(Exhausted::into_status)?;
        let raw = logs::LogStream::open(path, r.tail_lines, false).await?;
        let mut decoder = workloads::cri_log::Decoder::default();
        // The CRI's records, decoded to the container's own lines; what an
        // unfinished last record holds comes out at the end.
        let lines = raw
            .into_stream()
            .map(Some)
            .chain(futures::stream::iter([None]))
            .map(move |item| match item {
                Some(Ok(chunk)) => Ok(LogsResponse {
                    data: decoder.feed(&chunk.data),
                }),
                Some(Err(e)) => Err(e),
                None => Ok(LogsResponse {
                    data: decoder.finish(),
                }),
            })
            .filter(|r| futures::future::ready(!matches!(r, Ok(l) if l.data.is_empty())));
        Ok(Response::new(holding(lines, permit)))
    }
}
