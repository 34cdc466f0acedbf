//! Workloads over loopback against a real containerd (Debian's, started by
//! the test as an ordinary process with its root, state and socket in the
//! test's directory, and runc): the agent imports the node's pause image
//! at start, an admin imports the test workload's OCI archive through
//! `ImageImport` (a reader may not), `ImageList` shows both; then a pod
//! runs through the CRI the way kubelet drives it (`RunPodSandbox` with
//! our pause image, `CreateContainer`, `StartContainer`, wait,
//! `ContainerStatus`), two containers exiting 0 and 3, and the agent's
//! `ContainerList` and `ContainerLogs` show what ran. And the stand-in
//! kubelet's pods (what it runs on a node in QEMU) against a containerd
//! of their own, after the agent's pause import over one connection.
//!
//! Needs root and containerd, runc and its shim (scripts/lib/deps.sh
//! installs them); it fails, saying so, without them.
mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use matic_contract::workloads::{PAUSE_IMAGE, WORKLOAD_IMAGE};
use matic_cri::RuntimeServiceClient;
use matic_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec as CriImage, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopPodSandboxRequest,
};
use matic_kubelet_standin::pods;
use matic_proto::v1::image_import_request::Msg;
use matic_proto::v1::*;
use matic_tests::containerd::{Containerd, image_archive};
use osctl::pki::Role;
use tonic::Code;

/// The pause archive, written into the node's directory before its agent
/// starts (`prepare` takes a plain fn).
static PAUSE_TAR: OnceLock<Vec<u8>> = OnceLock::new();

fn put_pause(dir: &std::path::Path) {
    std::fs::write(dir.join("pause.tar"), PAUSE_TAR.get().unwrap()).unwrap();
}

fn import_msgs(archive: &[u8], announced: u64) -> Vec<ImageImportRequest> {
    let mut v = vec![ImageImportRequest {
        msg: Some(Msg::Header(ImageImportHeader { size: announced })),
    }];
    for c in archive.chunks(64 << 10) {
        v.push(ImageImportRequest {
            msg: Some(Msg::Chunk(bytes::Bytes::copy_from_slice(c))),
        });
    }
    v
}

async fn import(
    c: &mut osctl::client::Client,
    msgs: Vec<ImageImportRequest>,
) -> Result<ImageImportResponse, tonic::Status> {
    c.image_import(futures::stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

async fn container_logs(c: &mut osctl::client::Client, id: &str) -> Result<String, tonic::Status> {
    let mut s = c
        .container_logs(ContainerLogsRequest {
            container: id.into(),
            tail_lines: 0,
        })
        .await?
        .into_inner();
    common::stream_text(&mut s, |m| m.data).await
}

/// Stops and removes the test's pods (their shims and pause processes end)
/// even when an assertion failed half way.
struct Pods {
    socket: std::path::PathBuf,
    ids: Vec<String>,
}

impl Drop for Pods {
    fn drop(&mut self) {
        let (socket, ids) = (self.socket.clone(), std::mem::take(&mut self.ids));
        // Its own thread and runtime: drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let Ok(ch) = matic_cri::connect(&socket, Duration::from_secs(30)).await else {
                    return;
                };
                let mut rt = RuntimeServiceClient::new(ch);
                for id in ids {
                    let _ = rt
                        .stop_pod_sandbox(StopPodSandboxRequest {
                            pod_sandbox_id: id.clone(),
                        })
                        .await;
                    let _ = rt
                        .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                        .await;
                }
            });
        })
        .join();
    }
}

