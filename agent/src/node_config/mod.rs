//! The machine configuration on the node (docs/config.md): checking and
//! applying documents as generations ([`matic_config::generations`] under
//! `--config-dir`), the live appliers ([`appliers`]), and the trial timer
//! that reverts an unconfirmed generation ([`matic_config::trial`], its
//! state in `<config-dir>/trial`, so an agent restart or a reboot cannot
//! lose it).
//!
//! Every change runs under one lock and in this order: check, decide
//! (mode, reboot), apply live, store the generation, write the trial. A
//! refused document, or one whose live part fails, changes nothing.
//!
//! Must never: apply from a document that did not pass the checks, reboot
//! the node itself (it returns the reason; the caller asks init), or hand
//! the bootstrap token to a caller without `os:admin`.

pub mod appliers;
pub mod containerd;
pub mod files;
pub mod kubelet;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use matic_config::diff::{self, Change};
use matic_config::generations::{Generation, Meta, Origin, Store, StoreError};
use matic_config::trial::{Step, Trial};
use matic_config::{Config, atomic};
use matic_proto::v1::*;
use tokio::sync::{Mutex, Notify};
use tonic::Status;

use crate::history::facts;

/// The trial's state file in the config directory.
pub const TRIAL_FILE: &str = "trial";
/// The generations' subdirectory.
pub const GENERATIONS_DIR: &str = "generations";

/// How the caller reboots the node (through init, recording why).
pub type Reboot = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The result of a change.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub generation: u64,
    pub changes: Vec<Change>,
    /// Why the node must reboot now; None: it need not.
    pub reboot: Option<String>,
    /// The services init was asked to restart for what changed.
    pub restarted: Vec<String>,
}

/// The node's machine configuration.
#[derive(Debug)]
pub struct NodeConfig {
    store: Store,
    trial_path: PathBuf,
    targets: appliers::Targets,
    /// init's control FIFO (`restart SERVICE`).
    control_fifo: PathBuf,
    /// This boot's id ("" when unknown: then every start is the same boot).
    boot_id: String,
    lock: Mutex<()>,
    /// Wakes the trial timer when a trial starts or ends.
    wake: Notify,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn wall_s() -> u64 {
    facts::wall_ms().map_or(0, |ms| ms / 1000)
}

/// The mode of a request (an unknown number is refused).
pub fn mode(n: i32) -> Result<ConfigMode, Status> {
    ConfigMode::try_from(n)
        .map_err(|_| Status::invalid_argument(format!("unknown config mode {n}")))
}

/// Why the node must reboot for `changes` in `mode`; an error when `mode`
/// forbids the reboot a change needs.
fn reboot_reason(mode: ConfigMode, changes: &[Change]) -> Result<Option<String>, Status> {
    let needed = diff::reboot_needed(changes);
    match (mode, needed) {
        (ConfigMode::Reboot, _) => Ok(Some("mode reboot".into())),
        (ConfigMode::Auto, Some(c)) => Ok(Some(format!("{} needs a reboot", c.field))),
        (ConfigMode::NoReboot, Some(c)) => Err(Status::failed_precondition(format!(
            "{} needs a reboot (a removed sysctl's kernel default, or a removed MTU's link \
             default, comes back only with a boot): nothing was changed; apply with \
             --mode auto or --mode reboot",
            c.field
        ))),
        (_, None) => Ok(None),
    }
}

impl NodeConfig {
    /// Opens the store under `cfg.config_dir`.
    pub fn open(cfg: &crate::config::Config) -> Result<NodeConfig, StoreError> {
        let store = Store::open(&cfg.config_dir.join(GENERATIONS_DIR))?;
        let boot_id = facts::boot_id(&cfg.boot_id_path).unwrap_or_else(|e| {
            eprintln!(
                "matic-agent: config: {e}; trials cannot tell a reboot from an agent restart"
            );
            String::new()
        });
        Ok(NodeConfig {
            store,
            trial_path: cfg.config_dir.join(TRIAL_FILE),
            targets: appliers::Targets::from_config(cfg),
            control_fifo: cfg.control_fifo(),
            boot_id,
            lock: Mutex::new(()),
            wake: Notify::new(),
        })
    }

