//! `matic-workload`: the test workload. Prints one line to stdout, then
//! optionally serves a TCP echo, then exits with the code its arguments
//! name, so a test sees a container's output, its network and its exit
//! status.
//!
//! `matic-workload [--say TEXT] [--echo PORT [--conns N]] [--exit CODE]`
//! (defaults: the line `matic-workload: hello`, no echo, exit 0). With
//! `--echo`, it serves N connections (default: until SIGTERM or SIGINT,
//! then exits with CODE), echoing each until the peer closes it.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

use matic_workloads::sys;

struct Args {
    say: String,
    echo: Option<u16>,
    conns: Option<u64>,
    exit: u8,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        say: "matic-workload: hello".into(),
        echo: None,
        conns: None,
        exit: 0,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--say" => a.say = value()?,
            "--echo" => a.echo = Some(value()?.parse().map_err(|_| "--echo: a port".to_string())?),
            "--conns" => {
                a.conns = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--conns: a count".to_string())?,
                )
            }
            "--exit" => {
                a.exit = value()?
                    .parse()
                    .map_err(|_| "--exit: 0 to 255".to_string())?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn echo(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("matic-workload: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}", args.say);
    if let Some(port) = args.echo {
        // Blocked before the listener thread exists, so it inherits the mask
        // and only this thread takes SIGTERM.
        let blocked = match sys::block(&[sys::SIGTERM, sys::SIGINT]) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("matic-workload: blocking signals: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match TcpListener::bind(("0.0.0.0", port)) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("matic-workload: listening on port {port}: {e}");
                return ExitCode::from(2);
            }
        };
        println!("matic-workload: echo on port {port}");
        let code = args.exit;
        let conns = args.conns;
        std::thread::spawn(move || {
            for (served, s) in listener.incoming().flatten().enumerate() {
                echo(s);
                if conns.is_some_and(|n| served as u64 + 1 >= n) {
                    std::process::exit(code.into());
                }
            }
        });
        blocked.wait();
    }
    ExitCode::from(args.exit)
}
