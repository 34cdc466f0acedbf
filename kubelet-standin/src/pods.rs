//! Pods run through the CRI the way kubelet runs them: `RunPodSandbox`
//! (host network, containerd's `sandbox_image`, our pause image),
//! `CreateContainer`, `StartContainer`, then `ContainerStatus` until the
//! container exits. The same code drives the stand-in's two test pods on a
//! node and the pod-start benchmark (`scripts/bench-pods`), on the node
//! and on the host: only the CRI socket differs.
//!
//! Owns: the pod and container specs ([`sandbox_config`],
//! [`container_config`]), the trigger (the test workload image is in
//! containerd: [`wait_for_image`]), the pod-start latency (`RunPodSandbox`
//! sent → `StartContainer` answered, the container running) and its
//! summary ([`Spread`]).
//!
//! Must never: pull an image (the node reaches no registry: a pod only
//! uses what is imported), ask for a pod network (a node has no CNI), or
//! touch a pod it did not label ([`LABEL`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use matic_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, ImageStatusRequest, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, ListPodSandboxRequest, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxFilter, PodSandboxMetadata, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
};
use matic_cri::{ImageServiceClient, RuntimeServiceClient};
use tonic::transport::Channel;

/// The test workload image (workloads/src/bin/workload.rs), imported by
/// `osctl image import` from the archive build-rootfs writes.
pub use matic_contract::workloads::WORKLOAD_IMAGE;
/// The label on every pod this module makes; its value says which run
/// ([`TEST_RUN`] or [`BENCH_RUN`]). Pods without it are never touched.
pub const LABEL: &str = "matic.dev/standin";
/// The value of [`LABEL`] on the two test pods.
pub const TEST_RUN: &str = "test";
/// The value of [`LABEL`] on benchmark pods (removed after each).
pub const BENCH_RUN: &str = "bench";
/// The Kubernetes namespace of every pod here.
pub const NAMESPACE: &str = "matic-standin";
/// Where kubelet puts pod logs; the CRI writes each container's there.
pub const NODE_LOG_ROOT: &str = "/var/log/pods";
/// How long a test container may run before it is a failure.
pub const EXIT_WAIT: Duration = Duration::from_secs(120);

/// One pod to run: its name, its workload's arguments, the code it must
/// exit with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    pub name: String,
    pub args: Vec<String>,
    /// The exit code its workload is told to end with.
    pub exit: i32,
}

impl PodSpec {
    /// A pod whose workload prints `line` and exits with `code`.
    pub fn workload(name: &str, line: &str, code: u8) -> PodSpec {
        PodSpec {
            name: name.into(),
            args: vec![
                "--say".into(),
                line.into(),
                "--exit".into(),
                code.to_string(),
            ],
            exit: code.into(),
        }
    }
}

/// The stand-in's two test pods: one prints its line and exits 0, the
/// other exits 3 (a failed container must show its code).
pub fn test_pods() -> [PodSpec; 2] {
    [
        PodSpec::workload("standin-ok", "matic-standin: hello from a pod", 0),
        PodSpec::workload("standin-three", "matic-standin: exiting 3", 3),
    ]
}

/// What one pod did.
#[derive(Debug, Clone)]
pub struct PodRun {
    pub name: String,
    /// Its pod UID (its log directory's name holds it).
    pub uid: String,
    pub sandbox_id: String,
    pub container_id: String,
    /// `RunPodSandbox` sent → its answer.
    pub sandbox: Duration,
    /// `RunPodSandbox` sent → `StartContainer` answered (the pod-start
    /// latency: the container's process runs).
    pub start: Duration,
    /// Its exit code, once exited.
    pub exit_code: i32,
}

impl PodRun {
    /// The stand-in's report line for it.
    pub fn line(&self) -> String {
        format!(
            "pod {}: sandbox {} container {} running {} ms after RunPodSandbox (sandbox {} ms), exited {}",
            self.name,
            self.sandbox_id,
            self.container_id,
            self.start.as_millis(),
            self.sandbox.as_millis(),
            self.exit_code
        )
    }
}

