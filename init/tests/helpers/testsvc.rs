//! `matic-init-testsvc`: the stand-in for the services in matic-init's
//! namespace tests and benchmark (never shipped in an image).
//!
//! Installed as `/usr/bin/<service>` in a test root; its behaviour comes from
//! `/etc/testsvc/<service>` (one line: a mode and its arguments). It reports
//! on stdout, which init captures into `/var/log/matic/<service>.log`, as
//! lines `<event> <CLOCK_MONOTONIC ns> [details]`.
//!
//! Run on the host as `matic-init-testsvc bench …` it is the benchmark driver
//! of `scripts/bench-init` (see `bench.rs`).

use std::ffi::c_int;
use std::io::Write;

#[path = "bench.rs"]
mod bench;
#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;

unsafe extern "C" {
    fn fork() -> c_int;
    fn pipe(fds: *mut c_int) -> c_int;
    fn read(fd: c_int, buf: *mut u8, n: usize) -> isize;
    fn write(fd: c_int, buf: *const u8, n: usize) -> isize;
    fn close(fd: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
    fn waitpid(pid: c_int, status: *mut c_int, opts: c_int) -> c_int;
    fn pause() -> c_int;
    fn signal(sig: c_int, handler: usize) -> usize;
    fn sigprocmask(how: c_int, set: *const u64, old: *mut u64) -> c_int;
    fn sigaction(sig: c_int, act: *const GlibcSigaction, old: *mut GlibcSigaction) -> c_int;
    fn getsid(pid: c_int) -> c_int;
    fn getpid() -> c_int;
    fn clock_gettime(clock: c_int, ts: *mut [i64; 2]) -> c_int;
    fn getrlimit(resource: c_int, rlim: *mut [u64; 2]) -> c_int;
}

/// glibc's `struct sigaction` on x86_64 (only the handler is read).
#[repr(C)]
struct GlibcSigaction {
    handler: usize,
    mask: [u64; 16],
    flags: c_int,
    restorer: usize,
}

const SIGTERM: c_int = 15;

/// CLOCK_MONOTONIC in ns; async-signal-safe.
pub fn mono_ns() -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: clock_gettime writes one timespec into a valid local.
    unsafe { clock_gettime(1, &mut ts) };
    ts[0] as u64 * 1_000_000_000 + ts[1] as u64
}

/// Writes `<event> <ns>\n` to stdout with one write(2); async-signal-safe.
fn event_raw(event: &[u8]) {
    let mut buf = [0u8; 64];
    let mut n = 0;
    for &b in event.iter().take(40) {
        buf[n] = b;
        n += 1;
    }
    buf[n] = b' ';
    n += 1;
    let mut digits = [0u8; 20];
    let mut v = mono_ns();
    let mut d = 0;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    buf[n] = b'\n';
    n += 1;
    // SAFETY: writes n initialised bytes of a local buffer to fd 1.
    unsafe { write(1, buf.as_ptr(), n) };
}

