//! The two programs as a container runtime runs them: their output, exit
//! codes, signals and the echo.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn pause_exits_0_on_sigterm_and_sigint() {
    for sig in ["-TERM", "-INT"] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_matic-pause"))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(c.try_wait().unwrap().is_none(), "pause ended by itself");
        kill(c.id(), sig);
        let st = c.wait().unwrap();
        assert_eq!(st.code(), Some(0), "{sig}: {st:?}");
    }
}

#[test]
fn pause_ignores_sigchld_and_keeps_waiting() {
    let mut c = Command::new(env!("CARGO_BIN_EXE_matic-pause"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill(c.id(), "-CHLD");
    std::thread::sleep(Duration::from_millis(200));
    assert!(c.try_wait().unwrap().is_none(), "SIGCHLD ended pause");
    kill(c.id(), "-TERM");
    assert_eq!(c.wait().unwrap().code(), Some(0));
}

#[test]
fn workload_prints_and_exits_with_its_code() {
    let out = Command::new(env!("CARGO_BIN_EXE_matic-workload"))
        .args(["--say", "ran here", "--exit", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran here\n");
    let out = Command::new(env!("CARGO_BIN_EXE_matic-workload"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "matic-workload: hello\n"
    );
}

#[test]
fn workload_refuses_bad_arguments() {
    for bad in [&["--exit", "256"][..], &["--echo"], &["--what"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_matic-workload"))
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn workload_echoes_then_exits_with_its_code() {
    let port = 40000 + (std::process::id() % 20000) as u16;
    let mut c = Command::new(env!("CARGO_BIN_EXE_matic-workload"))
        .args(["--echo", &port.to_string(), "--conns", "1", "--exit", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "matic-workload: hello");
    assert!(lines.next().unwrap().unwrap().contains("echo on port"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    s.write_all(b"ping 123").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = String::new();
    s.read_to_string(&mut back).unwrap();
    assert_eq!(back, "ping 123");
    assert_eq!(c.wait().unwrap().code(), Some(5));
}