/// A pod's sandbox config as kubelet would send it for a host-network pod:
/// its metadata, labels, log directory
/// (`<log_root>/<namespace>_<name>_<uid>`, kubelet's layout), and the node's
/// network namespace (no CNI). No hostname: a host-network pod shares the
/// node's UTS namespace, and kubelet leaves it empty too.
pub fn sandbox_config(name: &str, uid: &str, run: &str, log_root: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: NAMESPACE.into(),
            attempt: 0,
        }),
        log_directory: log_dir(name, uid, log_root).display().to_string(),
        labels: HashMap::from([(LABEL.to_string(), run.to_string())]),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..NamespaceOption::default()
                }),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        }),
        ..PodSandboxConfig::default()
    }
}

/// kubelet's pod log directory.
pub fn log_dir(name: &str, uid: &str, log_root: &Path) -> PathBuf {
    log_root.join(format!("{NAMESPACE}_{name}_{uid}"))
}

/// The workload container of pod `spec`; its log at `workload/0.log` in
/// the pod's log directory (kubelet's `<container>/<attempt>.log`).
pub fn container_config(spec: &PodSpec) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "workload".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: WORKLOAD_IMAGE.into(),
            ..ImageSpec::default()
        }),
        args: spec.args.clone(),
        log_path: "workload/0.log".into(),
        ..ContainerConfig::default()
    }
}

/// A pod UID for `name` unique to this run (kubelet's are UUIDs; a reused
/// UID with the same name is refused by the CRI as already reserved).
pub fn uid(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{name}-{}-{nanos:x}", std::process::id())
}

/// The CRI's error as text, saying what was asked.
fn cri(what: &str, s: tonic::Status) -> String {
    format!("{what}: {} ({:?})", s.message(), s.code())
}

/// True when the runtime holds `image` (the CRI `ImageStatus` call
/// kubelet makes before creating a container with it).
pub async fn image_present(ch: &Channel, image: &str) -> Result<bool, String> {
    let r = ImageServiceClient::new(ch.clone())
        .image_status(ImageStatusRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..ImageSpec::default()
            }),
            verbose: false,
        })
        .await
        .map_err(|s| cri(&format!("ImageStatus {image}"), s))?
        .into_inner();
    Ok(r.image.is_some())
}

/// The trigger: asks for `image` every `poll` until the runtime holds it;
/// an error when `until` passes first (None: ask until the caller stops).
/// A failed call is retried like an absent image (containerd may restart).
pub async fn wait_for_image(
    ch: &Channel,
    image: &str,
    poll: Duration,
    until: Option<Instant>,
) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let last = match image_present(ch, image).await {
            Ok(true) => return Ok(()),
            Ok(false) => "not in the runtime".to_string(),
            Err(e) => e,
        };
        if until.is_some_and(|u| Instant::now() >= u) {
            return Err(format!(
                "{image}: {last} after {} s",
                t0.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

/// The ids of the sandboxes labelled `run` that exist now.
pub async fn labelled(ch: &Channel, run: &str) -> Result<Vec<String>, String> {
    Ok(RuntimeServiceClient::new(ch.clone())
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                label_selector: HashMap::from([(LABEL.to_string(), run.to_string())]),
                ..PodSandboxFilter::default()
            }),
        })
        .await
        .map_err(|s| cri("ListPodSandbox", s))?
        .into_inner()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect())
}