extern "C" fn on_term_exit(_: c_int) {
    event_raw(b"term");
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

extern "C" fn on_term_ignore(_: c_int) {
    event_raw(b"term-ignored");
}

/// How long the "container" of mode `container` takes to exit after SIGTERM.
static CONTAINER_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn on_term_container(_: c_int) {
    event_raw(b"container-term");
    let ms = CONTAINER_MS.load(std::sync::atomic::Ordering::Relaxed);
    // nanosleep underneath: async-signal-safe.
    std::thread::sleep(std::time::Duration::from_millis(ms));
    event_raw(b"container-done");
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

fn sleep_forever() -> ! {
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { pause() };
    }
}

fn main() {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    match args.next().as_deref() {
        Some("bench") => return bench::main(args.collect()),
        Some("stamp") => return println!("{}", mono_ns()),
        _ => {}
    }
    let name = argv0.rsplit('/').next().unwrap_or("").to_string();
    if name == matic_contract::handoff::AGENT {
        relay_handed();
    }
    let conf = std::fs::read_to_string(format!("/etc/testsvc/{name}")).unwrap_or_default();
    let mut words = conf.split_whitespace();
    let mode = words.next().unwrap_or("sleep");
    let arg = |w: Option<&str>, d: u64| w.and_then(|s| s.parse().ok()).unwrap_or(d);
    // As the real agent once it serves: init then starts what it holds
    // (containerd). Mode `silent` is an agent that never gets there.
    if name == matic_contract::handoff::AGENT && mode != "silent" {
        tell_init_listening();
    }
    match mode {
        "crash" => {
            event_raw(b"start");
            std::process::exit(1);
        }
        "sleep" | "silent" => {
            event_raw(b"start");
            sleep_forever();
        }
        "args" => {
            // The arguments after argv[0], one line, then as `sleep`.
            let rest: Vec<String> = std::env::args().skip(1).collect();
            println!("args {}", rest.join(" "));
            event_raw(b"start");
            sleep_forever();
        }
        "term-exit" | "ignore-term" => {
            let h = if mode == "term-exit" {
                on_term_exit
            } else {
                on_term_ignore
            };
            // SAFETY: installs a handler that only calls async-signal-safe code.
            unsafe { signal(SIGTERM, h as extern "C" fn(c_int) as usize) };
            event_raw(b"start");
            sleep_forever();
        }
        "container" => {
            // Like containerd with one container: the service exits on
            // SIGTERM at once; its child (the "container", orphaned to init
            // then) takes `ms` to exit after its own SIGTERM.
            CONTAINER_MS.store(
                arg(words.next(), 2_000),
                std::sync::atomic::Ordering::Relaxed,
            );
            // SAFETY: fork in a single-threaded process; the child installs
            // a handler and only runs async-signal-safe code after that.
            if unsafe { fork() } == 0 {
                // SAFETY: installs a handler that only calls async-signal-safe code.
                unsafe { signal(SIGTERM, on_term_container as extern "C" fn(c_int) as usize) };
                event_raw(b"container-start");
                sleep_forever();
            }
            // SAFETY: as above.
            unsafe { signal(SIGTERM, on_term_exit as extern "C" fn(c_int) as usize) };
            event_raw(b"start");
            sleep_forever();
        }
        "orphans" => {
            event_raw(b"start");
            let n = arg(words.next(), 10_000);
            orphans(n);
            sleep_forever();
        }
        "sigcheck" => {
            event_raw(b"start");
            sigcheck();
            sleep_forever();
        }
        "respawn" => respawn(arg(words.next(), 100), arg(words.next(), 20)),
        other => {
            println!("unknown-mode {other}");
            std::process::exit(2);
        }
    }
}

/// Forks an intermediate child that forks `n` grandchildren which exit at
/// once; when all of them are zombies (each held the write end of a pipe the
/// intermediate reads to end-of-file), it stamps `orphans-released` and
/// exits, so the kernel hands all `n` zombies to init in one go and what
/// follows is init's reaping alone.
fn orphans(n: u64) {
    // SAFETY: plain fork/pipe/read/close/_exit; the children run no Rust
    // code that allocates or locks after fork.
    unsafe {
        let mid = fork();
        if mid == 0 {
            let mut fds = [0 as c_int; 2];
            if pipe(fds.as_mut_ptr()) != 0 {
                _exit(3);
            }
            for _ in 0..n {
                let c = fork();
                if c == 0 {
                    _exit(0);
                }
                if c < 0 {
                    _exit(4);
                }
            }
            close(fds[1]);
            let mut b = [0u8; 1];
            while read(fds[0], b.as_mut_ptr(), 1) > 0 {}
            event_raw(b"orphans-released");
            side_event("orphans-released");
            _exit(0);
        }
        let mut st = 0;
        waitpid(mid, &mut st, 0);
        if st != 0 {
            println!("orphans-failed {st}");
        }
        // The intermediate is reaped, so its zombies are init's by now.
        event_raw(b"orphans-reparented");
        side_event("orphans-reparented");
    }
}

/// Appends `<event> <ns>` to `/tmp/orphans.events`: a side channel for the
/// benchmark that does not pass through the supervisor (stdout does, for
/// matic-init, which is busy reaping at that moment).
fn side_event(event: &str) {
    let line = format!("{event} {}\n", mono_ns());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/orphans.events")
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Blocked mask and non-default dispositions as inherited from init,
/// captured before Rust's runtime installs its own SIGSEGV/SIGBUS handlers
/// and ignores SIGPIPE (an `.init_array` constructor runs before `main`).
static INHERITED_MASK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);
static INHERITED_NONDEFAULT: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(u64::MAX);

extern "C" fn capture_inherited() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut mask = 0u64;
    // SAFETY: queries the mask into a valid local (set is null).
    unsafe { sigprocmask(0, std::ptr::null(), &mut mask) };
    let mut nondefault = 0u64;
    for sig in 1..=64 {
        if sig == 9 || sig == 19 || sig == 32 || sig == 33 {
            continue;
        }
        let mut old = GlibcSigaction {
            handler: 0,
            mask: [0; 16],
            flags: 0,
            restorer: 0,
        };
        // SAFETY: queries a disposition into a valid local (act is null).
        if unsafe { sigaction(sig, std::ptr::null(), &mut old) } == 0 && old.handler != 0 {
            nondefault |= 1 << (sig - 1);
        }
    }
    INHERITED_MASK.store(mask, Relaxed);
    INHERITED_NONDEFAULT.store(nondefault, Relaxed);
}

