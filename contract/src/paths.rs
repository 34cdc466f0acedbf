//! Where the contract's files live. Init uses the absolute C strings; the
//! agent joins the file names to its `--run-dir` (`/run/matic` on a node, a
//! temporary directory in tests).
//!
//! Must never: hold anything but names (no I/O).

use core::ffi::CStr;

/// The run directory (a tmpfs, created by init).
pub const RUN_DIR: &CStr = c"/run/matic";
/// File name of the boot file ([`crate::boot`]).
pub const BOOT: &str = "boot";
/// File name of the services file ([`crate::services`]).
pub const SERVICES: &str = "services";
/// File name of the control FIFO ([`crate::control`]).
pub const CONTROL: &str = "control";

/// `/run/matic/boot`.
pub const BOOT_PATH: &CStr = c"/run/matic/boot";
/// `/run/matic/services`.
pub const SERVICES_PATH: &CStr = c"/run/matic/services";
/// Where init writes the services file before renaming it over
/// [`SERVICES_PATH`] (readers never see a half-written file).
pub const SERVICES_TMP_PATH: &CStr = c"/run/matic/services.tmp";
/// `/run/matic/control`.
pub const CONTROL_PATH: &CStr = c"/run/matic/control";

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn absolute_paths_are_the_run_dir_and_the_names() {
        let dir = RUN_DIR.to_str().unwrap();
        for (full, name) in [
            (BOOT_PATH, BOOT),
            (SERVICES_PATH, SERVICES),
            (CONTROL_PATH, CONTROL),
        ] {
            assert_eq!(full.to_str().unwrap(), format!("{dir}/{name}"));
        }
        assert_eq!(
            SERVICES_TMP_PATH.to_str().unwrap(),
            format!("{dir}/{SERVICES}.tmp")
        );
    }
}