/// Runs pod `spec` labelled `run` to its end: the sandbox, the container
/// started (the latency is taken then), its status polled until it exited
/// or `exit_wait` passed. The pod is left in place (as kubelet leaves a
/// finished pod until it is deleted); [`remove`] ends it.
pub async fn run_pod(
    ch: &Channel,
    spec: &PodSpec,
    run: &str,
    log_root: &Path,
    exit_wait: Duration,
) -> Result<PodRun, String> {
    let mut rt = RuntimeServiceClient::new(ch.clone());
    let uid = uid(&spec.name);
    let config = sandbox_config(&spec.name, &uid, run, log_root);
    // kubelet makes the pod's log directory before it asks for the sandbox.
    let dir = log_dir(&spec.name, &uid, log_root);
    std::fs::create_dir_all(dir.join("workload"))
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let t0 = Instant::now();
    let sandbox_id = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .map_err(|s| cri(&format!("RunPodSandbox {}", spec.name), s))?
        .into_inner()
        .pod_sandbox_id;
    let sandbox = t0.elapsed();
    let container_id = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox_id.clone(),
            config: Some(container_config(spec)),
            sandbox_config: Some(config),
        })
        .await
        .map_err(|s| cri(&format!("CreateContainer in {}", spec.name), s))?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: container_id.clone(),
    })
    .await
    .map_err(|s| cri(&format!("StartContainer {container_id}"), s))?;
    let start = t0.elapsed();
    let exit_code = wait_exit(&mut rt, &container_id, exit_wait).await?;
    Ok(PodRun {
        name: spec.name.clone(),
        uid,
        sandbox_id,
        container_id,
        sandbox,
        start,
        exit_code,
    })
}