#[used]
#[unsafe(link_section = ".init_array")]
static CAPTURE: extern "C" fn() = capture_inherited;

/// Reports what a service inherits: blocked mask, non-default signal
/// dispositions, session, cwd and environment.
fn sigcheck() {
    use std::sync::atomic::Ordering::Relaxed;
    let mask = INHERITED_MASK.load(Relaxed);
    let bits = INHERITED_NONDEFAULT.load(Relaxed);
    let nondefault: Vec<String> = (1..=64)
        .filter(|s| bits & (1u64 << (s - 1)) != 0)
        .map(|s: u32| s.to_string())
        .collect();
    // SAFETY: getsid/getpid have no preconditions.
    let leader = unsafe { getsid(0) == getpid() };
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "sigmask {mask:x}");
    let _ = writeln!(out, "nondefault [{}]", nondefault.join(","));
    let _ = writeln!(out, "session-leader {}", u8::from(leader));
    let _ = writeln!(out, "cwd {cwd}");
    let _ = writeln!(out, "env {}", env.join(" "));
    let _ = writeln!(out, "nofile {}", nofile());
    let _ = writeln!(out, "sigcheck-done");
}

/// `SOFT HARD` of RLIMIT_NOFILE (a test root has no `/proc`).
fn nofile() -> String {
    let mut lim = [0u64; 2];
    // SAFETY: getrlimit writes one struct rlimit (two u64) into a local.
    if unsafe { getrlimit(7, &mut lim) } != 0 {
        return "unknown".to_string();
    }
    format!("{} {}", lim[0], lim[1])
}

/// Respawn-latency probe: each run records (exit → this exec) latency,
/// then runs `stable_ms` (so init's backoff treats every crash as a first
/// crash: immediate restart) and crashes, until `samples` are collected.
fn respawn(samples: u64, stable_ms: u64) -> ! {
    let now = mono_ns();
    if let Ok(last) = std::fs::read_to_string("/run/respawn.last")
        && let Ok(t) = last.trim().parse::<u64>()
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open("/run/respawn.samples")
            .unwrap();
        let _ = writeln!(f, "{}", now.saturating_sub(t));
    }
    let have = std::fs::read_to_string("/run/respawn.samples")
        .map(|s| s.lines().count() as u64)
        .unwrap_or(0);
    if have >= samples {
        sleep_forever();
    }
    std::thread::sleep(std::time::Duration::from_millis(stable_ms));
    let _ = std::fs::write("/run/respawn.last", mono_ns().to_string());
    std::process::exit(1);
}

/// As `matic-agent`: the pipes init hands over (descriptor 3 on, in the
/// contract's order) are copied on, as the real agent keeps them, to
/// `/var/log/matic/<service>.log` (where the other tests read them) and
/// to `<service>.via-agent` (where the handoff test sees they came
/// through the agent's descriptors).
/// Writes `listening` to init's control FIFO, if it is there to read it.
fn tell_init_listening() {
    use std::os::unix::fs::OpenOptionsExt;
    let fifo = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(std::str::from_utf8(matic_contract::paths::CONTROL_PATH.to_bytes()).unwrap());
    if let Ok(mut f) = fifo {
        let _ = f.write_all(b"listening\n");
    }
}

fn relay_handed() {
    use matic_contract::handoff::{FIRST_FD, HANDED};
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::FileTypeExt;
    for (k, service) in HANDED.iter().enumerate() {
        // SAFETY: the number is this process's, inherited from init for
        // exactly this reader; nothing else in the process owns it.
        let mut pipe = unsafe { std::fs::File::from_raw_fd(FIRST_FD + k as c_int) };
        let is_pipe = pipe.metadata().is_ok_and(|m| m.file_type().is_fifo());
        let open = move |suffix: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(format!("/var/log/matic/{service}.{suffix}"))
        };
        let _ = writeln!(
            open("via-agent").unwrap(),
            "fd {} pipe {}",
            FIRST_FD + k as c_int,
            u8::from(is_pipe)
        );
        if !is_pipe {
            std::mem::forget(pipe);
            continue;
        }
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        for suffix in ["log", "via-agent"] {
                            let _ = open(suffix).and_then(|mut f| f.write_all(&buf[..n]));
                        }
                    }
                    // init's read end is non-blocking (the flag is shared).
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
    }
}
