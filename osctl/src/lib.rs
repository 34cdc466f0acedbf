//! `osctl`: the MaticOS operator CLI, as a library.
//!
//! Owns the operator's side of the machine API: the command line
//! ([`args`], [`cli`]; `config …`'s in [`config_args`]), what each command does (`commands`, private), the
//! mutual-TLS gRPC client and its error sentences ([`client`]), the client
//! config ([`config`]), the rollout of a release across nodes
//! (`upgrade`, private), the API's PKI ([`pki`], also used by the agent's
//! tests to make good and bad certificates), the image to install
//! ([`image`]) and the rendering of answers ([`output`]).
//!
//! Must never: decide what a caller may do (the agent's role table does;
//! osctl only names roles when it issues certificates), keep state about
//! nodes between runs (the config file is the operator's, written only by
//! `gen-certs`), trust a node it cannot verify against the context's CA,
//! or send a node an image it has not checked whole first. A failure is a
//! sentence and an exit code, never a panic or a backtrace.

pub mod args;
pub mod cli;
pub mod client;
mod commands;
pub mod config;
pub mod config_args;
pub mod image;
pub mod output;
pub mod pki;
pub mod release;
mod upgrade;

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
