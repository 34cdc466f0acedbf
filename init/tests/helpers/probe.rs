//! `matic-init-probe`: the respawn-latency probe of `scripts/bench-init`
//! (never shipped). Static and libc-free like init, so what it measures is
//! init's part plus one `execve`, not dynamic loading.
//!
//! Each run appends `now - (time stamped by the previous run just before it
//! exited)` in ns to `/run/respawn.samples`, then, until 300 samples exist,
//! runs `/etc/probe-run-ms` ms (default 20), stamps `/run/respawn.last` and exits with status 1.
#![no_std]
#![no_main]

#[path = "../../src/sys.rs"]
#[allow(dead_code)]
mod sys;

sys::entry!(main);

use core::ffi::CStr;
use rustix::fs::{Mode, OFlags, open};
use rustix::time::{ClockId, clock_gettime};

const SAMPLES: usize = 300;

fn mono_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn read(path: &CStr, buf: &mut [u8]) -> usize {
    let Ok(fd) = open(path, OFlags::RDONLY, Mode::empty()) else {
        return 0;
    };
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(&fd, &mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

fn write(path: &CStr, flags: OFlags, data: &[u8]) {
    if let Ok(fd) = open(
        path,
        OFlags::WRONLY | OFlags::CREATE | flags,
        Mode::from_raw_mode(0o644),
    ) {
        let _ = rustix::io::write(&fd, data);
    }
}

fn decimal(mut v: u64, out: &mut [u8; 21]) -> &[u8] {
    let mut i = out.len();
    out[i - 1] = b'\n';
    i -= 1;
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &out[i..]
}

fn main(_args: &[&'static CStr]) -> ! {
    let now = mono_ns();
    let mut buf = [0u8; 32];
    let n = read(c"/run/respawn.last", &mut buf);
    if n > 0 {
        let last = buf[..n]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
        let mut d = [0u8; 21];
        write(
            c"/run/respawn.samples",
            OFlags::APPEND,
            decimal(now.saturating_sub(last), &mut d),
        );
    }
    let mut all = [0u8; SAMPLES * 24];
    let n = read(c"/run/respawn.samples", &mut all);
    if all[..n].iter().filter(|b| **b == b'\n').count() >= SAMPLES {
        loop {
            let _ = rustix::thread::nanosleep(&rustix::time::Timespec {
                tv_sec: 3600,
                tv_nsec: 0,
            });
        }
    }
    let mut ms = [0u8; 8];
    let n = read(c"/etc/probe-run-ms", &mut ms);
    let run_ms = if n == 0 {
        20
    } else {
        ms[..n]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0i64, |a, d| a * 10 + i64::from(d - b'0'))
    };
    if run_ms > 0 {
        let _ = rustix::thread::nanosleep(&rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: run_ms * 1_000_000,
        });
    }
    let mut d = [0u8; 21];
    write(
        c"/run/respawn.last",
        OFlags::TRUNC,
        decimal(mono_ns(), &mut d),
    );
    sys::exit_group(1)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    sys::exit_group(101)
}
