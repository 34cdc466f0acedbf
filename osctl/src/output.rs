//! Rendering of results: aligned tables with a NODE column, `-o json`
//! documents, per-node line prefixes for streams, and a release manifest's
//! fields. Pure functions over the API messages and manifests, so the
//! formats are unit-tested. The boot history's are in [`boots`].

pub mod boots;
pub mod workloads;

use matic_proto::v1::{
    BootStatusResponse, CrashDump, HealthResponse, KernelMessage, ServiceListResponse, SlotRelease,
    TimeResponse, VersionResponse,
};
use matic_release::Manifest;
use matic_release::hex;
use serde_json::{Value, json};

use crate::client::ClientError;

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and sentences for people.
    Text,
    /// One JSON document (non-streaming calls) or JSON lines (streams).
    Json,
}

/// Left-aligned columns separated by three spaces; no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub(crate) fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// `65` → `1m5s`; `90061` → `1d1h`: two units at most.
pub fn duration_words(secs: u64) -> String {
    let units = [(86400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        if rest >= size || (size == 1 && parts.is_empty()) {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
        if !parts.is_empty() && rest == 0 {
            break;
        }
    }
    parts.join("")
}

pub const BOOT_STATUS_HEADERS: &[&str] = &[
    "NODE",
    "SLOT",
    "PRIORITY",
    "TRIES",
    "SUCCESSFUL",
    "BOOTABLE",
    "VERSION",
    "COUNTER",
    "KEY ID",
    "ROOT HASH",
    "RUNNING",
    "NEXT",
];

/// Digits of a root hash shown in tables (the JSON has all 64).
pub const SHORT_HASH: usize = 12;

/// A root hash cut to [`SHORT_HASH`] digits.
pub fn short_hash(h: &str) -> String {
    h.chars().take(SHORT_HASH).collect()
}

/// The manifest columns of a table: counter, key id, short root hash;
/// dashes when there is no verified manifest.
fn release_cells(r: Option<&SlotRelease>) -> [String; 3] {
    match r {
        Some(r) => [
            r.security_counter.to_string(),
            or_dash(&r.key_id),
            or_dash(&short_hash(&r.root_hash)),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

fn release_json(r: Option<&SlotRelease>) -> Value {
    match r {
        Some(r) => json!({
            "version": r.version,
            "security_counter": r.security_counter,
            "key_id": r.key_id,
            "root_hash": r.root_hash,
            "payload_size": r.payload_size,
        }),
        None => Value::Null,
    }
}

pub fn boot_status_rows(node: &str, r: &BootStatusResponse) -> Vec<Vec<String>> {
    r.slots
        .iter()
        .map(|s| {
            let version = s.release.as_ref().map_or(&s.version, |r| &r.version);
            let mut row = vec![
                node.to_string(),
                s.name.clone(),
                s.priority.to_string(),
                s.tries.to_string(),
                yes(s.successful),
                yes(s.bootable),
                or_dash(version),
            ];
            row.extend(release_cells(s.release.as_ref()));
            row.extend([yes(s.running), yes(s.next_boot)]);
            row
        })
        .collect()
}

/// After the table: why a slot has no verified manifest, one line each
/// (a sentence does not fit a column).
pub fn boot_status_notes(node: &str, r: &BootStatusResponse) -> String {
    r.slots
        .iter()
        .filter(|s| s.release.is_none() && !s.release_error.is_empty())
        .map(|s| format!("{node}: slot {}: {}\n", s.name, s.release_error))
        .collect()
}

pub fn boot_status_json(r: &BootStatusResponse) -> Value {
    json!({
        "disk": r.disk,
        "slots": r.slots.iter().map(|s| json!({
            "name": s.name,
            "priority": s.priority,
            "tries": s.tries,
            "successful": s.successful,
            "bootable": s.bootable,
            "version": s.version,
            "running": s.running,
            "next_boot": s.next_boot,
            "release": release_json(s.release.as_ref()),
            "release_error": s.release_error,
        })).collect::<Vec<_>>(),
    })
}

pub const SERVICES_HEADERS: &[&str] = &[
    "NODE",
    "SERVICE",
    "STATE",
    "PID",
    "RESTARTS",
    "LAST EXIT",
    "SINCE",
];

pub fn services_rows(node: &str, r: &ServiceListResponse) -> Vec<Vec<String>> {
    r.services
        .iter()
        .map(|s| {
            vec![
                node.to_string(),
                s.name.clone(),
                s.state.clone(),
                if s.pid == 0 {
                    "-".into()
                } else {
                    s.pid.to_string()
                },
                s.restarts.to_string(),
                or_dash(&s.last_exit),
                format!("{} ago", duration_words(s.state_seconds)),
            ]
        })
        .collect()
}

pub fn services_json(r: &ServiceListResponse) -> Value {
    json!({
        "services": r.services.iter().map(|s| json!({
            "name": s.name,
            "state": s.state,
            "pid": s.pid,
            "restarts": s.restarts,
            "last_exit": s.last_exit,
            "state_seconds": s.state_seconds,
        })).collect::<Vec<_>>(),
    })
}

pub const VERSION_HEADERS: &[&str] = &[
    "NODE",
    "OS",
    "AGENT",
    "KERNEL",
    "SLOT",
    "ARCH",
    "HOSTNAME",
    "ROOT",
    "VERITY",
    "COUNTER",
    "KEY ID",
    "ROOT HASH",
];

pub fn version_row(node: &str, v: &VersionResponse) -> Vec<String> {
    let mut row = vec![
        node.to_string(),
        or_dash(&v.os_version),
        or_dash(&v.agent_version),
        or_dash(&v.kernel),
        or_dash(&v.slot),
        or_dash(&v.arch),
        or_dash(&v.hostname),
        or_dash(&v.root_device),
        yes(v.root_verity),
    ];
    row.extend(release_cells(v.release.as_ref()));
    row
}

pub fn version_json(v: &VersionResponse) -> Value {
    json!({
        "os_version": v.os_version,
        "agent_version": v.agent_version,
        "kernel": v.kernel,
        "slot": v.slot,
        "arch": v.arch,
        "hostname": v.hostname,
        "root_device": v.root_device,
        "root_verity": v.root_verity,
        "release": release_json(v.release.as_ref()),
    })
}

/// A manifest's fields as `osctl release` prints them, one per line.
pub fn manifest_text(m: &Manifest) -> String {
    let g = &m.geometry;
    let salt = if m.salt().is_empty() {
        "-".to_string()
    } else {
        hex::string(m.salt())
    };
    format!(
        "version           {}\n\
         security counter  {}\n\
         key id            {}\n\
         root hash         {}\n\
         payload           {} bytes: {} data blocks of {} bytes, verity superblock, tree from byte {}\n\
         payload sha256    {}\n\
         hash              sha256, {}-byte blocks, salt {}\n",
        m.version(),
        m.counter,
        m.key_id,
        hex::string(&m.root_hash),
        m.payload_size,
        g.data_blocks,
        g.data_block_size,
        g.hash_start(),
        hex::string(&m.payload_sha256),
        g.hash_block_size,
        salt,
    )
}

/// A manifest's fields as JSON.
pub fn manifest_json(m: &Manifest) -> Value {
    let g = &m.geometry;
    json!({
        "format": matic_release::manifest::FORMAT,
        "version": m.version(),
        "security_counter": m.counter,
        "key_id": m.key_id.to_string(),
        "root_hash": hex::string(&m.root_hash),
        "payload_size": m.payload_size,
        "payload_sha256": hex::string(&m.payload_sha256),
        "data_blocks": g.data_blocks,
        "data_block_size": g.data_block_size,
        "hash_block_size": g.hash_block_size,
        "hash_start": g.hash_start(),
        "hash_algorithm": "sha256",
        "salt": hex::string(m.salt()),
        "signature": hex::string(&m.signature),
    })
}

pub const TIME_HEADERS: &[&str] = &[
    "NODE",
    "SERVERS",
    "SYNCED FROM",
    "OFFSET",
    "DELAY",
    "STRATUM",
    "ACTION",
    "LAST SYNC",
];

/// Nanoseconds as signed milliseconds with three decimals (`+12.345ms`).
fn millis(ns: i64, signed: bool) -> String {
    let (sign, abs) = (
        if ns < 0 {
            "-"
        } else if signed {
            "+"
        } else {
            ""
        },
        ns.unsigned_abs(),
    );
    format!("{sign}{}.{:03}ms", abs / 1_000_000, abs % 1_000_000 / 1000)
}

/// One node's clock: what `osctl time` prints.
pub fn time_row(node: &str, t: &TimeResponse) -> Vec<String> {
    let servers = if t.servers.is_empty() {
        "-".to_owned()
    } else {
        t.servers.join(",")
    };
    if !t.synced {
        let why = if t.servers.is_empty() {
            "not kept (no time.ntp)"
        } else {
            "not synced yet"
        };
        return vec![
            node.to_owned(),
            servers,
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            why.into(),
            "-".into(),
        ];
    }
    vec![
        node.to_owned(),
        servers,
        t.server.clone(),
        millis(t.offset_ns, true),
        millis(t.delay_ns, false),
        t.stratum.to_string(),
        t.action.clone(),
        format!(
            "{} ago",
            duration_words(t.now_unix.saturating_sub(t.last_sync_unix))
        ),
    ]
}

pub fn time_json(t: &TimeResponse) -> Value {
    json!({
        "servers": t.servers,
        "synced": t.synced,
        "server": t.server,
        "offset_ns": t.offset_ns,
        "delay_ns": t.delay_ns,
        "stratum": t.stratum,
        "action": t.action,
        "last_sync_unix": t.last_sync_unix,
        "last_attempt_unix": t.last_attempt_unix,
        "now_unix": t.now_unix,
        "errors": t.errors.iter().map(|e| json!({ "server": e.server, "error": e.error })).collect::<Vec<_>>(),
    })
}

pub const HEALTH_HEADERS: &[&str] = &["NODE", "CHECK", "OK", "DETAIL"];

pub fn health_rows(node: &str, h: &HealthResponse) -> Vec<Vec<String>> {
    h.checks
        .iter()
        .map(|c| {
            vec![
                node.to_string(),
                c.name.clone(),
                yes(c.ok),
                or_dash(&c.detail),
            ]
        })
        .collect()
}

pub fn health_json(h: &HealthResponse) -> Value {
    json!({
        "healthy": h.healthy,
        "checks": h.checks.iter().map(|c| json!({
            "name": c.name, "ok": c.ok, "detail": c.detail,
        })).collect::<Vec<_>>(),
    })
}

/// One kernel message as `dmesg` prints it: `[    1.500000] text` (an
/// earlier boot's damaged line without its stamp: the line as it is).
pub fn kmsg_line(m: &KernelMessage) -> String {
    if m.no_timestamp {
        return m.message.clone();
    }
    format!(
        "[{:5}.{:06}] {}",
        m.timestamp_usec / 1_000_000,
        m.timestamp_usec % 1_000_000,
        m.message
    )
}

/// The line printed before the first message of a crash dump.
pub fn crash_dump_header(d: &CrashDump) -> String {
    format!(
        "--- crash dump {} ({}), kept from pstore after the boot ended ---",
        d.index, d.reason
    )
}

/// One kernel message as a JSON line. An earlier boot's (`boot` != 0)
/// has only its time, text and crash dump: its level and sequence were
/// not kept, so they are not shown as 0.
pub fn kmsg_json(node: &str, boot: i64, m: &KernelMessage) -> Value {
    if boot == 0 {
        return json!({
            "node": node,
            "facility": m.facility,
            "level": m.level,
            "sequence": m.sequence,
            "timestamp_usec": m.timestamp_usec,
            "message": m.message,
        });
    }
    json!({
        "node": node,
        "boot": boot,
        "timestamp_usec": (!m.no_timestamp).then_some(m.timestamp_usec),
        "message": m.message,
        "crash_dump": m.crash_dump.as_ref().map(|d| json!({"index": d.index, "reason": d.reason})),
    })
}

/// The `-o json` document of a call made on several nodes: an array, in the
/// order the nodes were given, of `{"node", "ok", "result"}` or
/// `{"node", "ok": false, "error"}`.
pub fn json_results<T>(
    results: &[(String, Result<T, ClientError>)],
    to_json: impl Fn(&T) -> Value,
) -> String {
    let arr: Vec<Value> = results
        .iter()
        .map(|(node, r)| match r {
            Ok(v) => json!({"node": node, "ok": true, "result": to_json(v)}),
            Err(e) => json!({"node": node, "ok": false, "error": e.to_string()}),
        })
        .collect();
    serde_json::to_string_pretty(&Value::Array(arr)).expect("json") + "\n"
}

/// Cuts a byte stream into lines and prefixes each with `node: `; a partial
/// last line is held until it completes or [`LinePrefixer::finish`].
#[derive(Debug)]
pub struct LinePrefixer {
    prefix: String,
    partial: Vec<u8>,
}

impl LinePrefixer {
    pub fn new(node: &str) -> Self {
        LinePrefixer {
            prefix: format!("{node}: "),
            partial: Vec::new(),
        }
    }

    /// The complete lines in `data` (plus what was held), prefixed.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.partial.extend_from_slice(data);
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(last_nl + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        let mut out = Vec::with_capacity(complete.len() + 16);
        for line in complete.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(self.prefix.as_bytes());
            out.extend_from_slice(line);
        }
        out
    }

    /// The held partial line, prefixed and newline-terminated.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.partial.is_empty() {
            return Vec::new();
        }
        let mut out = self.prefix.clone().into_bytes();
        out.append(&mut self.partial);
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matic_proto::v1::{HealthCheck, Service, SlotStatus};

    #[test]
    fn time_rows() {
        let mut t = TimeResponse {
            servers: vec!["10.0.0.2".into(), "pool.ntp.org".into()],
            synced: true,
            server: "10.0.0.2".into(),
            offset_ns: -3_600_000_012_345,
            delay_ns: 412_000,
            stratum: 2,
            action: "stepped".into(),
            last_sync_unix: 1000,
            now_unix: 1065,
            ..TimeResponse::default()
        };
        assert_eq!(
            time_row("n1", &t),
            [
                "n1",
                "10.0.0.2,pool.ntp.org",
                "10.0.0.2",
                "-3600000.012ms",
                "0.412ms",
                "2",
                "stepped",
                "1m5s ago"
            ]
        );
        t.offset_ns = 5_000_000;
        assert_eq!(time_row("n1", &t)[3], "+5.000ms");
        t.synced = false;
        assert_eq!(time_row("n1", &t)[6], "not synced yet");
        t.servers.clear();
        assert_eq!(time_row("n1", &t)[6], "not kept (no time.ntp)");
        assert_eq!(time_json(&t)["offset_ns"], 5_000_000);
    }

    fn boot() -> BootStatusResponse {
        BootStatusResponse {
            disk: "/dev/vda".into(),
            slots: vec![
                SlotStatus {
                    name: "A".into(),
                    priority: 2,
                    tries: 0,
                    successful: true,
                    bootable: true,
                    version: "1.2.3".into(),
                    running: true,
                    next_boot: true,
                    release: Some(SlotRelease {
                        version: "1.2.3".into(),
                        security_counter: 7,
                        key_id: "0011223344556677".into(),
                        root_hash: "0123456789abcdef".repeat(4),
                        payload_size: 8192,
                    }),
                    release_error: String::new(),
                },
                SlotStatus {
                    name: "B".into(),
                    priority: 1,
                    tries: 3,
                    successful: false,
                    bootable: true,
                    version: String::new(),
                    running: false,
                    next_boot: false,
                    release: None,
                    release_error:
                        "the manifest's signature does not verify (key id 0011223344556677)".into(),
                },
            ],
        }
    }

    #[test]
    fn boot_status_table_is_aligned() {
        let mut rows = boot_status_rows("10.0.2.15", &boot());
        rows.extend(boot_status_rows("n2", &boot()));
        let t = table(BOOT_STATUS_HEADERS, &rows);
        let want = "\
NODE        SLOT   PRIORITY   TRIES   SUCCESSFUL   BOOTABLE   VERSION   COUNTER   KEY ID             ROOT HASH      RUNNING   NEXT
10.0.2.15   A      2          0       yes          yes        1.2.3     7         0011223344556677   0123456789ab   yes       yes
10.0.2.15   B      1          3       no           yes        -         -         -                  -              no        no
n2          A      2          0       yes          yes        1.2.3     7         0011223344556677   0123456789ab   yes       yes
n2          B      1          3       no           yes        -         -         -                  -              no        no
";
        assert_eq!(t, want);
        assert_eq!(
            boot_status_notes("n2", &boot()),
            "n2: slot B: the manifest's signature does not verify (key id 0011223344556677)\n"
        );
        let j = boot_status_json(&boot());
        assert_eq!(
            j["slots"][0]["release"]["root_hash"],
            "0123456789abcdef".repeat(4)
        );
        assert_eq!(j["slots"][0]["release"]["security_counter"], 7);
        assert_eq!(j["slots"][1]["release"], Value::Null);
        assert!(
            j["slots"][1]["release_error"]
                .as_str()
                .unwrap()
                .contains("does not verify")
        );
    }

    #[test]
    fn services_table_formats_pid_and_since() {
        let r = ServiceListResponse {
            services: vec![
                Service {
                    name: "matic-agent".into(),
                    state: "running".into(),
                    pid: 42,
                    restarts: 0,
                    last_exit: "-".into(),
                    state_seconds: 65,
                },
                Service {
                    name: "kubelet".into(),
                    state: "skipped".into(),
                    pid: 0,
                    restarts: 0,
                    last_exit: String::new(),
                    state_seconds: 0,
                },
            ],
        };
        let t = table(SERVICES_HEADERS, &services_rows("n", &r));
        let want = "\
NODE   SERVICE       STATE     PID   RESTARTS   LAST EXIT   SINCE
n      matic-agent   running   42    0          -           1m5s ago
n      kubelet       skipped   -     0          -           0s ago
";
        assert_eq!(t, want);
    }

    #[test]
    fn durations_use_two_units_at_most() {
        assert_eq!(duration_words(0), "0s");
        assert_eq!(duration_words(59), "59s");
        assert_eq!(duration_words(60), "1m");
        assert_eq!(duration_words(3725), "1h2m");
        assert_eq!(duration_words(90061), "1d1h");
    }

    #[test]
    fn json_document_has_one_entry_per_node_in_order() {
        let results = vec![
            ("a".to_string(), Ok(boot())),
            (
                "b".to_string(),
                Err(ClientError::PermissionDenied(
                    "reboot needs os:operator or os:admin".into(),
                )),
            ),
        ];
        let v: Value = serde_json::from_str(&json_results(&results, boot_status_json)).unwrap();
        assert_eq!(v[0]["node"], "a");
        assert_eq!(v[0]["ok"], true);
        assert_eq!(v[0]["result"]["slots"][1]["tries"], 3);
        assert_eq!(v[0]["result"]["slots"][0]["running"], true);
        assert_eq!(v[1]["ok"], false);
        assert_eq!(
            v[1]["error"],
            "permission denied: reboot needs os:operator or os:admin"
        );
    }

    #[test]
    fn health_and_version_rows() {
        let h = HealthResponse {
            healthy: false,
            checks: vec![HealthCheck {
                name: "containerd".into(),
                ok: false,
                detail: "socket not answering".into(),
            }],
        };
        assert_eq!(
            health_rows("n", &h),
            [["n", "containerd", "no", "socket not answering"]]
        );
        assert_eq!(health_json(&h)["healthy"], false);
        let v = VersionResponse {
            os_version: "1.0".into(),
            ..Default::default()
        };
        assert_eq!(
            version_row("n", &v),
            [
                "n", "1.0", "-", "-", "-", "-", "-", "-", "no", "-", "-", "-"
            ]
        );
        let v = VersionResponse {
            root_device: "/dev/dm-0".into(),
            root_verity: true,
            release: boot().slots[0].release.clone(),
            ..v
        };
        assert_eq!(
            version_row("n", &v)[7..],
            ["/dev/dm-0", "yes", "7", "0011223344556677", "0123456789ab"]
        );
        let j = version_json(&v);
        assert_eq!(
            (&j["root_device"], &j["root_verity"]),
            (&json!("/dev/dm-0"), &json!(true))
        );
        assert_eq!(j["release"]["key_id"], "0011223344556677");
    }

    #[test]
    fn kernel_messages_print_like_dmesg() {
        let m = KernelMessage {
            facility: 0,
            level: 6,
            sequence: 7,
            timestamp_usec: 12_000_345,
            message: "hello".into(),
            ..Default::default()
        };
        assert_eq!(kmsg_line(&m), "[   12.000345] hello");
        assert_eq!(kmsg_json("n", 0, &m)["sequence"], 7);
    }

    #[test]
    fn earlier_boots_kernel_messages() {
        let dump = CrashDump {
            index: 1,
            reason: "Panic".into(),
        };
        let m = KernelMessage {
            timestamp_usec: 2_155_872,
            message: "Kernel panic - not syncing: x".into(),
            crash_dump: Some(dump.clone()),
            ..Default::default()
        };
        assert_eq!(
            kmsg_line(&m),
            "[    2.155872] Kernel panic - not syncing: x"
        );
        assert_eq!(
            crash_dump_header(&dump),
            "--- crash dump 1 (Panic), kept from pstore after the boot ended ---"
        );
        let j = kmsg_json("n", -1, &m);
        assert_eq!(
            j,
            json!({"node": "n", "boot": -1, "timestamp_usec": 2_155_872,
                   "message": "Kernel panic - not syncing: x",
                   "crash_dump": {"index": 1, "reason": "Panic"}})
        );
        let damaged = KernelMessage {
            message: "[    5.12".into(),
            no_timestamp: true,
            ..Default::default()
        };
        assert_eq!(kmsg_line(&damaged), "[    5.12");
        let j = kmsg_json("n", 3, &damaged);
        assert_eq!(
            (&j["timestamp_usec"], &j["crash_dump"]),
            (&Value::Null, &Value::Null)
        );
    }

    #[test]
    fn line_prefixer_reassembles_split_lines() {
        let mut p = LinePrefixer::new("n1");
        assert_eq!(p.push(b"he"), b"");
        assert_eq!(p.push(b"llo\nwor"), b"n1: hello\n");
        assert_eq!(p.push(b"ld\nx\n"), b"n1: world\nn1: x\n");
        assert_eq!(p.push(b"tail"), b"");
        assert_eq!(p.finish(), b"n1: tail\n");
        assert_eq!(p.finish(), b"");
    }
}