    /// The current generation and its document (the empty one before any).
    /// A generation this agent's checks refuse (written by an older agent
    /// with laxer ones) counts as the empty document, logged: it must not
    /// stop the next apply from replacing it.
    fn current(&self) -> Result<(Option<Generation>, Config), Status> {
        let cur = self.store.current().map_err(internal)?;
        let doc = match &cur {
            Some(g) => matic_config::parse(&g.text).unwrap_or_else(|e| {
                eprintln!(
                    "matic-agent: config: generation {} no longer passes the checks, taken as empty: {e}",
                    g.id
                );
                Config::empty()
            }),
            None => Config::empty(),
        };
        Ok((cur, doc))
    }

    /// The resolver file, shared with [`crate::net`] (whose name servers
    /// the configuration's win over).
    pub fn resolver(&self) -> Arc<crate::resolv::Resolver> {
        self.targets.resolver.clone()
    }

    /// The seam to the network task ([`crate::net::run`]), which puts the
    /// interfaces of what is applied live in place.
    pub fn net_control(&self) -> Arc<crate::net::NetControl> {
        self.targets.net.clone()
    }

    /// The SNTP client's servers: `time.ntp` of what is applied live.
    pub fn ntp_servers(&self) -> tokio::sync::watch::Receiver<Vec<String>> {
        self.targets.ntp.subscribe()
    }

