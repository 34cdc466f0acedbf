//! Pods and containers as the CRI sees them (the calls kubelet makes, read
//! only): `ListPodSandbox`, `ListContainers`, `ContainerStatus`.
//!
//! Must never: change a pod or container (no create, stop or remove).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use matic_cri::RuntimeServiceClient;
use matic_cri::v1::{
    ContainerState, ContainerStatusRequest, ListContainersRequest, ListPodSandboxRequest,
    PodSandboxState,
};
use matic_proto::v1::{Container, ContainerListResponse, Pod};
use tonic::Status;

use super::{channel, from_containerd};

/// Pods and containers, each container with its status (start, end, exit
/// code), oldest first.
pub async fn list(socket: &Path) -> Result<ContainerListResponse, Status> {
    let mut rt = RuntimeServiceClient::new(channel(socket).await?);
    let sandboxes = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .map_err(|s| from_containerd("listing pods", s))?
        .into_inner()
        .items;
    let mut pods: Vec<Pod> = sandboxes
        .iter()
        .map(|p| Pod {
            id: p.id.clone(),
            name: p
                .metadata
                .as_ref()
                .map(|m| format!("{}/{}", m.namespace, m.name))
                .unwrap_or_default(),
            state: PodSandboxState::try_from(p.state)
                .map(|s| s.as_str_name().trim_start_matches("SANDBOX_").to_string())
                .unwrap_or_else(|_| "UNKNOWN".into()),
            created: p.created_at,
        })
        .collect();
    pods.sort_by_key(|p| p.created);
    let names: HashMap<&str, &str> = pods
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let listed = rt
        .list_containers(ListContainersRequest::default())
        .await
        .map_err(|s| from_containerd("listing containers", s))?
        .into_inner()
        .containers;
    let mut containers = Vec::with_capacity(listed.len());
    for c in listed {
        let mut row = Container {
            id: c.id.clone(),
            name: c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            pod: names
                .get(c.pod_sandbox_id.as_str())
                .copied()
                .unwrap_or_default()
                .to_string(),
            pod_id: c.pod_sandbox_id.clone(),
            image: c
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            state: state_name(c.state),
            started: 0,
            finished: 0,
            exit_code: 0,
        };
        // Gone between the list and its status: listed without them.
        if let Ok(st) = rt
            .container_status(ContainerStatusRequest {
                container_id: c.id.clone(),
                verbose: false,
            })
            .await
            && let Some(st) = st.into_inner().status
        {
            row.started = st.started_at;
            row.finished = st.finished_at;
            row.exit_code = st.exit_code;
            row.state = state_name(st.state);
        }
        containers.push(row);
    }
    containers.sort_by_key(|c| c.started);
    Ok(ContainerListResponse { pods, containers })
}

fn state_name(state: i32) -> String {
    ContainerState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("CONTAINER_").to_string())
        .unwrap_or_else(|_| "UNKNOWN".into())
}

/// The CRI log file of the container `id` (its full id or a prefix that
/// names one container).
pub async fn log_path(socket: &Path, id: &str) -> Result<PathBuf, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument(
            "name a container (its id or an id prefix)",
        ));
    }
    let mut rt = RuntimeServiceClient::new(channel(socket).await?);
    let all = rt
        .list_containers(ListContainersRequest::default())
        .await
        .map_err(|s| from_containerd("listing containers", s))?
        .into_inner()
        .containers;
    let found: Vec<&str> = all
        .iter()
        .map(|c| c.id.as_str())
        .filter(|c| c.starts_with(id))
        .collect();
    let full = match found[..] {
        [one] => one.to_string(),
        [] => return Err(Status::not_found(format!("no container {id}"))),
        _ => {
            return Err(Status::invalid_argument(format!(
                "{id} names {} containers: give more of the id",
                found.len()
            )));
        }
    };
    let st = rt
        .container_status(ContainerStatusRequest {
            container_id: full.clone(),
            verbose: false,
        })
        .await
        .map_err(|s| from_containerd("container status", s))?
        .into_inner()
        .status
        .ok_or_else(|| Status::not_found(format!("no status for container {full}")))?;
    if st.log_path.is_empty() {
        return Err(Status::not_found(format!(
            "container {full} has no log file"
        )));
    }
    Ok(PathBuf::from(st.log_path))
}
