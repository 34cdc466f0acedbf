//! The API client, as a library: how osctl reaches a node and how it
//! explains what went wrong.
//!
//! Owns: the TLS 1.3 client configuration from a context's PEM files
//! ([`credentials`]), node addresses ([`target`]), the connection to one node
//! ([`connect`](mod@connect)) and to several at once ([`fanout`]), the failures phrased
//! for a person ([`error`]) and the translation of TLS, network and gRPC
//! failures into them ([`explain`]).
//!
//! Must never: print anything (the CLI decides what reaches the terminal),
//! retry a call (a retried Reboot or Install is not the same call), or
//! accept a server it cannot verify against the context's CA (TLS 1.3 only,
//! no "insecure" switch).
//!
//! The items are re-exported here, so `osctl::client::connect`,
//! `osctl::client::ClientError`, ... stay the paths the agent's tests,
//! benchmarks and docs/osctl.md ("Library API") use.

pub mod connect;
pub mod credentials;
pub mod error;
pub mod explain;
pub mod fanout;
pub mod target;

pub use connect::{
    CONNECT_TIMEOUT, CONNECTION_WINDOW, Client, Connection, Options, Primed, STREAM_WINDOW, connect,
};
pub use credentials::Credentials;
pub use error::ClientError;
pub use explain::{chain_text, explain_error, explain_status};
pub use fanout::{Fleet, NodeResults};
pub use target::Target;
