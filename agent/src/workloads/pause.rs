//! The node's pause image in containerd: at start, once containerd
//! answers, the agent imports the archive the root image carries
//! (`--pause-archive`) when containerd's `k8s.io` namespace lacks
//! [`PAUSE_IMAGE`], so the first pod never needs a registry. On
//! `MATIC_STATE`, the image then stays across boots; an upgrade that
//! changes the archive changes the name (its tag), and is imported anew.
//!
//! Must never: block the API (it runs in its own task) or retry forever
//! (it gives up after [`WAIT`], logging why).
use std::path::PathBuf;
use std::time::Duration;

use matic_containerd::images::GetImageRequest;
use matic_containerd::images::images_client::ImagesClient;
use matic_contract::workloads::PAUSE_IMAGE;

use super::images::k8s;
use super::{channel, import};

/// How long containerd may take to answer after the agent starts.
pub const WAIT: Duration = Duration::from_secs(300);

/// Imports the pause image unless containerd has it; logs the outcome.
pub async fn ensure(socket: PathBuf, archive: PathBuf) {
    if !archive.exists() {
        eprintln!(
            "matic-agent: no pause image archive at {}: pods need {PAUSE_IMAGE} from elsewhere",
            archive.display()
        );
        return;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let ch = loop {
        match channel(&socket).await {
            Ok(ch) => break ch,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                eprintln!("matic-agent: pause image not imported: {}", e.message());
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let req = match k8s(
        GetImageRequest {
            name: PAUSE_IMAGE.to_string(),
        },
        None,
    ) {
        Ok(req) => req,
        Err(e) => {
            eprintln!("matic-agent: pause image not imported: {}", e.message());
            return;
        }
    };
    if ImagesClient::new(ch.clone()).get(req).await.is_ok() {
        return;
    }
    // The channel that answered: the import does not dial again.
    match import::import_file(&ch, archive.clone()).await {
        Ok(names) => eprintln!(
            "matic-agent: imported {} from {}",
            names.join(", "),
            archive.display()
        ),
        Err(e) => eprintln!(
            "matic-agent: importing {}: {}",
            archive.display(),
            e.message()
        ),
    }
}
