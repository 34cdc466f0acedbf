//! Fan-out: one call on every target node at once. Each node gets its own
//! connection; results come back in the order the nodes were given, one
//! `Result` per node, so one dead node never hides the others' answers.
//!
//! Must never stop at the first failure, reorder the nodes, or print: the
//! CLI reports each node's result.

use std::future::Future;

use super::connect::{Connection, Options, connect};
use super::credentials::Credentials;
use super::error::ClientError;

/// Each node's name (as given) and its result, in the order given.
pub type NodeResults<T> = Vec<(String, Result<T, ClientError>)>;

/// The nodes a command runs on and how to reach them.
pub struct Fleet {
    pub targets: Vec<String>,
    pub creds: Credentials,
    pub opts: Options,
}

impl Fleet {
    /// Connect to every target and run `f` on each, concurrently; results in
    /// target order.
    pub async fn each<T, F, Fut>(&self, f: F) -> NodeResults<T>
    where
        F: Fn(String, Connection) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let f = &f;
        let futs = self.targets.iter().map(|t| async move {
            let r = match connect(t, &self.creds, &self.opts).await {
                Ok(c) => f(t.clone(), c).await,
                Err(e) => Err(e),
            };
            (t.clone(), r)
        });
        futures::future::join_all(futs).await
    }
}
