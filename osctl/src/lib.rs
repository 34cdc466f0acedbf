//! `osctl`: the MaticOS operator CLI as a library: the API's PKI
//! ([`pki`], also used by the agent's tests to make good and bad
//! certificates), the client config ([`config`]), the mutual-TLS gRPC client
//! with human error messages ([`client`]) and the command implementations
//! ([`cli`], [`output`], [`image`]).

pub mod cli;
pub mod client;
pub mod config;
pub mod image;
pub mod output;
pub mod pki;

/// Install ring as the process-wide rustls crypto provider (idempotent).
/// Every TLS user in this crate (the API client and reqwest) relies on it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A self-deleting temporary directory for unit tests.
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "osctl-test-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
