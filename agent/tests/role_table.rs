//! Every RPC of the machine API has an explicit row in the agent's role
//! table ([`matic_agent::auth::RULES`]), and every row names an RPC that
//! exists. The RPCs are read from the .proto itself (compiled here with
//! protox, as proto/build.rs does), not from a list kept by hand, so a new
//! RPC without a rule fails here instead of quietly becoming admin-only, and
//! a renamed one cannot leave a dead row behind.

use matic_agent::auth::{RULES, allowed_roles};

/// The service's HTTP path prefix (`/package.Service/`) and its RPC names,
/// from proto/proto/matic/machine/v1/machine.proto.
fn proto_rpcs() -> (String, Vec<String>) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/proto");
    let fds = protox::compile(["matic/machine/v1/machine.proto"], [root])
        .expect("the machine API's .proto compiles");
    let mut found = Vec::new();
    for file in &fds.file {
        for service in &file.service {
            let prefix = format!("/{}.{}/", file.package(), service.name());
            let methods = service.method.iter().map(|m| m.name().to_owned()).collect();
            found.push((prefix, methods));
        }
    }
    assert_eq!(found.len(), 1, "one service expected: {found:?}");
    found.pop().unwrap()
}

#[test]
fn every_rpc_of_the_proto_has_a_role_table_row() {
    let (prefix, rpcs) = proto_rpcs();
    assert!(
        ["Version", "Install", "Logs"]
            .iter()
            .all(|m| rpcs.iter().any(|r| r == m)),
        "the proto was not read: {rpcs:?}"
    );
    let rows = |m: &str| RULES.iter().filter(|(name, _)| *name == m).count();
    let missing: Vec<&String> = rpcs.iter().filter(|m| rows(m) == 0).collect();
    assert!(
        missing.is_empty(),
        "RPCs without a row in agent/src/auth.rs RULES (say who may call them): {missing:?}"
    );
    for m in &rpcs {
        assert_eq!(rows(m), 1, "{m} has more than one row");
    }
    for (name, roles) in RULES {
        assert!(
            rpcs.iter().any(|m| m == name),
            "RULES row {name:?} names no RPC of the proto ({rpcs:?})"
        );
        // The table applies at the proto's own path for the RPC (a wrong
        // service prefix would make every call admin-only).
        assert_eq!(allowed_roles(&format!("{prefix}{name}")), *roles, "{name}");
    }
}

/// Workloads: every role may see images, pods, containers and their logs;
/// only an admin may add an image (it can then run in any pod).
#[test]
fn workloads_rows() {
    use matic_agent::auth::Role;
    let (prefix, _) = proto_rpcs();
    let all = [Role::Reader, Role::Operator, Role::Admin];
    for m in ["ImageList", "ContainerList", "ContainerLogs"] {
        assert_eq!(allowed_roles(&format!("{prefix}{m}")), &all[..], "{m}");
    }
    assert_eq!(
        allowed_roles(&format!("{prefix}ImageImport")),
        &[Role::Admin][..]
    );
}
