//! Parsing and checking documents: a full example is accepted as written,
//! and every field's bad values are refused naming the line, the field and
//! why.

use matic_config::check::{self, Problem};
use matic_config::schema::{Config, SysctlValue};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fy\n-----END CERTIFICATE-----";

/// The example of docs/config.md (kept identical: the test reads the doc).
fn example() -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md")).unwrap();
    let start = doc
        .find("```toml\n")
        .expect("docs/config.md has a toml example")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

#[test]
fn the_documented_example_is_accepted() {
    let c = check::parse(&example()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.hostname.as_deref(), Some("worker-1"));
    assert!(c.network.interfaces.contains_key("eth0"));
    assert_eq!(
        c.sysctls.get("vm.max_map_count"),
        Some(&SysctlValue::Int(262144))
    );
    let k = c.kubelet.as_ref().unwrap();
    assert!(k.enabled);
    // Rendering and reading back gives the same document.
    assert_eq!(check::parse(&c.to_toml()).unwrap(), c);
    assert_eq!(check::parse("version = 1\n").unwrap(), Config::empty());
}

/// The one problem `doc` is refused with.
fn refused(doc: &str) -> Problem {
    let e = check::parse(doc).expect_err(doc);
    assert_eq!(e.0.len(), 1, "{e}");
    e.0[0].clone()
}

fn assert_refused(doc: &str, line: usize, field: &str, why: &str) {
    let p = refused(doc);
    assert_eq!(
        (p.line, p.field.as_str()),
        (line, field),
        "{p} (document:\n{doc})"
    );
    assert!(p.why.contains(why), "{p:?} lacks {why:?}");
}

#[test]
fn syntax_and_schema_errors_name_line_and_field() {
    assert_refused(
        "version = 1\nhostname = \"a\"\nhostnmae = \"b\"\n",
        3,
        "hostnmae",
        "unknown field `hostnmae`",
    );
    assert_refused(
        "version = 1\n[network.interfaces.eth0]\ndhcp = true\nmut = 1500\n",
        4,
        "network.interfaces.eth0.mut",
        "unknown field",
    );
    assert_refused(
        "version = 1\n[network.interfaces.eth0]\ndhcp = true\nmtu = \"big\"\n",
        4,
        "network.interfaces.eth0.mtu",
        "invalid type",
    );
    assert_refused(
        "hostname = \"a\"\n",
        0,
        "version",
        "missing field `version`",
    );
    assert_refused(
        "version = 1\n[network.interfaces.eth0]\naddresses = [\"10.0.0.5/24\"]\nroutes = [{ via = \"10.0.0.1\" }]\n",
        4,
        "network.interfaces.eth0.routes[0].to",
        "missing field `to`",
    );
    let p = refused("version = 1\nhostname = \n");
    assert_eq!(p.line, 2, "{p}");
    assert_refused("version = 2\n", 1, "version", "schema version 2 is unknown");
    assert_refused(
        "version = 1\n[kubelet]\nenabled = false\nlables = {}\n",
        4,
        "kubelet.lables",
        "unknown field",
    );
    let big = format!("version = 1\n#{}\n", "x".repeat(check::MAX_DOCUMENT));
    assert!(refused(&big).why.contains("over the"));
}

