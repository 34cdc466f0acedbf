//! `matic-agent`: the node's API server. The process is
//! [`matic_agent::daemon`]; this file only names the binary.
#![deny(unsafe_code)]

fn main() {
    matic_agent::daemon::main()
}
