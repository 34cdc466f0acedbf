//! The `cri` check: the container runtime answers the CRI v1 `Version`
//! call on the KubeletConfiguration's socket, as kubelet's first call to it
//! does. containerd may still be starting (init starts kubelet right after
//! it), so the call is retried once a second until the wait is over.
//!
//! Must never: call anything on the runtime that changes it.

use std::path::Path;
use std::time::{Duration, Instant};

use matic_cri::RuntimeServiceClient;
use matic_cri::v1::{VersionRequest, VersionResponse};

/// One `Version` call, bounded by `timeout`.
async fn version(socket: &Path, timeout: Duration) -> Result<VersionResponse, String> {
    let channel = matic_cri::connect(socket, timeout).await.map_err(|e| {
        match std::error::Error::source(&e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        }
    })?;
    let v = RuntimeServiceClient::new(channel)
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .map_err(|s| format!("Version on {}: {}", socket.display(), s.message()))?
        .into_inner();
    if v.runtime_api_version != "v1" {
        return Err(format!(
            "{}: runtime API {:?}, expected \"v1\"",
            socket.display(),
            v.runtime_api_version
        ));
    }
    Ok(v)
}

/// Asks the runtime at `socket` for its version until it answers or `wait`
/// is over; the last failure when it never did.
pub async fn check(socket: &Path, wait: Duration) -> Result<VersionResponse, String> {
    let until = Instant::now() + wait;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let left = until.saturating_duration_since(Instant::now());
        match version(
            socket,
            left.clamp(Duration::from_millis(200), Duration::from_secs(5)),
        )
        .await
        {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= until => {
                return Err(format!(
                    "{e} (no answer in {} s, {tries} tries)",
                    wait.as_secs()
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1).min(left)).await,
        }
    }
}
