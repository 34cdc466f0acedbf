//! Command-line flags: every path the agent touches is configurable so the
//! integration tests run the real agent as an ordinary process against a
//! disk-image file and a fake `/run/matic`.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use matic_contract::paths;

/// `matic-agent` flags. Defaults are the paths on a running node.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "matic-agent",
    version,
    about = "MaticOS node agent: the gRPC API over mutual TLS"
)]
pub struct Config {
    /// Address and port to serve the API on.
    #[arg(long, default_value = "[::]:50051")]
    pub listen: SocketAddr,
    /// Directory holding `ca.crt`, `server.crt` and `server.key`.
    #[arg(long, default_value = "/var/lib/matic/pki")]
    pub pki_dir: PathBuf,
    /// The disk holding the MaticOS GPT (device or image file); default: `disk=`
    /// from `<run-dir>/boot`.
    #[arg(long)]
    pub disk: Option<PathBuf>,
    /// Init's runtime directory (`boot`, `services`, `control`); the agent
    /// writes `resolv.conf` here.
    #[arg(long, default_value = "/run/matic")]
    pub run_dir: PathBuf,
    /// Directory of the services' logs (`<service>.log`).
    #[arg(long, default_value = "/var/log/matic")]
    pub log_dir: PathBuf,
    /// The kernel log device (a regular file is read line by line and polled).
    #[arg(long, default_value = "/dev/kmsg")]
    pub kmsg: PathBuf,
    /// Directory of the trusted release keys (`<key id>.pub`): an install
    /// is accepted only when one of them signed its manifest, and a slot's
    /// manifest is shown only when one of them verifies it. A missing
    /// directory trusts no key.
    #[arg(long, default_value = matic_release::key::TRUSTED_KEYS_DIR)]
    pub release_keys: PathBuf,
    /// os-release file of the running image (for `VERSION_ID`).
    #[arg(long, default_value = "/etc/os-release")]
    pub os_release: PathBuf,
    /// Tries a freshly installed slot gets to be marked successful (1..=15).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=15))]
    pub tries: u8,
    /// The kernel command line (for `matic.ip=`).
    #[arg(long, default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// The containerd socket the health check dials when containerd is supervised.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub containerd_socket: PathBuf,
    /// Do not configure network interfaces (tests).
    #[arg(long)]
    pub no_network: bool,
    /// Never mark the boot successful (neither the GPT bit nor `boot-ok`).
    #[arg(long)]
    pub no_boot_ok: bool,
    /// Abort an install whose client sends no message for this many seconds
    /// (the header, or the next chunk): it would hold the install lock
    /// forever. The target slot is left invalid.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub install_idle_secs: u64,
    /// Delay between the reply to Reboot/Shutdown/Rollback and the FIFO command, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub power_delay_ms: u64,
    /// The boot history (on `MATIC_STATE`): one directory per boot. A
    /// directory that cannot be opened leaves the agent running without
    /// history (docs/history.md).
    #[arg(long, default_value = "/var/lib/matic/boots")]
    pub history_dir: PathBuf,
    /// The boot history's total size cap in bytes (at least 1 MiB); the
    /// oldest boots are deleted first.
    #[arg(long, default_value_t = matic_history::store::DEFAULT_CAP)]
    pub history_cap: u64,
    /// The pstore file system the kernel leaves crash dumps in; they are
    /// moved into the history at start.
    #[arg(long, default_value = "/sys/fs/pstore")]
    pub pstore_dir: PathBuf,
    /// The kernel's boot id: tells a restarted agent it is still in the
    /// same boot.
    #[arg(long = "boot-id", default_value = "/proc/sys/kernel/random/boot_id")]
    pub boot_id_path: PathBuf,
    /// The watchdog's boot status (decimal `WDIOF_*` bits): `WDIOF_CARDRESET`
    /// says the watchdog reset the machine before this boot.
    #[arg(long, default_value = "/sys/class/watchdog/watchdog0/bootstatus")]
    pub watchdog_status: PathBuf,
    /// The machine configuration's generations and trial state (on
    /// `MATIC_STATE`; docs/config.md, "Storage").
    #[arg(long, default_value = "/var/lib/matic/config")]
    pub config_dir: PathBuf,
    /// Where sysctls are written (`<dir>/net/ipv4/ip_forward`).
    #[arg(long, default_value = "/proc/sys")]
    pub sysctl_dir: PathBuf,
    /// Tests: write the hostname to this file instead of setting it.
    #[arg(long)]
    pub hostname_file: Option<PathBuf>,
    /// containerd's settings rendered from the machine configuration (the
    /// image's /etc/containerd/config.toml imports `<dir>/conf.d/*.toml`).
    #[arg(long, default_value = CONTAINERD_DIR)]
    pub containerd_dir: PathBuf,
    /// kubelet's own directory (its KubeletConfiguration and the flags
    /// file); the default is the contract's, which init reads.
    #[arg(long, default_value_os_t = crate::node_config::kubelet::default_kubelet_dir())]
    pub kubelet_dir: PathBuf,
    /// `/etc/kubernetes` (bound from `MATIC_STATE`): the bootstrap
    /// kubeconfig and the cluster CA; the default is the contract's.
    #[arg(long, default_value_os_t = crate::node_config::kubelet::default_kubernetes_dir())]
    pub kubernetes_dir: PathBuf,
    /// The NTP servers' UDP port (tests: a fake server's).
    #[arg(long, default_value_t = 123)]
    pub ntp_port: u16,
    /// Tests: append the SNTP client's clock corrections to this file
    /// instead of setting the clock.
    #[arg(long)]
    pub clock_file: Option<PathBuf>,
    /// Where `ImageImport` spools an archive (on MATIC_STATE; one file per
    /// import, removed when it ends).
    #[arg(long, default_value = "/var/lib/matic/import")]
    pub import_dir: PathBuf,
    /// The pause image's archive, imported into containerd at start when
    /// containerd lacks the image (docs/image.md, "Workload images").
    #[arg(long, default_value = matic_contract::workloads::PAUSE_ARCHIVE)]
    pub pause_archive: PathBuf,
}

/// The default `--containerd-dir`, which the image's containerd config imports.
pub const CONTAINERD_DIR: &str = "/var/lib/matic/containerd";

impl Config {
    /// `<run-dir>/resolv.conf`: the image's `/etc/resolv.conf` links here.
    pub fn resolv_file(&self) -> PathBuf {
        self.run_dir.join("resolv.conf")
    }

    /// `<run-dir>/boot`.
    pub fn boot_file(&self) -> PathBuf {
        self.run_dir.join(paths::BOOT)
    }
    /// `<run-dir>/services`.
    pub fn services_file(&self) -> PathBuf {
        self.run_dir.join(paths::SERVICES)
    }
    /// `<run-dir>/control`.
    pub fn control_fifo(&self) -> PathBuf {
        self.run_dir.join(paths::CONTROL)
    }
}
