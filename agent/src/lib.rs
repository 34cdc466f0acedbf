//! `matic-agent`: the node's gRPC API over mutual TLS (TLS 1.3, ring).
//!
//! [`daemon`] (the process; `main.rs` only names the binary) wires these
//! modules together: [`config`] (flags),
//! [`tls`] (acceptor and client-certificate checks), [`auth`] (roles and the
//! one RPC-to-role table), [`service`] (the RPCs), [`install`] (streaming
//! a signed release into the inactive slot; [`slot_writer`] puts the bytes
//! on disk), [`slots`] (GPT slot state), [`release`] (each slot's signed
//! manifest), [`root_device`] (what `/` is mounted from), [`init_link`] (init's
//! boot file, services file and control FIFO), [`logs`], [`kmsg`],
//! [`health`], [`net`] (with [`netplan`], its live steps) and [`hostname`]; [`node_config`] (the machine
//! configuration: generations, live appliers, trials); [`history`] (recording every
//! boot); [`limits`] (caps on connections
//! and streams, the admin reserve) and [`caps`] (the capabilities kept);
//! [`workloads`] (containerd's images, the CRI's pods and containers);
//! [`sys`] holds the only `unsafe` (system calls std and rustix lack).
//!
//! The agent must never write the running slot, change slot state except
//! through `matic-boot`'s transitions, reboot the machine itself (it asks
//! init over the control FIFO), crash on a malformed request, or let a
//! caller of a lower role hold resources an admin needs (`limits`).
//!
//! The boot history is read back for the API by [`boots`] (`Boots`,
//! `BootTimeline`, and earlier boots' `Logs` and `Dmesg`).
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
pub mod auth;
pub mod boots;
pub mod caps;
pub mod config;
pub mod daemon;
pub mod dhcp;
pub mod health;
pub mod history;
pub mod hostname;
pub mod init_link;
pub mod install;
pub mod kmsg;
pub mod limits;
pub mod logs;
pub mod net;
pub mod netplan;
pub mod node_config;
pub mod release;
pub mod resolv;
pub mod root_device;
pub mod service;
pub mod slot_writer;
pub mod slots;
pub mod sntp;
#[cfg(test)]
mod strace_test;
#[allow(unsafe_code)]
pub mod sys;
pub mod tls;
pub mod workloads;