    fn trial(&self) -> Result<Option<Trial>, Status> {
        match std::fs::read_to_string(&self.trial_path) {
            Ok(t) => Trial::parse(&t)
                .map(Some)
                .map_err(|e| internal(format!("{}: {e}", self.trial_path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(internal(format!("{}: {e}", self.trial_path.display()))),
        }
    }

    /// The trial, when it is of the current generation; a trial of any
    /// other (its generation never written: a crash between the two
    /// writes) is dropped.
    fn trial_of_current(&self) -> Result<Option<Trial>, Status> {
        let Some(t) = self.trial()? else {
            return Ok(None);
        };
        let cur = self.store.current().map_err(internal)?.map(|g| g.id);
        if cur == Some(t.generation) {
            return Ok(Some(t));
        }
        eprintln!(
            "matic-agent: config: dropping the trial of generation {}, which is not current ({cur:?})",
            t.generation
        );
        atomic::remove(&self.trial_path).map_err(internal)?;
        Ok(None)
    }

    fn save_trial(&self, t: &Trial) -> Result<(), Status> {
        atomic::write(&self.trial_path, t.render().as_bytes()).map_err(internal)
    }

    /// Applies `doc` live; a failure has changed nothing
    /// ([`appliers::apply_live`] puts back what it wrote).
    fn apply_live(&self, doc: &Config) -> Result<appliers::Applied, Status> {
        appliers::apply_live(doc, &self.targets)
            .map_err(|e| Status::failed_precondition(format!("{e}: nothing was changed")))
    }

    /// Puts `doc` back live after a later step failed (best effort, logged).
    fn put_back(&self, doc: &Config) {
        if let Err(e) = appliers::apply_live(doc, &self.targets) {
            eprintln!("matic-agent: config: putting the previous generation back: {e}");
        }
    }

    /// Asks init to restart the services `applied` names; the ones asked.
    /// A FIFO init does not read (tests without init, a shutdown) is
    /// logged: the files are in place, and containerd reads them when it
    /// next starts.
    fn restart(&self, applied: &appliers::Applied) -> Vec<String> {
        let mut done = Vec::new();
        for name in &applied.restart {
            match crate::init_link::send_command(
                &self.control_fifo,
                matic_contract::control::Command::Restart(name.as_bytes()),
            ) {
                Ok(()) => {
                    eprintln!("matic-agent: config: asked init to restart {name}");
                    done.push((*name).to_owned());
                }
                Err(e) => eprintln!("matic-agent: config: restarting {name}: {e}"),
            }
        }
        done
    }

    /// The document generation `id` holds and that generation's parent;
    /// None: the empty document.
    fn document_of(&self, id: Option<u64>) -> Result<(String, Option<u64>), StoreError> {
        match id {
            Some(id) => self.store.read(id).map(|g| (g.text, g.meta.parent)),
            None => Ok((Config::empty().to_toml(), None)),
        }
    }

    fn apply_sync(&self, text: &str, mode: ConfigMode, try_s: u32) -> Result<Outcome, Status> {
        let new = matic_config::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if try_s > 0 && !(1..=matic_config::check::MAX_TRY.as_secs()).contains(&u64::from(try_s)) {
            return Err(Status::invalid_argument(format!(
                "try window {try_s} s is outside 1..=86400"
            )));
        }
        if let Some(t) = self.trial()? {
            return Err(Status::failed_precondition(format!(
                "generation {} is on trial: confirm it or roll it back first",
                t.generation
            )));
        }
        let (cur, old) = self.current()?;
        let changes = diff::diff(&old, &new);
        let reboot = reboot_reason(mode, &changes)?;
        let applied = self.apply_live(&new)?;
        let parent = cur.as_ref().map(|g| g.id);
        // A trial's state is written before its generation: a crash in
        // between leaves a trial naming a generation that never came, which
        // the next start drops ([`NodeConfig::trial_of_current`]); the other
        // order could leave an untried generation kept for good.
        let trial = if try_s > 0 {
            let next = self.store.next_id().map_err(internal)?;
            let t = Trial::start(
                next,
                parent,
                u64::from(try_s) * 1000,
                reboot.is_some(),
                &self.boot_id,
                facts::boottime_ms(),
            );
            if let Err(e) = self.save_trial(&t) {
                self.put_back(&old);
                return Err(e);
            }
            Some(t)
        } else {
            None
        };
        let meta = Meta {
            parent,
            origin: Origin::Applied,
            time: wall_s(),
        };
        let id = self.store.add(text, &meta).map_err(|e| {
            self.put_back(&old);
            let _ = atomic::remove(&self.trial_path);
            internal(e)
        })?;
        let restarted = self.restart(&applied);
        if trial.is_some() {
            self.wake.notify_one();
        }
        eprintln!(
            "matic-agent: config: generation {id} applied ({} changes{}{})",
            changes.len(),
            if try_s > 0 {
                format!(", on trial for {try_s} s")
            } else {
                String::new()
            },
            reboot
                .as_ref()
                .map(|r| format!(", rebooting: {r}"))
                .unwrap_or_default()
        );
        Ok(Outcome {
            generation: id,
            changes,
            reboot,
            restarted,
        })
    }

    /// Goes back from the trial `t`: a new generation with the document
    /// before it, applied live. The reboot reason, if one is needed.
    fn revert_sync(&self, t: &Trial) -> Result<Option<String>, Status> {
        let (_, tried) = self.current()?;
        let (text, parent) = self.document_of(t.previous).unwrap_or_else(|e| {
            eprintln!("matic-agent: config: {e}; reverting to the empty document");
            (Config::empty().to_toml(), None)
        });
        let back = matic_config::parse(&text).unwrap_or_else(|_| Config::empty());
        let changes = diff::diff(&tried, &back);
        match appliers::apply_live(&back, &self.targets) {
            Ok(a) => {
                self.restart(&a);
            }
            Err(e) => eprintln!("matic-agent: config: revert: {e}"),
        }
        let meta = Meta {
            parent,
            origin: Origin::Revert { of: t.generation },
            time: wall_s(),
        };
        let id = self.store.add(&text, &meta).map_err(internal)?;
        atomic::remove(&self.trial_path).map_err(internal)?;
        let reboot = if t.needs_reboot && t.booted {
            Some(format!("generation {} was booted on trial", t.generation))
        } else {
            diff::reboot_needed(&changes).map(|c| format!("{} needs a reboot", c.field))
        };
        eprintln!(
            "matic-agent: config: trial of generation {} not confirmed: reverted as generation {id}{}",
            t.generation,
            reboot
                .as_ref()
                .map(|r| format!(", rebooting: {r}"))
                .unwrap_or_default()
        );
        Ok(reboot)
    }

    fn rollback_sync(&self, mode: ConfigMode) -> Result<Outcome, Status> {
        let (cur, old) = self.current()?;
        let cur = cur.ok_or_else(|| {
            Status::failed_precondition("no configuration applied: nothing to roll back")
        })?;
        let to = cur.meta.parent;
        let (text, parent) = self
            .document_of(to)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let back =
            matic_config::parse(&text).map_err(|e| internal(format!("generation {to:?}: {e}")))?;
        let changes = diff::diff(&old, &back);
        let reboot = reboot_reason(mode, &changes)?;
        let applied = self.apply_live(&back)?;
        let meta = Meta {
            parent,
            origin: Origin::Rollback { to },
            time: wall_s(),
        };
        let id = self.store.add(&text, &meta).map_err(|e| {
            self.put_back(&old);
            internal(e)
        })?;
        let restarted = self.restart(&applied);
        // A rollback ends a trial: it is the revert, asked for.
        atomic::remove(&self.trial_path).map_err(internal)?;
        self.wake.notify_one();
        eprintln!("matic-agent: config: rolled back to {to:?} as generation {id}");
        Ok(Outcome {
            generation: id,
            changes,
            reboot,
            restarted,
        })
    }

    /// At agent start: moves a trial on (a reboot into it, or its revert),
    /// then applies the current generation live. The reboot reason when
    /// the revert needs one.
    pub async fn start(self: &Arc<Self>) -> Option<String> {
        let _g = self.lock.lock().await;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.start_sync())
            .await
            .unwrap_or_else(|e| {
                eprintln!("matic-agent: config: {e}");
                None
            })
    }

    fn start_sync(&self) -> Option<String> {
        let mut reboot = None;
        match self.trial_of_current() {
            Ok(Some(mut t)) => {
                let step = t.on_start(&self.boot_id, facts::boottime_ms());
                match step {
                    Step::Wait { .. } => {
                        if let Err(e) = self.save_trial(&t) {
                            eprintln!("matic-agent: config: {e}");
                        }
                        eprintln!("matic-agent: config: generation {} on trial", t.generation);
                    }
                    Step::Revert { .. } => match self.revert_sync(&t) {
                        Ok(r) => reboot = r,
                        Err(e) => eprintln!("matic-agent: config: revert: {}", e.message()),
                    },
                }
            }
            Ok(None) => {}
            Err(e) => eprintln!("matic-agent: config: {}", e.message()),
        }
        match self.current() {
            // containerd may have started before this with files an
            // older agent rendered differently: restarted when they change.
            Ok((Some(g), doc)) => match appliers::apply_live(&doc, &self.targets) {
                Ok(a) => {
                    self.restart(&a);
                    eprintln!("matic-agent: config: generation {} applied at start", g.id)
                }
                Err(e) => eprintln!("matic-agent: config: generation {}: {e}", g.id),
            },
            Ok((None, _)) => {}
            Err(e) => eprintln!("matic-agent: config: {}", e.message()),
        }
        reboot
    }

    /// The trial timer: reverts a trial at its deadline (and reboots when
    /// the revert needs it). Runs for the agent's life.
    pub async fn run_timer(self: Arc<Self>, reboot: Reboot) {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let step = {
                let _g = self.lock.lock().await;
                match self.trial() {
                    Ok(t) => t.map(|t| t.tick(facts::boottime_ms())),
                    Err(e) => {
                        eprintln!("matic-agent: config: {}", e.message());
                        None
                    }
                }
            };
            match step {
                None => woken.await,
                Some(Step::Wait { deadline_ms }) => {
                    let left = deadline_ms.saturating_sub(facts::boottime_ms());
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(left)) => {}
                        _ = woken => {}
                    }
                }
                Some(Step::Revert { .. }) => {
                    let reason = {
                        let _g = self.lock.lock().await;
                        let me = self.clone();
                        tokio::task::spawn_blocking(move || match me.trial()? {
                            // Still there and still expired (not confirmed meanwhile).
                            Some(t)
                                if matches!(t.tick(facts::boottime_ms()), Step::Revert { .. }) =>
                            {
                                me.revert_sync(&t)
                            }
                            _ => Ok(None),
                        })
                        .await
                    };
                    match reason {
                        Ok(Ok(Some(why))) => reboot(why).await,
                        Ok(Ok(None)) => {}
                        Ok(Err(e)) => {
                            eprintln!("matic-agent: config: revert: {}", e.message());
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        Err(e) => eprintln!("matic-agent: config: revert task: {e}"),
                    }
                }
            }
        }
    }

