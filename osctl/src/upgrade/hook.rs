//! `--before-node CMD` / `--after-node CMD`: the operator's command, run
//! on the operator's machine through `sh -c` (so `kubectl drain
//! "$MATIC_NODE_HOSTNAME" --ignore-daemonsets` works as typed), with the
//! node in its environment:
//!
//! - `MATIC_NODE`: the node as given (`--nodes` or the context);
//! - `MATIC_NODE_ENDPOINT`: its API address, `host:port`;
//! - `MATIC_NODE_HOSTNAME`: its hostname as the node reports it (the
//!   Kubernetes node name, usually); empty when it was not read;
//! - `MATIC_HOOK`: `before-node` or `after-node`;
//! - `MATIC_RELEASE_VERSION`: the version being rolled out.
//!
//! Its output is kept off osctl's stdout (which may be JSON lines): both
//! streams are collected and handed back, the last line naming why a
//! failing hook failed.
//!
//! Must never run a hook on a node (there is no shell there) or treat a
//! hook that could not start, was killed or exited non-zero as passed.

use std::process::Stdio;

use super::failure::{Check, Failure, Hook};

/// The node a hook runs for.
#[derive(Debug, Clone, Default)]
pub struct HookEnv {
    pub node: String,
    pub endpoint: String,
    pub hostname: String,
    pub release_version: String,
}

/// Run `cmd` through `sh -c`; its combined output on success, a
/// [`Check::Hook`] failure naming its exit status and its last line
/// otherwise.
pub async fn run(hook: Hook, cmd: &str, env: &HookEnv) -> Result<String, Failure> {
    let fail = |detail: String| Failure::new(Check::Hook(hook), detail);
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("MATIC_NODE", &env.node)
        .env("MATIC_NODE_ENDPOINT", &env.endpoint)
        .env("MATIC_NODE_HOSTNAME", &env.hostname)
        .env("MATIC_HOOK", hook.name())
        .env("MATIC_RELEASE_VERSION", &env.release_version)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| fail(format!("--{} {cmd:?} could not start: {e}", hook.name())))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        return Ok(text);
    }
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    let status = match out.status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "was killed by a signal".to_string(),
    };
    Err(fail(format!(
        "--{} {cmd:?} {status}{}",
        hook.name(),
        last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HookEnv {
        HookEnv {
            node: "n1".into(),
            endpoint: "127.0.0.1:50051".into(),
            hostname: "worker-1".into(),
            release_version: "2.0".into(),
        }
    }

    #[tokio::test]
    async fn the_node_is_in_the_environment() {
        let out = run(
            Hook::Before,
            "echo $MATIC_NODE $MATIC_NODE_ENDPOINT $MATIC_NODE_HOSTNAME $MATIC_HOOK $MATIC_RELEASE_VERSION",
            &env(),
        )
        .await
        .unwrap();
        assert_eq!(out, "n1 127.0.0.1:50051 worker-1 before-node 2.0\n");
    }

    #[tokio::test]
    async fn a_failing_hook_says_its_status_and_last_line() {
        let f = run(
            Hook::After,
            "echo draining; echo 'error: node not found' >&2; exit 3",
            &env(),
        )
        .await
        .unwrap_err();
        assert_eq!(f.check, Check::Hook(Hook::After));
        assert_eq!(
            f.detail,
            "--after-node \"echo draining; echo 'error: node not found' >&2; exit 3\" \
             exited with status 3: error: node not found"
        );
        let f = run(Hook::Before, "kill -9 $$", &env()).await.unwrap_err();
        assert!(f.detail.ends_with("was killed by a signal"), "{}", f.detail);
    }
}
