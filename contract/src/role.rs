//! The API roles: which certificate Organization value grants which role.
//! The agent reads them from client certificates; `osctl` writes them into
//! the certificates it issues. Which RPC needs which role is the agent's
//! (`agent/src/auth.rs`).
//!
//! Must never: accept anything but the exact Organization value from a
//! certificate ([`Role::from_org`]); the short names are for the CLI only.

use core::fmt;
use core::str::FromStr;

/// A role a client certificate can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// Reader plus reboot, shutdown and rollback.
    Operator,
    /// Read-only calls.
    Reader,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Reader];

    /// The Subject Organization value that grants the role, e.g. `os:admin`.
    pub fn org(self) -> &'static str {
        match self {
            Role::Admin => "os:admin",
            Role::Operator => "os:operator",
            Role::Reader => "os:reader",
        }
    }

    /// The role an Organization value grants (exact match).
    pub fn from_org(org: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.org() == org)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.org())
    }
}

/// A name that is no role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownRole;

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected os:admin, os:operator or os:reader")
    }
}

impl core::error::Error for UnknownRole {}

/// For the CLI: `os:admin` as well as the short `admin`.
impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        let short = s.strip_prefix("os:").unwrap_or(s);
        Role::ALL
            .into_iter()
            .find(|r| &r.org()[3..] == short)
            .ok_or(UnknownRole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn organization_values() {
        for r in Role::ALL {
            assert_eq!(Role::from_org(r.org()), Some(r));
            assert_eq!(r.org().parse::<Role>(), Ok(r));
            assert_eq!(r.org()["os:".len()..].parse::<Role>(), Ok(r));
            assert_eq!(r.to_string(), r.org());
        }
        assert_eq!(Role::Admin.org(), "os:admin");
        assert_eq!(Role::Operator.org(), "os:operator");
        assert_eq!(Role::Reader.org(), "os:reader");
        // Certificates carry the exact value only.
        assert_eq!(Role::from_org("admin"), None);
        assert_eq!(Role::from_org("OS:ADMIN"), None);
        assert_eq!("os:root".parse::<Role>(), Err(UnknownRole));
        assert_eq!("".parse::<Role>(), Err(UnknownRole));
        assert_eq!("os:".parse::<Role>(), Err(UnknownRole));
    }
}
