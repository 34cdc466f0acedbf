//! Rendering of `osctl images` and `osctl containers`, as tables and
//! `-o json`. Pure functions over the API messages.
//!
//! Must never show a time in the viewer's local zone (UTC, marked `Z`) or
//! a started time for a container that has not started (`-`).

use matic_proto::v1::{ContainerListResponse, ImageListResponse};
use serde_json::{Value, json};

use super::boots::utc;
use super::short_hash;

pub const IMAGES_HEADERS: &[&str] = &["NODE", "IMAGE", "DIGEST", "SIZE"];

/// `sha256:0123456789ab` (the digest's first 12 hex digits).
fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.chars().take(12).collect::<String>()),
        None => short_hash(d),
    }
}

/// Bytes in binary units: `512 B`, `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn images_rows(node: &str, r: &ImageListResponse) -> Vec<Vec<String>> {
    r.images
        .iter()
        .map(|i| {
            vec![
                node.to_string(),
                i.name.clone(),
                short_digest(&i.digest),
                bytes(i.size),
            ]
        })
        .collect()
}

pub fn images_json(r: &ImageListResponse) -> Value {
    json!({
        "images": r.images.iter().map(|i| json!({
            "name": i.name,
            "digest": i.digest,
            "size": i.size,
            "media_type": i.media_type,
        })).collect::<Vec<_>>(),
    })
}

pub const CONTAINERS_HEADERS: &[&str] = &[
    "NODE", "ID", "POD", "NAME", "IMAGE", "STATE", "STARTED", "EXIT",
];

/// `2026-11-30 03:00:00Z` for Unix ns; `-` for 0.
fn when(unix_ns: i64) -> String {
    if unix_ns <= 0 {
        return "-".into();
    }
    utc((unix_ns / 1_000_000) as u64).unwrap_or_else(|| "-".into())
}

/// One row per pod (its sandbox, NAME `-`, IMAGE `(pod)`) and one per
/// container, each container after its pod.
pub fn containers_rows(node: &str, r: &ContainerListResponse) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let row =
        |id: &str, pod: &str, name: &str, image: &str, state: &str, started: i64, exit: String| {
            vec![
                node.to_string(),
                id.chars().take(12).collect(),
                pod.to_string(),
                name.to_string(),
                image.to_string(),
                state.to_string(),
                when(started),
                exit,
            ]
        };
    for p in &r.pods {
        rows.push(row(
            &p.id,
            &p.name,
            "-",
            "(pod)",
            &p.state,
            p.created,
            "-".into(),
        ));
        for c in r.containers.iter().filter(|c| c.pod_id == p.id) {
            let exit = if c.state == "EXITED" {
                c.exit_code.to_string()
            } else {
                "-".into()
            };
            rows.push(row(
                &c.id, &p.name, &c.name, &c.image, &c.state, c.started, exit,
            ));
        }
    }
    // Containers whose pod was not listed (gone between the two calls).
    for c in r
        .containers
        .iter()
        .filter(|c| !r.pods.iter().any(|p| p.id == c.pod_id))
    {
        rows.push(row(
            &c.id,
            &c.pod,
            &c.name,
            &c.image,
            &c.state,
            c.started,
            c.exit_code.to_string(),
        ));
    }
    rows
}

pub fn containers_json(r: &ContainerListResponse) -> Value {
    json!({
        "pods": r.pods.iter().map(|p| json!({
            "id": p.id,
            "name": p.name,
            "state": p.state,
            "created_unix_ns": p.created,
        })).collect::<Vec<_>>(),
        "containers": r.containers.iter().map(|c| json!({
            "id": c.id,
            "name": c.name,
            "pod_id": c.pod_id,
            "pod": c.pod,
            "image": c.image,
            "state": c.state,
            "started_unix_ns": c.started,
            "finished_unix_ns": c.finished,
            "exit_code": c.exit_code,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use matic_proto::v1::{Container, Image, Pod};

    #[test]
    fn image_rows_and_json() {
        let r = ImageListResponse {
            images: vec![Image {
                name: "localhost/matic/pause:1".into(),
                digest: format!("sha256:{}", "ab".repeat(32)),
                size: 3 * 1024 * 1024 / 2,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            }],
        };
        assert_eq!(
            images_rows("n1", &r),
            [[
                "n1",
                "localhost/matic/pause:1",
                "sha256:abababababab",
                "1.5 MiB"
            ]]
        );
        assert_eq!(images_json(&r)["images"][0]["size"], 1_572_864);
        assert_eq!(bytes(512), "512 B");
    }

    #[test]
    fn containers_follow_their_pod() {
        let r = ContainerListResponse {
            pods: vec![Pod {
                id: "p".repeat(64),
                name: "ns/web".into(),
                state: "READY".into(),
                created: 1_796_000_461_000_000_000,
            }],
            containers: vec![Container {
                id: "c".repeat(64),
                name: "app".into(),
                pod_id: "p".repeat(64),
                pod: "ns/web".into(),
                image: "localhost/matic/workload:1".into(),
                state: "EXITED".into(),
                started: 1_796_000_462_000_000_000,
                finished: 1_796_000_463_000_000_000,
                exit_code: 3,
            }],
        };
        let rows = containers_rows("n1", &r);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], "pppppppppppp");
        assert_eq!(rows[0][4], "(pod)");
        assert_eq!(rows[1][3], "app");
        assert_eq!(rows[1][6], "2026-11-30 01:01:02Z");
        assert_eq!(rows[1][7], "3");
        assert_eq!(containers_json(&r)["containers"][0]["exit_code"], 3);
    }
}
