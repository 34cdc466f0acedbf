//! Why a node did not pass: [`Failure`], the check it failed and the
//! sentence a person reads. The report prints the check's word (its
//! `CHECK` column, the JSON `check` field) and the sentence.
//!
//! Owns the vocabulary only: deciding which check failed belongs to the
//! wait ([`super::wait`]), the driver ([`super::node`]) and the hooks
//! ([`super::hook`]). Must never lose the node's own words (the agent's
//! error, a health check's detail, a hook's last line of output).

use std::fmt;

/// Which hook ran: `--before-node` or `--after-node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Before,
    After,
}

impl Hook {
    /// The flag's name without dashes, as the report and `MATIC_HOOK` say it.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Before => "before-node",
            Hook::After => "after-node",
        }
    }
}

/// The check a node failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Its state could not be read, or it did not answer again in time.
    Unreachable,
    /// It answered but refused a call that reads its state (a role
    /// without the right, an agent error).
    Api,
    /// The install was refused or broke off (the slot is left unbootable).
    Install,
    /// The reboot (or rollback) call was refused.
    Reboot,
    /// It still answered from the boot before the reboot.
    NotRebooted,
    /// It came back from the other slot: the new one was given up (its
    /// tries ran out) or the boot chose the old one.
    RolledBack,
    /// It runs another release than the one expected from that slot.
    WrongRelease,
    /// Its boot was not marked successful (while its checks passed).
    NotMarked,
    /// A health check failed, by name.
    Health(String),
    /// Healthy, but not yet for the whole `--healthy-for` when the
    /// `--timeout` passed.
    HealthyFor,
    /// A hook exited non-zero, or could not run.
    Hook(Hook),
    /// Not rolled back: it does not run the new release (a rollback would
    /// boot it).
    NotOnNew,
}

impl Check {
    /// One word (or `health:NAME`, `hook:before-node`) for tables and JSON.
    pub fn word(&self) -> String {
        match self {
            Check::Unreachable => "unreachable".into(),
            Check::Api => "api".into(),
            Check::Install => "install".into(),
            Check::Reboot => "reboot".into(),
            Check::NotRebooted => "not-rebooted".into(),
            Check::RolledBack => "rolled-back".into(),
            Check::WrongRelease => "wrong-release".into(),
            Check::NotMarked => "boot-not-marked".into(),
            Check::Health(name) => format!("health:{name}"),
            Check::HealthyFor => "healthy-for".into(),
            Check::Hook(h) => format!("hook:{}", h.name()),
            Check::NotOnNew => "not-on-new-release".into(),
        }
    }

    /// Whether a node that failed this check may be running the new
    /// release, so that `--rollback-on-failure` has something to undo.
    /// `Rollback` boots the slot the node is *not* running, so it is wrong
    /// for a node still on its old slot: after a refused install or reboot,
    /// a node that never rebooted, or one that already came back on its old
    /// slot (each would boot the new release). Nor after a failed
    /// `--before-node` hook (the node was not touched); a failed
    /// `--after-node` hook is no verdict on the release: the node passed.
    /// (The driver checks again before it rolls back: [`Check::NotOnNew`].)
    pub fn rollback_wanted(&self) -> bool {
        matches!(
            self,
            Check::Unreachable
                | Check::WrongRelease
                | Check::NotMarked
                | Check::Health(_)
                | Check::HealthyFor
        )
    }
}

/// A failed check and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub check: Check,
    /// The sentence after the node's name.
    pub detail: String,
}

impl Failure {
    pub fn new(check: Check, detail: impl Into<String>) -> Self {
        Failure {
            check,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check.word(), self.detail)
    }
}