    async fn locked<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&NodeConfig) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let _g = self.lock.lock().await;
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| internal(format!("config task: {e}")))?
    }

    /// The current generation's interfaces: what [`crate::net`] configures
    /// when the agent starts (later changes reach it through
    /// [`NodeConfig::net_control`]).
    pub async fn interfaces(
        self: &Arc<Self>,
    ) -> std::collections::BTreeMap<String, matic_config::schema::Interface> {
        self.locked(|me| Ok(me.current()?.1.network.interfaces))
            .await
            .unwrap_or_else(|e| {
                eprintln!("matic-agent: config: {}", e.message());
                Default::default()
            })
    }

    pub async fn apply(self: &Arc<Self>, req: ConfigApplyRequest) -> Result<Outcome, Status> {
        let mode = mode(req.mode)?;
        // Before the lock: a failed check's printed lines then tell an
        // apply that never came from one that waits (scripts/e2e/trials.sh).
        eprintln!(
            "matic-agent: config: apply asked{}",
            if req.try_seconds > 0 {
                format!(" (on trial for {} s)", req.try_seconds)
            } else {
                String::new()
            }
        );
        self.locked(move |me| me.apply_sync(&req.document, mode, req.try_seconds))
            .await
    }

    pub async fn rollback(self: &Arc<Self>, req: ConfigRollbackRequest) -> Result<Outcome, Status> {
        let mode = mode(req.mode)?;
        self.locked(move |me| me.rollback_sync(mode)).await
    }

    pub async fn confirm(self: &Arc<Self>) -> Result<ConfigConfirmResponse, Status> {
        let r = self
            .locked(|me| {
                let t = me
                    .trial()?
                    .ok_or_else(|| Status::failed_precondition("no generation is on trial"))?;
                atomic::remove(&me.trial_path).map_err(internal)?;
                eprintln!("matic-agent: config: generation {} confirmed", t.generation);
                Ok(ConfigConfirmResponse {
                    generation: t.generation,
                })
            })
            .await;
        self.wake.notify_one();
        r
    }

    pub async fn get(self: &Arc<Self>, admin: bool) -> Result<ConfigGetResponse, Status> {
        self.locked(move |me| {
            let (cur, doc) = me.current()?;
            let document = match &cur {
                None => String::new(),
                Some(g) if admin || doc.redacted() == doc => g.text.clone(),
                Some(_) => doc.redacted().to_toml(),
            };
            let trial = me.trial()?.map(|t| {
                let same_boot = t.boot_id == me.boot_id;
                ConfigTrial {
                    generation: t.generation,
                    seconds_left: if same_boot {
                        t.deadline_ms
                            .saturating_sub(facts::boottime_ms())
                            .div_ceil(1000)
                    } else {
                        0
                    },
                    needs_reboot: t.needs_reboot,
                    waiting_for_reboot: t.needs_reboot && !t.booted,
                }
            });
            Ok(ConfigGetResponse {
                generation: cur.map_or(0, |g| g.id),
                document,
                trial,
            })
        })
        .await
    }

    pub async fn history(self: &Arc<Self>) -> Result<ConfigHistoryResponse, Status> {
        self.locked(|me| {
            let all = me.store.list().map_err(internal)?;
            let current = all.last().map(|g| g.id);
            Ok(ConfigHistoryResponse {
                generations: all
                    .into_iter()
                    .map(|g| ConfigGeneration {
                        id: g.id,
                        origin: g.meta.origin.to_string(),
                        time: g.meta.time,
                        current: Some(g.id) == current,
                        parent: g.meta.parent.unwrap_or(0),
                    })
                    .collect(),
            })
        })
        .await
    }

    pub async fn diff(
        self: &Arc<Self>,
        req: ConfigDiffRequest,
    ) -> Result<ConfigDiffResponse, Status> {
        self.locked(move |me| {
            let read = |id: u64| -> Result<Config, Status> {
                if id == 0 {
                    return Ok(Config::empty());
                }
                let g = me.store.read(id).map_err(|e| match e {
                    StoreError::NotFound { .. } => Status::not_found(e.to_string()),
                    e => internal(e),
                })?;
                matic_config::parse(&g.text).map_err(|e| internal(format!("generation {id}: {e}")))
            };
            let (a, b) = if req.a == 0 && req.b == 0 {
                let (cur, _) = me.current()?;
                let cur = cur.ok_or_else(|| {
                    Status::failed_precondition("no configuration applied: nothing to compare")
                })?;
                (cur.meta.parent.unwrap_or(0), cur.id)
            } else {
                (req.a, req.b)
            };
            let changes = diff::diff(&read(a)?, &read(b)?);
            Ok(ConfigDiffResponse {
                a,
                b,
                changes: changes.iter().map(to_proto).collect(),
            })
        })
        .await
    }
}

/// A change as the API carries it.
pub fn to_proto(c: &Change) -> ConfigChange {
    ConfigChange {
        field: c.field.clone(),
        has_old: c.old.is_some(),
        has_new: c.new.is_some(),
        old: c.old.clone().unwrap_or_default(),
        new: c.new.clone().unwrap_or_default(),
        effect: c.effect.to_string(),
    }
}
