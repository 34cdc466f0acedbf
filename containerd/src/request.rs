//! The gRPC metadata containerd reads on every call: the namespace
//! (`containerd-namespace`; the CRI's is `k8s.io`) and, while content is
//! written, the lease that keeps it from garbage collection
//! (`containerd-lease`) until an image refers to it.
//!
//! Must never: guess a namespace: every call names one.
use tonic::Request;
use tonic::metadata::MetadataValue;

/// The namespace header.
pub const NAMESPACE_HEADER: &str = "containerd-namespace";
/// The lease header.
pub const LEASE_HEADER: &str = "containerd-lease";

/// A name containerd rejects in a header (not visible ASCII).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHeader(pub String);

impl std::fmt::Display for BadHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} cannot be sent as containerd metadata", self.0)
    }
}

impl std::error::Error for BadHeader {}

/// `msg` as a request in `namespace`, under `lease` when given.
pub fn in_namespace<T>(
    msg: T,
    namespace: &str,
    lease: Option<&str>,
) -> Result<Request<T>, BadHeader> {
    let mut req = Request::new(msg);
    let ns: MetadataValue<_> = namespace
        .parse()
        .map_err(|_| BadHeader(namespace.to_string()))?;
    req.metadata_mut().insert(NAMESPACE_HEADER, ns);
    if let Some(lease) = lease {
        let l: MetadataValue<_> = lease.parse().map_err(|_| BadHeader(lease.to_string()))?;
        req.metadata_mut().insert(LEASE_HEADER, l);
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_set_and_bad_values_refused() {
        let r = in_namespace((), "k8s.io", Some("matic-import-1")).unwrap();
        assert_eq!(r.metadata().get(NAMESPACE_HEADER).unwrap(), "k8s.io");
        assert_eq!(r.metadata().get(LEASE_HEADER).unwrap(), "matic-import-1");
        let r = in_namespace((), "default", None).unwrap();
        assert!(r.metadata().get(LEASE_HEADER).is_none());
        assert_eq!(
            in_namespace((), "a\nb", None).unwrap_err(),
            BadHeader("a\nb".into())
        );
    }
}