fn container_config(name: &str, args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(CriImage {
            image: WORKLOAD_IMAGE.into(),
            ..CriImage::default()
        }),
        args: args.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        ..ContainerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_import_list_and_a_pod_through_cri() {
    if let Some(why) = matic_tests::containerd::missing() {
        panic!("{why}");
    }
    let (pause_bin, workload_bin) = matic_tests::containerd::static_programs();
    let (pause_tar, pause) = image_archive(PAUSE_IMAGE, "pause", &pause_bin);
    let (workload_tar, workload) = image_archive(WORKLOAD_IMAGE, "workload", &workload_bin);
    PAUSE_TAR.set(pause_tar).unwrap();

    let node = Node::start(
        "workloads",
        NodeOpts {
            prepare: Some(put_pause),
            ..NodeOpts::default()
        },
    );
    // Declared after the node: dropped (killed) before its directory goes.
    let socket = node.dir.join("containerd.sock");
    let ctd = Containerd::start(&node.dir.join("ctd"), &socket, PAUSE_IMAGE);
    // The agent waits for containerd, then imports the pause image.
    node.wait_log(&format!("imported {PAUSE_IMAGE} from"));

    let mut reader = node.client(Role::Reader).await;
    let mut admin = node.client(Role::Admin).await;

    // Import: admin only; the reader is refused before anything is read.
    let e = import(
        &mut reader,
        import_msgs(&workload_tar, workload_tar.len() as u64),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let r = import(
        &mut admin,
        import_msgs(&workload_tar, workload_tar.len() as u64),
    )
    .await
    .unwrap();
    assert_eq!(r.images.len(), 1);
    assert_eq!(r.images[0].name, WORKLOAD_IMAGE);
    assert_eq!(r.images[0].digest, workload.manifest.digest);
    assert_eq!(
        r.images[0].size,
        workload.manifest.size + workload.config.size + workload.layer.size
    );
    assert_eq!(r.blobs_written, 3, "manifest, config, layer");
    // Again: nothing new to write, the same image.
    let again = import(
        &mut admin,
        import_msgs(&workload_tar, workload_tar.len() as u64),
    )
    .await
    .unwrap();
    assert_eq!(again.blobs_written, 0);
    assert_eq!(again.images, r.images);

    // Malformed imports: a clear error, nothing kept in the spool.
    let e = import(&mut admin, import_msgs(&[7u8; 4096], 4096))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("not an OCI image archive"), "{e:?}");
    let e = import(
        &mut admin,
        import_msgs(&workload_tar, workload_tar.len() as u64 + 1),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("ended after"), "{e:?}");
    let mut no_header = import_msgs(&workload_tar, 1);
    no_header.remove(0);
    let e = import(&mut admin, no_header).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let spool: Vec<_> = std::fs::read_dir(node.dir.join("import"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "spool files left: {spool:?}");

    // Both images, as a reader sees them.
    let images = reader
        .image_list(ImageListRequest {})
        .await
        .unwrap()
        .into_inner()
        .images;
    let find = |name: &str| {
        images
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("{name} not in {images:?}"))
            .clone()
    };
    assert_eq!(find(PAUSE_IMAGE).digest, pause.manifest.digest);
    assert_eq!(find(WORKLOAD_IMAGE).digest, workload.manifest.digest);
    assert_eq!(
        find(PAUSE_IMAGE).size,
        pause.manifest.size + pause.config.size + pause.layer.size
    );

    // A pod the way kubelet runs one.
    let mut cri = RuntimeServiceClient::new(
        matic_cri::connect(&socket, Duration::from_secs(60))
            .await
            .unwrap(),
    );
    let mut pods = Pods {
        socket: socket.clone(),
        ids: Vec::new(),
    };
    // The stand-in kubelet's host-network pod (its label, namespace and
    // log directory), with two containers of this test's own.
    let config = pods::sandbox_config(
        "hello",
        &pods::uid("hello"),
        "agent-test",
        &node.dir.join("pods"),
    );
    let pod = cri
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e:?}\ncontainerd log:\n{}", ctd.log()))
        .into_inner()
        .pod_sandbox_id;
    pods.ids.push(pod.clone());
    let mut ids = Vec::new();
    for (name, args) in [
        ("ok", &["--say", "hello from the pod", "--exit", "0"][..]),
        ("three", &["--say", "exiting 3", "--exit", "3"][..]),
    ] {
        let id = cri
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(container_config(name, args)),
                sandbox_config: Some(config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer: {e:?}\ncontainerd log:\n{}", ctd.log()))
            .into_inner()
            .container_id;
        cri.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("StartContainer: {e:?}\ncontainerd log:\n{}", ctd.log()));
        ids.push(id);
    }
    let mut codes = Vec::new();
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(60);
        let st = loop {
            let st = cri
                .container_status(ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                })
                .await
                .unwrap()
                .into_inner()
                .status
                .unwrap();
            if st.state == ContainerState::ContainerExited as i32 {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} still {:?}",
                st.state
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        codes.push(st.exit_code);
    }
    assert_eq!(codes, [0, 3]);

    // What the agent shows of it, to a reader.
    let list = reader
        .container_list(ContainerListRequest {})
        .await
        .unwrap()
        .into_inner();
    let p = list
        .pods
        .iter()
        .find(|p| p.id == pod)
        .expect("the pod is listed");
    assert_eq!(p.name, format!("{}/hello", pods::NAMESPACE));
    assert_eq!(p.state, "READY");
    for (id, (name, code)) in ids.iter().zip([("ok", 0), ("three", 3)]) {
        let c = list
            .containers
            .iter()
            .find(|c| &c.id == id)
            .unwrap_or_else(|| panic!("{id} not in {:?}", list.containers));
        assert_eq!(c.name, name);
        assert_eq!(c.pod, format!("{}/hello", pods::NAMESPACE));
        assert_eq!(c.pod_id, pod);
        assert_eq!(c.image, WORKLOAD_IMAGE);
        assert_eq!(c.state, "EXITED");
        assert_eq!(c.exit_code, code);
        // Both stamped (containerd takes them from different clocks
        // readings: the exit can read a hair before the start).
        assert!(c.started > 0 && c.finished > 0, "{c:?}");
    }
    // Logs by an id prefix, decoded from the CRI's format.
    assert_eq!(
        container_logs(&mut reader, &ids[0][..12]).await.unwrap(),
        "hello from the pod\n"
    );
    assert_eq!(
        container_logs(&mut reader, &ids[1]).await.unwrap(),
        "exiting 3\n"
    );
    let e = container_logs(&mut reader, "nosuchcontainer")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = container_logs(&mut reader, "").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    drop(pods);
    drop(ctd);
}

