//! The MaticOS release format, shared by everything that makes, installs or
//! boots a release: `osctl release` writes it, the agent checks it before it
//! touches a slot, stage 1 checks it again at every boot.
//!
//! A release is one file: a 4 KiB manifest block ([`manifest`], a signed,
//! fixed-layout record) followed by the slot payload (the SquashFS root and
//! its dm-verity hash tree, [`verity`]). The manifest names its signer by a
//! [`key::KeyId`]; the trusted public keys are files in
//! [`key::TRUSTED_KEYS_DIR`] of the initramfs and of the image.
//!
//! Owns: the manifest's byte layout and every rule about what a manifest may
//! hold, the public-key file format and key ids, and the dm-verity tree's
//! geometry (levels, where each lives in the payload); with `std`, checking
//! a payload against its manifest as it streams in, on several cores
//! (`verity::stream`). The byte layout is
//! documented in `docs/interfaces.md`; change both together.
//!
//! Must never: use `std` or allocate in its default build (PID 1 links it),
//! carry a signature implementation (each program brings its own Ed25519
//! through [`manifest::SignatureCheck`]: `ring` in the agent and osctl, a
//! small no_std verifier in init), or read a file or a device (except `trusted`, with `std`, which reads
//! the one key file a manifest names).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

pub mod hex;
pub mod key;
pub mod manifest;
pub mod verity;

#[cfg(feature = "std")]
pub mod trusted;

pub use key::KeyId;
pub use manifest::{Manifest, ManifestError};