/// Polls `ContainerStatus` until the container exited; its exit code.
async fn wait_exit(
    rt: &mut RuntimeServiceClient<Channel>,
    id: &str,
    wait: Duration,
) -> Result<i32, String> {
    let until = Instant::now() + wait;
    loop {
        let st = rt
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .map_err(|s| cri(&format!("ContainerStatus {id}"), s))?
            .into_inner()
            .status
            .ok_or_else(|| format!("ContainerStatus {id}: no status"))?;
        if st.state == ContainerState::ContainerExited as i32 {
            return Ok(st.exit_code);
        }
        if Instant::now() >= until {
            return Err(format!(
                "container {id} still {:?} after {} s",
                ContainerState::try_from(st.state).unwrap_or(ContainerState::ContainerUnknown),
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops and removes sandbox `id` (its containers go with it).
pub async fn remove(ch: &Channel, id: &str) -> Result<(), String> {
    let mut rt = RuntimeServiceClient::new(ch.clone());
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map_err(|s| cri(&format!("StopPodSandbox {id}"), s))?;
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map_err(|s| cri(&format!("RemovePodSandbox {id}"), s))?;
    Ok(())
}

/// The stand-in's test pods, once per node: none when pods labelled
/// [`TEST_RUN`] exist already (a restarted stand-in does not run them
/// again: `Ok(None)`, after a line naming them). Each pod's outcome is
/// handed to `out` as it ends; an error names the pod, and a pod whose
/// exit code is not the one its workload was told is one.
pub async fn run_test_pods(
    ch: &Channel,
    log_root: &Path,
    out: &mut dyn FnMut(&str),
) -> Result<Option<Vec<PodRun>>, String> {
    run_once(ch, &test_pods(), log_root, out).await
}

/// [`run_test_pods`] with the pods given. A run that fails leaves no pod
/// labelled [`TEST_RUN`]: a pod left behind would read as "ran before" to
/// the restarted stand-in, which would then report nothing instead of
/// trying again. The failed pods' log directories stay until the next
/// attempt starts (the failure's evidence), then go: one attempt's logs,
/// however often the stand-in is restarted.
pub async fn run_once(
    ch: &Channel,
    specs: &[PodSpec],
    log_root: &Path,
    out: &mut dyn FnMut(&str),
) -> Result<Option<Vec<PodRun>>, String> {
    let there = labelled(ch, TEST_RUN).await?;
    if !there.is_empty() {
        out(&format!(
            "pods: the test pods ran before ({}), not again",
            there.join(", ")
        ));
        return Ok(None);
    }
    for spec in specs {
        remove_log_dirs(&spec.name, log_root);
    }
    let mut runs = Vec::new();
    for spec in specs {
        let failed = match run_pod(ch, spec, TEST_RUN, log_root, EXIT_WAIT).await {
            Err(e) => Some(e),
            Ok(r) => {
                out(&r.line());
                let code = r.exit_code;
                runs.push(r);
                (code != spec.exit).then(|| {
                    format!(
                        "pod {}: exited {code}, its workload was told {}",
                        spec.name, spec.exit
                    )
                })
            }
        };
        if let Some(e) = failed {
            for id in labelled(ch, TEST_RUN).await.unwrap_or_default() {
                if let Err(r) = remove(ch, &id).await {
                    out(&format!("pods: after the failure, {r}"));
                }
            }
            return Err(e);
        }
    }
    Ok(Some(runs))
}

/// Removes the log directories of pod `name` (any UID) under `log_root`;
/// what cannot be read or removed is left (the next attempt tries again).
fn remove_log_dirs(name: &str, log_root: &Path) {
    let prefix = format!("{NAMESPACE}_{name}_");
    let Ok(entries) = std::fs::read_dir(log_root) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The spread of pod-start latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub n: usize,
    pub min: Duration,
    pub median: Duration,
    pub p90: Duration,
    pub max: Duration,
}

impl Spread {
    /// The figures of `samples` (sorted here); None when empty. The median
    /// of an even count is the mean of the middle two; p90 is the nearest
    /// rank.
    pub fn of(samples: &[Duration]) -> Option<Spread> {
        let mut s = samples.to_vec();
        s.sort();
        let n = s.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2
        };
        let rank = (n * 90).div_ceil(100).max(1);
        Some(Spread {
            n,
            min: s[0],
            median,
            p90: s[rank - 1],
            max: s[n - 1],
        })
    }

    /// One line: `pod start: N pods, median M ms (min, p90, max)`.
    pub fn line(&self) -> String {
        format!(
            "pod start: {} pods, median {} ms (min {} ms, p90 {} ms, max {} ms)",
            self.n,
            self.median.as_millis(),
            self.min.as_millis(),
            self.p90.as_millis(),
            self.max.as_millis()
        )
    }
}

/// The benchmark: `n` pods one after the other, each an exit-0 workload,
/// run to its end and removed; the spread of their start latencies. Each
/// pod's line goes to `out`. A pod that fails to start or exits non-zero
/// ends the run with its error, and no benchmark pod is left.
pub async fn bench(
    ch: &Channel,
    n: usize,
    log_root: &Path,
    out: &mut dyn FnMut(&str),
) -> Result<Spread, String> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let spec = PodSpec::workload(&format!("bench-{i}"), "matic-standin: bench pod", 0);
        let r = match run_pod(ch, &spec, BENCH_RUN, log_root, EXIT_WAIT).await {
            Ok(r) => r,
            Err(e) => {
                // A pod that failed half way: none of the benchmark's stay.
                for id in labelled(ch, BENCH_RUN).await.unwrap_or_default() {
                    let _ = remove(ch, &id).await;
                }
                return Err(e);
            }
        };
        // Removed before its result is judged: a failed run leaves nothing.
        let removed = remove(ch, &r.sandbox_id).await;
        let _ = std::fs::remove_dir_all(log_dir(&spec.name, &r.uid, log_root));
        removed?;
        if r.exit_code != spec.exit {
            return Err(format!("{}: exited {}, expected 0", r.name, r.exit_code));
        }
        out(&r.line());
        samples.push(r.start);
    }
    Spread::of(&samples).ok_or_else(|| "no pods to measure (0 asked)".into())
}

/// The benchmark's pod count from the stand-in's arguments
/// (`--matic-bench-pods=N`, given through the kubelet section's
/// `extra_args`); None without it, an error for a bad value.
pub fn bench_count(args: &[std::ffi::OsString]) -> Result<Option<usize>, String> {
    const FLAG: &str = "--matic-bench-pods=";
    let mut found = None;
    for a in args {
        if let Some(v) = a.to_str().and_then(|a| a.strip_prefix(FLAG)) {
            let n: usize = v
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| format!("{FLAG}{v}: a count of 1 to 1000"))?;
            found = Some(n);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_network_pod_as_kubelet_builds_it() {
        let c = sandbox_config("p", "u-1", TEST_RUN, Path::new("/var/log/pods"));
        let m = c.metadata.as_ref().unwrap();
        assert_eq!((m.name.as_str(), m.uid.as_str()), ("p", "u-1"));
        assert_eq!(m.namespace, NAMESPACE);
        assert_eq!(c.log_directory, "/var/log/pods/matic-standin_p_u-1");
        assert_eq!(c.labels.get(LABEL).map(String::as_str), Some(TEST_RUN));
        assert!(c.hostname.is_empty(), "a host-network pod has no hostname");
        let ns = c
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(
            ns.network,
            NamespaceMode::Node as i32,
            "no CNI: host network"
        );
        assert_eq!(ns.pid, NamespaceMode::Pod as i32);
    }

    #[test]
    fn the_container_runs_the_workload_with_its_args() {
        let spec = PodSpec::workload("p", "a line", 3);
        let c = container_config(&spec);
        assert_eq!(c.image.unwrap().image, WORKLOAD_IMAGE);
        assert_eq!(c.args, ["--say", "a line", "--exit", "3"]);
        assert!(c.command.is_empty(), "the image's entrypoint runs");
        assert_eq!(c.log_path, "workload/0.log");
        assert_eq!(c.metadata.unwrap().name, "workload");
    }

    /// The image builder (and the e2e scenarios, which take its variable)
    /// and the stand-in name the same workload image.
    #[test]
    fn one_workload_image_name_everywhere() {
        let common = include_str!("../../scripts/lib/common.sh");
        let line = format!("\nMATIC_WORKLOAD_IMAGE={WORKLOAD_IMAGE}\n");
        assert!(
            common.contains(&line),
            "scripts/lib/common.sh lacks {line:?}"
        );
    }

    #[test]
    fn the_test_pods_exit_0_and_3() {
        let [ok, three] = test_pods();
        assert_ne!(ok.name, three.name);
        assert_eq!(ok.args[2..], ["--exit", "0"]);
        assert_eq!(three.args[2..], ["--exit", "3"]);
        assert_eq!((ok.exit, three.exit), (0, 3));
    }

    #[test]
    fn uids_differ_between_runs() {
        let a = uid("p");
        std::thread::sleep(Duration::from_millis(1));
        assert_ne!(a, uid("p"));
        assert!(a.starts_with("p-"), "{a}");
    }

    #[test]
    fn spread_of_odd_even_and_none() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let s = Spread::of(&ms(&[30, 10, 20])).unwrap();
        assert_eq!(s.median, Duration::from_millis(20));
        assert_eq!(
            (s.min, s.max),
            (Duration::from_millis(10), Duration::from_millis(30))
        );
        assert_eq!(s.p90, Duration::from_millis(30));
        let s = Spread::of(&ms(&[40, 10, 20, 30])).unwrap();
        assert_eq!(s.median, Duration::from_millis(25));
        let s = Spread::of(&ms(&(1..=20).collect::<Vec<_>>())).unwrap();
        assert_eq!(s.p90, Duration::from_millis(18));
        assert_eq!(s.n, 20);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            Spread::of(&ms(&[5])).unwrap().line(),
            "pod start: 1 pods, median 5 ms (min 5 ms, p90 5 ms, max 5 ms)"
        );
    }

    #[test]
    fn the_bench_count_comes_from_its_flag() {
        let args = |v: &[&str]| {
            v.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(bench_count(&args(&["--max-pods=50"])), Ok(None));
        assert_eq!(
            bench_count(&args(&["--max-pods=50", "--matic-bench-pods=20"])),
            Ok(Some(20))
        );
        for bad in [
            "--matic-bench-pods=0",
            "--matic-bench-pods=x",
            "--matic-bench-pods=1001",
        ] {
            let e = bench_count(&args(&[bad])).unwrap_err();
            assert!(e.contains("a count of 1 to 1000"), "{e}");
        }
    }
}