/// A unix socket at `at` that accepts one connection, forwards it to
/// `to`, and is removed as soon as it accepted: a second dial fails.
fn one_connection_proxy(at: &std::path::Path, to: &std::path::Path) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::UnixListener::bind(at).unwrap();
    let (at, to) = (at.to_owned(), to.to_owned());
    tokio::spawn(async move {
        let (mut a, _) = listener.accept().await.unwrap();
        drop(listener);
        std::fs::remove_file(&at).unwrap();
        let mut b = tokio::net::UnixStream::connect(&to).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
    })
}

/// The stand-in kubelet's pods (kubelet-standin/src/pods.rs, what it runs
/// on a node in QEMU) against the same real containerd, after the agent's
/// pause import over a socket good for one connection: before the
/// workload image is imported the trigger waits (and gives up at its
/// bound); once `import_file` put it there, the two test pods run, exit 0
/// and 3, and their lines are in the CRI log files kubelet's layout names;
/// a second run finds them and runs nothing; the benchmark's pods all exit
/// 0 and are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_pods_through_cri() {
    if let Some(why) = matic_tests::containerd::missing() {
        panic!("{why}");
    }
    let dir = std::env::temp_dir().join(format!("matic-standin-pods-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (pause_tar, workload_tar) = matic_tests::containerd::image_archives(&dir.join("images"));
    let socket = dir.join("containerd.sock");
    let ctd = Containerd::start(&dir.join("ctd"), &socket, PAUSE_IMAGE);
    let ch = {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            match matic_cri::connect(&socket, Duration::from_secs(30)).await {
                Ok(ch) => break ch,
                Err(e) if Instant::now() >= until => panic!("{e}\n{}", ctd.log()),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    };
    // The agent's pause import at start, through a socket that takes one
    // connection and is then gone: it waits for containerd and imports
    // over that one channel (it used to dial again, and failed here).
    let once = dir.join("once.sock");
    let proxy = one_connection_proxy(&once, &socket);
    matic_agent::workloads::pause::ensure(once.clone(), pause_tar).await;
    proxy.abort();
    assert!(
        pods::image_present(&ch, PAUSE_IMAGE).await.unwrap(),
        "the pause image was not imported over the one connection\n{}",
        ctd.log()
    );

    // The trigger: no workload image yet, so it waits, then gives up at
    // its bound naming the image.
    let t = Instant::now();
    let e = pods::wait_for_image(
        &ch,
        pods::WORKLOAD_IMAGE,
        Duration::from_millis(200),
        Some(Instant::now() + Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    assert!(t.elapsed() >= Duration::from_secs(1), "gave up early");
    assert!(
        e.contains(pods::WORKLOAD_IMAGE) && e.contains("not in the runtime"),
        "{e}"
    );
    matic_agent::workloads::import::import_file(&ch, workload_tar)
        .await
        .unwrap();
    pods::wait_for_image(
        &ch,
        pods::WORKLOAD_IMAGE,
        Duration::from_millis(200),
        Some(Instant::now() + Duration::from_secs(10)),
    )
    .await
    .unwrap();

    let mut cleanup = Pods {
        socket: socket.clone(),
        ids: Vec::new(),
    };
    let logs = dir.join("pods");

    // A failed attempt leaves no test pod behind: the next attempt (a
    // restarted stand-in) runs them all, it does not read "ran before".
    // Its logs stay as its evidence until the next attempt starts: twice
    // the same failure, one attempt's logs.
    let mut told = pods::PodSpec::workload("standin-told", "matic-standin: exiting 5", 5);
    told.exit = 0;
    let failing = [pods::PodSpec::workload("standin-first", "first", 0), told];
    let log_dirs = |name: &str| {
        std::fs::read_dir(&logs)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .contains(&format!("_{name}_"))
            })
            .count()
    };
    for attempt in 1..=2 {
        let mut failed_lines = Vec::new();
        let e = pods::run_once(&ch, &failing, &logs, &mut |l| {
            failed_lines.push(l.to_owned())
        })
        .await
        .unwrap_err();
        assert!(
            e.contains("standin-told") && e.contains("exited 5"),
            "attempt {attempt}: {e}\n{failed_lines:?}"
        );
        assert_eq!(failed_lines.len(), 2, "{failed_lines:?}");
        assert_eq!(
            pods::labelled(&ch, pods::TEST_RUN).await.unwrap(),
            Vec::<String>::new(),
            "attempt {attempt} left test pods"
        );
        assert_eq!(
            (log_dirs("standin-first"), log_dirs("standin-told")),
            (1, 1),
            "attempt {attempt}"
        );
    }

    let mut lines = Vec::new();
    let runs = pods::run_test_pods(&ch, &logs, &mut |l| lines.push(l.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log()))
        .expect("no test pods before: they run");
    cleanup
        .ids
        .extend(runs.iter().map(|r| r.sandbox_id.clone()));
    let codes: Vec<i32> = runs.iter().map(|r| r.exit_code).collect();
    assert_eq!(codes, [0, 3]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (r, line) in runs.iter().zip(&lines) {
        assert!(r.start >= r.sandbox && r.start > Duration::ZERO, "{r:?}");
        assert!(
            line.starts_with(&format!(
                "pod {}: sandbox {} container {} running ",
                r.name, r.sandbox_id, r.container_id
            )) && line.ends_with(&format!("exited {}", r.exit_code)),
            "{line}"
        );
    }
    for (r, said) in runs.iter().zip([
        "matic-standin: hello from a pod",
        "matic-standin: exiting 3",
    ]) {
        let log = pods::log_dir(&r.name, &r.uid, &logs).join("workload/0.log");
        let text = std::fs::read_to_string(&log).unwrap();
        // CRI format: "<time> stdout F <line>".
        assert!(text.contains(&format!(" stdout F {said}\n")), "{text}");
    }

    // Once per node: a restarted stand-in finds them and runs nothing.
    let mut again = Vec::new();
    let r = pods::run_test_pods(&ch, &logs, &mut |l| again.push(l.to_owned()))
        .await
        .unwrap();
    assert!(r.is_none());
    assert!(
        again.len() == 1
            && again[0].contains("ran before")
            && again[0].contains(&runs[0].sandbox_id),
        "{again:?}"
    );

    // The benchmark: its pods exit 0 and are gone after.
    let mut bench_lines = Vec::new();
    let s = pods::bench(&ch, 2, &logs, &mut |l| bench_lines.push(l.to_owned()))
        .await
        .unwrap();
    assert_eq!(s.n, 2);
    assert!(
        s.min <= s.median && s.median <= s.max && s.min > Duration::ZERO,
        "{s:?}"
    );
    assert_eq!(bench_lines.len(), 2, "{bench_lines:?}");
    assert!(
        pods::labelled(&ch, pods::BENCH_RUN)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(pods::labelled(&ch, pods::TEST_RUN).await.unwrap().len(), 2);

    drop(cleanup);
    drop(ctd);
    let _ = std::fs::remove_dir_all(&dir);
}