#[test]
fn every_field_refuses_bad_values() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("hostname = \"Node-A\"", 2, "hostname", "capitals"),
        ("hostname = \"-a\"", 2, "hostname", "RFC 1123"),
        ("hostname = \"a..b\"", 2, "hostname", "RFC 1123"),
        ("hostname = \"under_score\"", 2, "hostname", "RFC 1123"),
        (
            "[network.interfaces.eth0]\naddresses = [\"10.0.0.5/24\", \"10.0.0.300/24\"]",
            3,
            "network.interfaces.eth0.addresses[1]",
            "not a CIDR",
        ),
        (
            "[network.interfaces.eth0]\naddresses = [\"10.0.0.5/33\"]",
            3,
            "network.interfaces.eth0.addresses[0]",
            "prefix \"33\"",
        ),
        (
            "[network.interfaces.eth0]\naddresses = [\"10.0.0.5\"]",
            3,
            "network.interfaces.eth0.addresses[0]",
            "not a CIDR",
        ),
        (
            "[network.interfaces.eth0]\ndhcp = true\naddresses = [\"10.0.0.5/24\"]",
            4,
            "network.interfaces.eth0.addresses",
            "choose one",
        ),
        (
            "[network.interfaces.eth0]\nmtu = 1500",
            2,
            "network.interfaces.eth0",
            "neither dhcp",
        ),
        (
            "[network.interfaces.eth0]\ndhcp = true\nmtu = 40",
            4,
            "network.interfaces.eth0.mtu",
            "68..=65535",
        ),
        (
            "[network.interfaces.\"a/b\"]\ndhcp = true",
            2,
            "network.interfaces.\"a/b\"",
            "not an interface name",
        ),
        (
            "[network.interfaces.eth0]\naddresses = [\"10.0.0.5/24\"]\nroutes = [{ to = \"10.1.0.0/16\", via = \"fd00::1\" }]",
            4,
            "network.interfaces.eth0.routes[0].via",
            "same IP family",
        ),
        (
            "[network.interfaces.eth0]\naddresses = [\"10.0.0.5/24\"]\nroutes = [{ to = \"everywhere\", via = \"10.0.0.1\" }]",
            4,
            "network.interfaces.eth0.routes[0].to",
            "not a CIDR",
        ),
        (
            "[network.interfaces.eth0]\naddresses = [\"10.0.0.5/24\"]\nroutes = [{ to = \"default\", via = \"gw\" }]",
            4,
            "network.interfaces.eth0.routes[0].via",
            "not an IP",
        ),
        (
            "[network]\nnameservers = [\"10.0.0.2\", \"dns.example\"]",
            3,
            "network.nameservers[1]",
            "not an IP",
        ),
        (
            "[network]\nnameservers = [\"1.1.1.1\", \"1.0.0.1\", \"8.8.8.8\", \"9.9.9.9\"]",
            3,
            "network.nameservers",
            "at most 3",
        ),
        (
            "[network]\nsearch = [\"ok.example\", \"bad_domain\"]",
            3,
            "network.search[1]",
            "RFC 1123",
        ),
        (
            "[time]\nntp = [\"pool.ntp.org\", \"bad host\"]",
            3,
            "time.ntp[1]",
            "RFC 1123",
        ),
        (
            "[sysctls]\n\"kernel.modules_disabled\" = 1",
            3,
            "sysctls.\"kernel.modules_disabled\"",
            "not an allowed sysctl",
        ),
        (
            "[sysctls]\n\"vm.max_map_count\" = \"lots\"",
            3,
            "sysctls.\"vm.max_map_count\"",
            "not a value",
        ),
        (
            "[sysctls]\n\"net.ipv4.ip_local_port_range\" = \"\"",
            3,
            "sysctls.\"net.ipv4.ip_local_port_range\"",
            "not a value",
        ),
        (
            "[containerd]\nsandbox_image = \"has space\"",
            3,
            "containerd.sandbox_image",
            "image reference",
        ),
        (
            "[containerd]\nextra_ca = [\"not pem\"]",
            3,
            "containerd.extra_ca[0]",
            "PEM",
        ),
        (
            "[containerd.mirrors.\"docker.io\"]\nendpoints = [\"ftp://mirror\"]",
            3,
            "containerd.mirrors.\"docker.io\".endpoints[0]",
            "scheme \"ftp\"",
        ),
        (
            "[containerd.mirrors.\"docker.io\"]\nendpoints = []",
            3,
            "containerd.mirrors.\"docker.io\".endpoints",
            "at least one",
        ),
        (
            "[containerd.mirrors.\"bad host\"]\nendpoints = [\"https://m\"]",
            2,
            "containerd.mirrors.\"bad host\"",
            "registry",
        ),
        (
            "[kubelet]\napi_server = \"http://10.0.0.1:6443\"\nca = \"CA\"\nbootstrap_token = \"abcdef.0123456789abcdef\"",
            3,
            "kubelet.api_server",
            "scheme \"http\"",
        ),
        (
            "[kubelet]\napi_server = \"https://10.0.0.1:99999\"\nca = \"CA\"\nbootstrap_token = \"abcdef.0123456789abcdef\"",
            3,
            "kubelet.api_server",
            "port",
        ),
        (
            "[kubelet]\napi_server = \"https://10.0.0.1\"\nca = \"nope\"\nbootstrap_token = \"abcdef.0123456789abcdef\"",
            4,
            "kubelet.ca",
            "PEM",
        ),
        (
            "[kubelet]\napi_server = \"https://10.0.0.1\"\nca = \"CA\"\nbootstrap_token = \"abc.def\"",
            5,
            "kubelet.bootstrap_token",
            "bootstrap token",
        ),
        (
            "[kubelet]\napi_server = \"https://10.0.0.1\"\nca = \"CA\"",
            2,
            "kubelet.bootstrap_token",
            "required when kubelet is enabled",
        ),
        (
            "[kubelet]\nenabled = false\nlabels = { \"-bad\" = \"x\" }",
            4,
            "kubelet.labels.-bad",
            "label key",
        ),
        (
            "[kubelet]\nenabled = false\nlabels = { \"team\" = \"a b\" }",
            4,
            "kubelet.labels.team",
            "label value",
        ),
        (
            "[kubelet]\nenabled = false\nlabels = { \"Example.com/x\" = \"y\" }",
            4,
            "kubelet.labels.\"Example.com/x\"",
            "label key",
        ),
        (
            "[kubelet]\nenabled = false\ntaints = [\"gpu=yes:Sometimes\"]",
            4,
            "kubelet.taints[0]",
            "effect",
        ),
        (
            "[kubelet]\nenabled = false\ntaints = [\"nocolon\"]",
            4,
            "kubelet.taints[0]",
            "not a taint",
        ),
        (
            "[kubelet]\nenabled = false\ncluster_dns = [\"kube-dns\"]",
            4,
            "kubelet.cluster_dns[0]",
            "not an IP",
        ),
        (
            "[kubelet]\nenabled = false\nextra_args = { \"kubeconfig\" = \"/x\" }",
            4,
            "kubelet.extra_args.kubeconfig",
            "set by the node",
        ),
        (
            "[kubelet]\nenabled = false\nextra_args = { \"--max-pods\" = \"1\" }",
            4,
            "kubelet.extra_args.--max-pods",
            "not a flag name",
        ),
    ];
    for (body, line, field, why) in cases {
        // One source line: the CA in a basic string with \n escapes.
        let doc = format!(
            "version = 1\n{}\n",
            body.replace("\"CA\"", &format!("{CA:?}"))
        );
        assert_refused(&doc, *line, field, why);
    }
}

#[test]
fn several_problems_are_all_reported() {
    let e = check::parse("version = 1\nhostname = \"A\"\n[network]\nnameservers = [\"x\"]\n")
        .unwrap_err();
    let fields: Vec<&str> = e.0.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["hostname", "network.nameservers[0]"]);
    let text = e.to_string();
    assert!(
        text.contains("line 2: hostname: ") && text.contains("line 4: network.nameservers[0]: "),
        "{text}"
    );
}

#[test]
fn durations() {
    assert_eq!(check::duration("90s").unwrap().as_secs(), 90);
    assert_eq!(check::duration("1h30m").unwrap().as_secs(), 5400);
    for bad in ["", "10", "5d", "m", "1.5m", "-1s", "99999999999999999999s"] {
        assert!(check::duration(bad).is_err(), "{bad}");
    }
    assert!(check::try_window("0s").is_err());
    assert!(check::try_window("25h").unwrap_err().contains("24h"));
    assert_eq!(check::try_window("60s").unwrap().as_secs(), 60);
}
