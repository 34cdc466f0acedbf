//! `matic-init`: the logic of MaticOS's PID 1, testable on the host.
#![cfg_attr(not(test), no_std)]
