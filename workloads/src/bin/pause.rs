//! `matic-pause`: a pod's sandbox process. It holds the pod's namespaces
//! open by doing nothing: it waits for signals, reaps any child that ends
//! (as PID 1 of a pod that shares its process namespace it inherits
//! orphans), and exits 0 on SIGTERM or SIGINT. As PID 1 of its namespace
//! the kernel delivers it no signal it has no handler for, so it waits on
//! them synchronously instead of relying on default actions.
//!
//! `no_std`, no libc: its own `_start` and syscalls ([`sys`]), so the
//! static binary is a few KiB (docs/image.md, "Workload images").
#![no_std]
#![no_main]
// The only `unsafe` is `sys::entry!`'s `_start` (the library's sys.rs).
#![deny(unsafe_code)]

use matic_workloads::sys;

matic_workloads::entry!(main);

fn main() -> ! {
    let blocked = match sys::block(&[sys::SIGTERM, sys::SIGINT, sys::SIGCHLD]) {
        Ok(b) => b,
        Err(_) => {
            sys::stderr(b"matic-pause: blocking signals failed\n");
            sys::exit(1)
        }
    };
    loop {
        match blocked.wait() {
            sys::SIGCHLD => {
                sys::reap_all();
            }
            // SIGTERM or SIGINT: the pod is being stopped.
            _ => sys::exit(0),
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    sys::stderr(b"matic-pause: panic\n");
    sys::exit(2)
}
