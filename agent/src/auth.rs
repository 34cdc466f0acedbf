//! Authorization: roles come from the client certificate's Subject
//! Organization values (`os:admin`, `os:operator`, `os:reader`), and one
//! table ([`RULES`]) says which roles may call each RPC. An RPC missing from
//! the table is admin-only. Enforced by [`AuthLayer`], a tower layer in front
//! of every service, so no handler can forget it.
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::codegen::http;

/// A role a client certificate can carry (the contract's, shared with osctl).
pub use matic_contract::role::Role;

const SERVICE: &str = "/matic.machine.v1.MachineService/";
const READ: &[Role] = &[Role::Reader, Role::Operator, Role::Admin];
const OPERATE: &[Role] = &[Role::Operator, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];

/// Every RPC and the roles allowed to call it (method name within
/// `matic.machine.v1.MachineService`). Anything not listed is admin-only.
pub const RULES: &[(&str, &[Role])] = &[
    ("Version", READ),
    ("BootStatus", READ),
    ("ServiceList", READ),
    ("Logs", READ),
    ("Dmesg", READ),
    ("Health", READ),
    ("Boots", READ),
    ("BootTimeline", READ),
    ("Reboot", OPERATE),
    ("Shutdown", OPERATE),
    ("Rollback", OPERATE),
    ("ServiceRestart", ADMIN),
    ("Install", ADMIN),
    // Machine configuration: reading it is for every role (the bootstrap
    // token is redacted for all but admins); changing it is an admin's.
    ("ConfigGet", READ),
    ("ConfigHistory", READ),
    ("ConfigDiff", READ),
    ("ConfigApply", ADMIN),
    ("ConfigConfirm", ADMIN),
    ("ConfigRollback", ADMIN),
    ("Time", READ),
    // Workloads: seeing what runs is for every role; adding an image to the
    // node (it can then run as any pod) is an admin's.
    ("ImageList", READ),
    ("ContainerList", READ),
    ("ContainerLogs", READ),
    ("ImageImport", ADMIN),
];

/// The roles allowed to call the RPC at HTTP path `path`.
pub fn allowed_roles(path: &str) -> &'static [Role] {
    path.strip_prefix(SERVICE)
        .and_then(|m| RULES.iter().find(|(name, _)| *name == m))
        .map_or(ADMIN, |(_, roles)| roles)
}

/// The authenticated client of one connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Subject CN, for logs.
    pub name: Arc<str>,
    pub roles: Arc<[Role]>,
    /// Set on a connection over the connection cap: every call is refused
    /// with `RESOURCE_EXHAUSTED` and this sentence until it is closed.
    pub refused: Option<Arc<str>>,
}

impl Peer {
    /// Reads roles and name from the (already verified) client certificate.
    /// Unknown Organization values are ignored; a certificate without a
    /// known one may call nothing.
    pub fn from_cert(addr: SocketAddr, der: &[u8]) -> Peer {
        let (mut name, mut roles) = (String::new(), Vec::new());
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
            let subject = cert.subject();
            name = subject
                .iter_common_name()
                .filter_map(|a| a.as_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            roles = subject
                .iter_organization()
                .filter_map(|a| a.as_str().ok())
                .filter_map(Role::from_org)
                .collect();
        }
        Peer {
            addr,
            name: name.into(),
            roles: roles.into(),
            refused: None,
        }
    }

    /// Whether the certificate carries `os:admin` (the admin lane and reserves).
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// Ok when one of the peer's roles may call `path`; otherwise the
    /// PERMISSION_DENIED status naming the roles needed.
    pub fn authorize(&self, path: &str) -> Result<(), Status> {
        let allowed = allowed_roles(path);
        if self.roles.iter().any(|r| allowed.contains(r)) {
            return Ok(());
        }
        let method = path.rsplit('/').next().unwrap_or(path);
        let needs = allowed
            .iter()
            .map(|r| r.org())
            .collect::<Vec<_>>()
            .join(" or ");
        let has = if self.roles.is_empty() {
            "no role".to_owned()
        } else {
            self.roles
                .iter()
                .map(|r| r.org())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Status::permission_denied(format!(
            "permission denied: {method} needs {needs} (your certificate has {has})"
        )))
    }
}

/// Tower layer enforcing [`RULES`] on every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthLayer;

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, std::future::Ready<Result<http::Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let verdict = match req.extensions().get::<Peer>() {
            Some(Peer {
                refused: Some(why), ..
            }) => Err(Status::resource_exhausted(why.to_string())),
            Some(peer) => peer.authorize(path).inspect_err(|_| {
                eprintln!(
                    "matic-agent: denied {path} to {} ({}) roles {:?}",
                    peer.name, peer.addr, peer.roles
                );
            }),
            None => Err(Status::unauthenticated(
                "no client certificate on this connection",
            )),
        };
        match verdict {
            Ok(()) => futures::future::Either::Left(self.inner.call(req)),
            Err(status) => {
                futures::future::Either::Right(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(roles: &[Role]) -> Peer {
        Peer {
            addr: "127.0.0.1:1".parse().unwrap(),
            name: "t".into(),
            roles: roles.into(),
            refused: None,
        }
    }

    #[test]
    fn table() {
        let p = |m: &str| format!("{SERVICE}{m}");
        let reader = peer(&[Role::Reader]);
        let operator = peer(&[Role::Operator]);
        let admin = peer(&[Role::Admin]);
        for m in [
            "Install",
            "ServiceRestart",
            "Reboot",
            "Shutdown",
            "Rollback",
            "ConfigApply",
            "ConfigConfirm",
            "ConfigRollback",
            "NotYetInvented",
        ] {
            let e = reader.authorize(&p(m)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied);
            assert!(
                e.message().contains(m) && e.message().contains("os:admin"),
                "{}",
                e.message()
            );
            assert!(admin.authorize(&p(m)).is_ok());
        }
        for m in ["Reboot", "Shutdown", "Rollback", "Version", "Logs"] {
            assert!(operator.authorize(&p(m)).is_ok(), "{m}");
        }
        // The boot history is for reading: every role may.
        for m in ["Boots", "BootTimeline", "Logs", "Dmesg"] {
            for who in [&reader, &operator, &admin] {
                assert!(who.authorize(&p(m)).is_ok(), "{m} {:?}", who.roles);
            }
        }
        // Configuration: read by all, changed by admins only (not operators).
        for m in ["ConfigGet", "ConfigHistory", "ConfigDiff", "Time"] {
            for who in [&reader, &operator, &admin] {
                assert!(who.authorize(&p(m)).is_ok(), "{m} {:?}", who.roles);
            }
        }
        for m in ["ConfigApply", "ConfigConfirm", "ConfigRollback"] {
            assert!(operator.authorize(&p(m)).is_err(), "{m}");
        }
        let e = operator.authorize(&p("Install")).unwrap_err();
        assert_eq!(
            e.message(),
            "permission denied: Install needs os:admin (your certificate has os:operator)"
        );
        let e = reader.authorize(&p("Reboot")).unwrap_err();
        assert!(
            e.message().contains("Reboot needs os:operator or os:admin"),
            "{}",
            e.message()
        );
        assert!(peer(&[]).authorize(&p("Version")).is_err());
        // Another service's method of the same name is not covered by the table.
        assert!(reader.authorize("/other.Service/Version").is_err());
    }
}
