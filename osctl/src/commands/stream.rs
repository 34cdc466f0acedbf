//! The streaming commands, `logs` (a service's or, with `--container`, a
//! container's) and `dmesg`: each node's stream is
//! printed as it arrives, whole lines prefixed `node: ` when there are
//! several nodes, or as JSON lines with `-o json`.
//!
//! Must never buffer a whole stream (`-f` runs until interrupted) or mix two
//! nodes' partial lines: a partial line is held until it completes.

use futures::StreamExt;
use matic_proto::v1::*;

use super::{Ctx, report_errors, write_out};
use crate::client::{ClientError, Connection};
use crate::output::{self, Format};

impl Ctx {
    /// Whether stream lines get a `node: ` prefix: only with several nodes,
    /// so a single node's log can be redirected to a file unchanged.
    fn prefix_streams(&self) -> bool {
        self.fleet.targets.len() > 1
    }

    /// `osctl logs SERVICE [-f] [--tail N]`: the bytes as they come, or
    /// JSON lines.
    pub(crate) async fn logs(&self, req: LogsRequest) -> i32 {
        let req = &req;
        self.log_streams(|mut c| async move {
            match c.client.logs(req.clone()).await {
                Ok(s) => Ok((c, s.into_inner())),
                Err(s) => Err(c.explain(&s)),
            }
        })
        .await
    }

    /// `osctl logs --container ID [--tail N]`: a container's output, as
    /// `logs` prints a service's.
    pub(crate) async fn container_logs(&self, req: ContainerLogsRequest) -> i32 {
        let req = &req;
        self.log_streams(|mut c| async move {
            match c.client.container_logs(req.clone()).await {
                Ok(s) => Ok((c, s.into_inner())),
                Err(s) => Err(c.explain(&s)),
            }
        })
        .await
    }

    /// Prints every node's `LogsResponse` stream that `open` starts: the
    /// bytes as they come (prefixed by node when there are several), or
    /// JSON lines.
    async fn log_streams<F, Fut>(&self, open: F) -> i32
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<
                Output = Result<(Connection, tonic::Streaming<LogsResponse>), ClientError>,
            >,
    {
        let prefix = self.prefix_streams();
        let json = self.format == Format::Json;
        let open = &open;
        let r = self
            .fleet
            .each(|node, c| async move {
                let (c, mut s) = open(c).await?;
                let mut p = output::LinePrefixer::new(&node);
                let mut jl = output::LinePrefixer::new("");
                loop {
                    match s.next().await {
                        Some(Ok(m)) => {
                            if json {
                                emit_json_lines(&node, &jl.push(&m.data));
                            } else if prefix {
                                write_out(&p.push(&m.data));
                            } else {
                                write_out(&m.data);
                            }
                        }
                        Some(Err(st)) => {
                            write_out(&p.finish());
                            return Err(c.explain(&st));
                        }
                        None => break,
                    }
                }
                if json {
                    emit_json_lines(&node, &jl.finish());
                } else if prefix {
                    write_out(&p.finish());
                }
                Ok(())
            })
            .await;
        report_errors(&r)
    }

    /// `osctl dmesg [-f] [--boot N]`: one line (or JSON line) per kernel
    /// message; an earlier boot's crash dumps each after a header line.
    pub(crate) async fn dmesg(&self, follow: bool, boot: i64) -> i32 {
        let prefix = self.prefix_streams();
        let json = self.format == Format::Json;
        let r = self
            .fleet
            .each(|node, mut c| async move {
                let mut s = c
                    .client
                    .dmesg(DmesgRequest { follow, boot })
                    .await
                    .map_err(|s| c.explain(&s))?
                    .into_inner();
                // The crash dump being printed (its header goes first).
                let mut dump = None;
                while let Some(m) = s.next().await {
                    let m = m.map_err(|st| c.explain(&st))?;
                    let mut out = String::new();
                    for k in &m.messages {
                        if !json && k.crash_dump.is_some() && k.crash_dump != dump {
                            dump = k.crash_dump.clone();
                            let header = dump.as_ref().map(output::crash_dump_header);
                            if prefix {
                                out += &format!("{node}: ");
                            }
                            out += &header.unwrap_or_default();
                            out.push('\n');
                        }
                        if json {
                            out += &output::kmsg_json(&node, boot, k).to_string();
                        } else if prefix {
                            out += &format!("{node}: {}", output::kmsg_line(k));
                        } else {
                            out += &output::kmsg_line(k);
                        }
                        out.push('\n');
                    }
                    write_out(out.as_bytes());
                }
                Ok(())
            })
            .await;
        report_errors(&r)
    }
}

fn emit_json_lines(node: &str, prefixed: &[u8]) {
    // `prefixed` came from a LinePrefixer with an empty node: lines start
    // with ": ".
    let text = String::from_utf8_lossy(prefixed);
    let mut out = String::new();
    for l in text.lines() {
        let line = l.strip_prefix(": ").unwrap_or(l);
        out += &serde_json::json!({"node": node, "line": line}).to_string();
        out.push('\n');
    }
    write_out(out.as_bytes());
}
