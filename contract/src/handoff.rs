//! The service log handoff: when init starts `matic-agent`, the agent gets
//! the read ends of the other services' log pipes as extra descriptors, so
//! that it stamps every line and keeps it in the boot history
//! (docs/interfaces.md, "Service log handoff"; docs/init.md, "Logs").
//!
//! The layout: descriptor [`FIRST_FD`] + k is the pipe of [`HANDED`]\[k\],
//! which is init's service table in order without the agent itself. A
//! service init could not make a pipe for gets `/dev/null` there (the
//! agent reads its end at once), so the numbers never shift. The agent's
//! own output stays init's: an agent reading its own stdout would
//! deadlock on a full pipe.
//!
//! Must never: hold anything but the layout (no I/O), or change without
//! init's table (`matic_init::table`'s tests check both agree).

/// The service that receives the pipes.
pub const AGENT: &str = "matic-agent";

/// The first descriptor handed (after stdin, stdout and stderr).
pub const FIRST_FD: i32 = 3;

/// The services whose pipes are handed, in descriptor order.
pub const HANDED: [&str; 2] = ["containerd", "kubelet"];

/// The descriptor holding service `name`'s pipe in the agent, if handed.
pub fn fd_of(name: &str) -> Option<i32> {
    let k = HANDED.iter().position(|h| *h == name)?;
    Some(FIRST_FD + k as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(fd_of("containerd"), Some(3));
        assert_eq!(fd_of("kubelet"), Some(4));
        assert_eq!(fd_of(AGENT), None, "the agent never reads its own pipe");
        assert_eq!(fd_of("nope"), None);
    }
}
