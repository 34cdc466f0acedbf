//! `Install`: a signed release into the inactive slot.
//!
//! Order of operations, so that no failure can leave a half-written slot
//! bootable, touch the running one, or touch the target for a release the
//! node would refuse anyway:
//! 1. take the install lock (a second install gets FAILED_PRECONDITION);
//! 2. the first message must be a header carrying the release's 4096-byte
//!    manifest block;
//! 3. before the target is touched: verify the manifest with the node's
//!    trusted keys (`--release-keys`; an unsigned or malformed one is
//!    INVALID_ARGUMENT "not a signed release", an unknown key or a bad
//!    signature INVALID_ARGUMENT, no key directory FAILED_PRECONDITION),
//!    check that its payload fits the slot before the manifest reserve
//!    (INVALID_ARGUMENT), and that its security counter is not below the
//!    running slot's (the running slot's manifest block, verified; none
//!    that verifies counts as 0) — else FAILED_PRECONDITION. A refusal here
//!    leaves the target as it was, GPT and bytes;
//! 4. invalidate the target slot (P=0 T=0 S=0), write the GPT, then zero its
//!    old manifest block (the slot no longer holds that release). matic-boot
//!    refuses this while the running slot is still on trial (not marked
//!    successful): the target may be the only proven slot;
//! 5. stream every chunk to the slot's byte range on a writer thread
//!    ([`SlotWriter`]: direct I/O where possible) while a checker thread
//!    feeds the same chunks to a [`StreamVerifier`], which checks every
//!    byte against the manifest's dm-verity tree and root hash on all
//!    cores (shared `Bytes`: no copy of the payload is kept; no serial
//!    SHA-256 of the whole payload, which would be the floor on one core);
//! 6. refuse a stream longer or shorter than the manifest's payload size,
//!    one that breaks off (client gone), or one that sends no message for
//!    [`InstallCtx::idle`] (it would hold the install lock forever);
//! 7. fsync the payload; refuse it (INVALID_ARGUMENT) when the check failed;
//!    write the manifest block at the start of the slot's last 64 KiB and
//!    fsync it; `finish_update` with the configured tries.
//!
//! Every refusal after step 4 leaves the target invalidated; no payload byte
//! is written to the running slot (the target is always the *other* slot and
//! the payload must fit its partition's byte range).
//!
//! The disk is opened once per install ([`InstallDisk`], at step 3) and that
//! one descriptor serves the reading of the running slot's manifest, the
//! GPT writes, the payload and the manifest block; each GPT step re-reads
//! the table under the agent's GPT lock.
//!
//! Never changes slot state except through [`slots`] (matic-boot's
//! transitions), never writes a slot before its release has been verified,
//! and never holds a copy of the payload.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use matic_boot::Slot;
use matic_proto::v1::{InstallRequest, InstallResponse, install_request::Msg};
use matic_release::Manifest;
use matic_release::manifest::{BLOCK_LEN, ManifestError, SLOT_RESERVE};
use matic_release::trusted::{TrustError, TrustedKeys};
use matic_release::verity::stream::{StreamVerifier, VerityError};
use tokio::sync::{Mutex, mpsc};
use tonic::Status;

use crate::release::{self, ReleaseError};
use crate::slot_writer::SlotWriter;
use crate::slots::{self, InstallDisk, SlotInfo};

/// Chunks buffered between the network and the writer thread, and again
/// between the writer and the checker.
const QUEUE: usize = 8;
/// How often the writer logs how far it is: a slow install (a slow link, a
/// throttled disk) shows in `osctl logs matic-agent` as it goes, and the
/// boot record keeps the last line before a cut (docs/history.md).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What an install needs from the agent.
#[derive(Debug, Clone)]
pub struct InstallCtx {
    pub disk: std::path::PathBuf,
    pub running: Slot,
    pub tries: u8,
    /// The node's trusted release keys (`--release-keys`).
    pub keys: TrustedKeys,
    /// Longest wait for the client's next message (`--install-idle-secs`).
    pub idle: Duration,
}

/// The install's incoming messages: tonic's `Streaming<InstallRequest>`, or
/// any stream of the same items (the tests').
pub trait Requests: Stream<Item = Result<InstallRequest, Status>> + Unpin + Send + 'static {}
impl<S: Stream<Item = Result<InstallRequest, Status>> + Unpin + Send + 'static> Requests for S {}

/// The next message, or ABORTED when the client has sent nothing for
/// `idle` (`what` says what was awaited, for the message).
async fn next_message(
    stream: &mut impl Requests,
    idle: Duration,
    what: impl FnOnce() -> String,
) -> Result<Result<Option<InstallRequest>, Status>, Status> {
    tokio::time::timeout(idle, async { stream.next().await.transpose() })
        .await
        .map_err(|_| {
            Status::aborted(format!(
                "install aborted: the client sent nothing for {} s {}",
                idle.as_secs_f64(),
                what()
            ))
        })
}

/// The status of a release the node refuses to verify or trust.
fn refusal(e: ReleaseError) -> Status {
    match &e {
        ReleaseError::NoKeys(_) => Status::failed_precondition(e.to_string()),
        ReleaseError::Trust(TrustError::Manifest(
            ManifestError::UnknownKey(_) | ManifestError::BadSignature(_),
        )) => Status::invalid_argument(format!("release refused: {e}")),
        ReleaseError::Trust(TrustError::Manifest(_)) => {
            Status::invalid_argument(format!("not a signed release: {e}"))
        }
        _ => Status::internal(e.to_string()),
    }
}

/// Runs one install to completion. The caller holds nothing; the lock is
/// taken here and held until the install has ended: past the writer
/// thread's last write (so a client that disappears can never have its late
/// writes overlap the next install) and past `finish_update`.
pub async fn run(
    lock: Arc<Mutex<()>>,
    ctx: InstallCtx,
    stream: impl Requests,
) -> Result<InstallResponse, Status> {
    let target = ctx.running.other();
    run_inner(lock, ctx, stream).await.inspect_err(|e| {
        eprintln!(
            "matic-agent: install into slot {target} refused: {}",
            e.message()
        );
    })
}

/// Steps 3 and 4: the checks that need no payload byte, then the target
/// invalidated and its old manifest block zeroed. Returns the verified
/// manifest, the disk and where the target is.
fn prepare(
    ctx: &InstallCtx,
    block: &[u8],
    target: Slot,
) -> Result<(Manifest, InstallDisk, SlotInfo), Status> {
    let manifest = release::verify(&ctx.keys, block).map_err(refusal)?;
    let mut disk = InstallDisk::open(&ctx.disk).map_err(slots::SlotError::into_status)?;
    let table = disk.table().map_err(slots::SlotError::into_status)?;
    let room = table.get(target).len.saturating_sub(SLOT_RESERVE);
    if manifest.payload_size > room {
        return Err(Status::invalid_argument(format!(
            "release {} has a payload of {} bytes; slot {target} holds at most {room} (its last {} KiB keep the manifest)",
            manifest.version(),
            manifest.payload_size,
            SLOT_RESERVE / 1024
        )));
    }
    let running = &table.get(ctx.running);
    let floor = match release::read_slot(disk.file(), disk.path(), ctx.running, running, &ctx.keys)
    {
        Ok(m) => m.counter,
        // No manifest that verifies: an image from before signed releases
        // or a damaged tail. It fixes no counter (docs/api.md).
        Err(e) if e.slot_has_none() => {
            eprintln!(
                "matic-agent: install: running slot {} has no valid manifest ({e}); its security counter counts as 0",
                ctx.running
            );
            0
        }
        Err(e) => return Err(Status::internal(e.to_string())),
    };
    if manifest.counter < floor {
        return Err(Status::failed_precondition(format!(
            "release {} has security counter {}, below the running slot's {floor}; it would undo a security fix",
            manifest.version(),
            manifest.counter
        )));
    }
    let range = disk
        .begin_update(target, ctx.running)
        .map_err(slots::SlotError::into_status)?;
    release::write_slot(disk.file(), disk.path(), target, &range, &[0u8; BLOCK_LEN])
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok((manifest, disk, range))
}

async fn run_inner(
    lock: Arc<Mutex<()>>,
    ctx: InstallCtx,
    mut stream: impl Requests,
) -> Result<InstallResponse, Status> {
    let guard = lock.try_lock_owned().map_err(|_| {
        Status::failed_precondition(
            "another install is in progress; try again when it has finished",
        )
    })?;
    let header = match next_message(&mut stream, ctx.idle, || {
        "while the header was awaited".into()
    })
    .await??
    {
        None => {
            return Err(Status::invalid_argument(
                "empty install stream: the first message must be the header",
            ));
        }
        Some(m) => match m.msg {
            Some(Msg::Header(h)) => h,
            Some(Msg::Chunk(_)) => {
                return Err(Status::invalid_argument(
                    "the first install message must be the header, got a chunk",
                ));
            }
            None => {
                return Err(Status::invalid_argument(
                    "the first install message is empty; it must be the header",
                ));
            }
        },
    };
    if header.manifest.len() != BLOCK_LEN {
        return Err(Status::invalid_argument(format!(
            "not a signed release: the header carries {} manifest bytes; a release's manifest block is {BLOCK_LEN}",
            header.manifest.len()
        )));
    }
    let target = ctx.running.other();

    // Steps 3 and 4, on a blocking thread (key file, disk reads, GPT write).
    // The disk is opened there, once, for the whole install.
    let (manifest, disk, range) = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || prepare(&ctx, &header.manifest, target))
            .await
            .map_err(|e| Status::internal(format!("install setup task: {e}")))??
    };
    let size = manifest.payload_size;
    eprintln!(
        "matic-agent: install: release {} (security counter {}, key {}), {size} bytes -> slot {target} on {}",
        manifest.version(),
        manifest.counter,
        manifest.key_id,
        ctx.disk.display()
    );
    let check = StreamVerifier::new(&manifest, verifier_threads())
        .map_err(|e| Status::internal(format!("install: {e}")))?;
    let writer = SlotWriter::new(disk, range.offset);

    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    // The writer thread holds the lock while it runs — if this future is
    // dropped (client gone), its late writes still cannot overlap the next
    // install — and hands it back when it stops: the lock is then held
    // here until `finish_update` has been written, so no second install
    // can invalidate the target in between and have its half-written
    // payload marked bootable by this one.
    let progress = Progress::new(size, target, std::time::Instant::now());
    let writer =
        tokio::task::spawn_blocking(move || (write_loop(writer, check, rx, progress), guard));
    let received = receive(&mut stream, size, tx, ctx.idle, target).await;
    // Always wait for the writer: it owns the lock and the disk handle.
    let (written, _guard) = writer
        .await
        .map_err(|e| Status::internal(format!("install writer task: {e}")))?;
    let received = received?;
    let (mut disk, checked) = written.map_err(|e| Status::internal(e.to_string()))?;
    if let Err(e) = checked {
        return Err(Status::invalid_argument(format!(
            "release {} refused: {e}; slot {target} left unbootable",
            manifest.version()
        )));
    }
    // `received` is short only when a thread stopped early, and then one
    // of the two results above held its error.
    debug_assert!(received == size);
    let tries = ctx.tries;
    let block = manifest.render_block();
    tokio::task::spawn_blocking(move || -> Result<(), Status> {
        release::write_slot(disk.file(), disk.path(), target, &range, &block)
            .map_err(|e| Status::internal(e.to_string()))?;
        disk.finish_update(target, tries)
            .map_err(|e| Status::internal(e.to_string()))
    })
    .await
    .map_err(|e| Status::internal(format!("install finish task: {e}")))??;
    eprintln!(
        "matic-agent: install: slot {target} holds release {} ({size} bytes), bootable with {tries} tries",
        manifest.version()
    );
    Ok(InstallResponse {
        slot: target.to_string(),
        version: manifest.version().to_owned(),
        bytes_written: size,
        tries: u32::from(tries),
    })
}

/// Pulls chunks off the stream, checks the length, hands them to the
/// writer. Returns the byte count, which equals `size` unless the writer
/// stopped early.
async fn receive(
    stream: &mut impl Requests,
    size: u64,
    tx: mpsc::Sender<Bytes>,
    idle: Duration,
    target: Slot,
) -> Result<u64, Status> {
    let mut total: u64 = 0;
    loop {
        let awaited =
            || format!("after {total} of {size} bytes; target slot {target} left unbootable");
        let msg = match next_message(stream, idle, awaited).await? {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                return Err(Status::aborted(format!(
                    "install stream broke off after {total} of {size} bytes ({}); target slot left unbootable",
                    e.message()
                )));
            }
        };
        let chunk = match msg.msg {
            Some(Msg::Chunk(c)) => c,
            Some(Msg::Header(_)) => {
                return Err(Status::invalid_argument(
                    "a second header in the install stream",
                ));
            }
            None => continue,
        };
        total += chunk.len() as u64;
        if total > size {
            return Err(Status::invalid_argument(format!(
                "install stream is longer than the manifest's payload of {size} bytes; target slot left unbootable"
            )));
        }
        if tx.send(chunk).await.is_err() {
            // The writer stopped: its error is the one to report.
            return Ok(total);
        }
    }
    if total < size {
        return Err(Status::invalid_argument(format!(
            "install stream ended after {total} of the manifest's {size} payload bytes; target slot left unbootable"
        )));
    }
    Ok(total)
}

/// Threads hashing the payload's data blocks: every core (the writer
/// mostly waits for the disk, the network side for the client).
fn verifier_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Writes chunks in order through `disk` on a scoped writer thread while a
/// scoped checker thread checks them; on the end of the channel finishes
/// the write (durable) and returns the disk and the check's verdict.
/// Checking and writing overlap instead of taking turns. A failed check
/// stops the writer (no point writing a refused payload); a failed write is
/// the error. (Both are named threads of their own, `install-write` and
/// `install-check`, so a profile or `scripts/bench-install` can tell their
/// CPU from the API's runtime threads.)
fn write_loop(
    disk: SlotWriter,
    check: StreamVerifier,
    mut rx: mpsc::Receiver<Bytes>,
    mut progress: Progress,
) -> Result<(InstallDisk, Result<(), VerityError>), slots::SlotError> {
    let (to_checker, chunks) = std::sync::mpsc::sync_channel::<Bytes>(QUEUE);
    let path = disk.path().to_owned();
    let spawn_error = |what| {
        let path = path.clone();
        move |source| slots::SlotError::Io {
            path,
            op: what,
            source,
        }
    };
    std::thread::scope(|s| {
        let checker = std::thread::Builder::new()
            .name("install-check".into())
            .spawn_scoped(s, move || {
                let mut check = check;
                for chunk in chunks {
                    check.push(chunk)?;
                }
                check.finish()
            })
            .map_err(spawn_error("starting the checker thread for"))?;
        let writer = std::thread::Builder::new()
            .name("install-write".into())
            .spawn_scoped(s, move || {
                write_and_forward(disk, &mut rx, &to_checker, &mut progress)
            })
            .map_err(spawn_error("starting the writer thread for"));
        // With panic = abort neither thread can unwind, so join cannot fail.
        // A writer that could not start dropped `to_checker`: the checker
        // ends too.
        let written = writer.and_then(|w| w.join().expect("writer thread"));
        let checked = checker.join().expect("checker thread");
        written.map(|disk| (disk, checked))
    })
}

/// The writer's half of [`write_loop`]: each chunk to disk, then on to the
/// checker; at the end of the stream (or when the checker has refused), the
/// write made durable.
fn write_and_forward(
    mut disk: SlotWriter,
    rx: &mut mpsc::Receiver<Bytes>,
    to_checker: &std::sync::mpsc::SyncSender<Bytes>,
    progress: &mut Progress,
) -> Result<InstallDisk, slots::SlotError> {
    while let Some(chunk) = rx.blocking_recv() {
        // To the checker first (a shared `Bytes`, not a copy): it hashes
        // the chunk while the disk writes it.
        if to_checker.send(chunk.clone()).is_err() {
            break; // the checker refused the payload
        }
        disk.write(&chunk)?;
        if let Some(line) = progress.wrote(chunk.len() as u64, std::time::Instant::now()) {
            eprintln!("matic-agent: install: {line}");
        }
    }
    disk.finish()
}

/// The writer's progress, as a line at most every [`PROGRESS_EVERY`].
struct Progress {
    size: u64,
    target: Slot,
    written: u64,
    last: std::time::Instant,
}

impl Progress {
    fn new(size: u64, target: Slot, now: std::time::Instant) -> Progress {
        Progress {
            size,
            target,
            written: 0,
            last: now,
        }
    }

    /// Counts `n` bytes written; the line to log when one is due.
    fn wrote(&mut self, n: u64, now: std::time::Instant) -> Option<String> {
        self.written += n;
        if now.duration_since(self.last) < PROGRESS_EVERY {
            return None;
        }
        self.last = now;
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        Some(format!(
            "slot {}: {:.1} of {:.1} MiB written ({}%)",
            self.target,
            mib(self.written),
            mib(self.size),
            (self.written * 100).checked_div(self.size).unwrap_or(100)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matic_boot::Disk;
    use matic_proto::v1::{InstallHeader, InstallRequest};
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    use matic_tests::release::{Release, TestKey};

    /// A disk file with A installed, booted and marked successful: the
    /// state in which an install into B is allowed.
    fn proven_a_disk(path: &Path) {
        let mut d = matic_tests::disk::create(path, 3);
        d.finish_update(Slot::A, 3).unwrap();
        assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
        d.mark_successful(Slot::A).unwrap();
        d.write().unwrap();
    }

    #[test]
    fn progress_lines_come_every_two_seconds_of_writing() {
        let t0 = std::time::Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut p = Progress::new(8 << 20, Slot::B, t0);
        assert_eq!(p.wrote(1 << 20, at(500)), None);
        assert_eq!(p.wrote(1 << 20, at(1_999)), None);
        assert_eq!(
            p.wrote(1 << 20, at(2_000)).as_deref(),
            Some("slot B: 3.0 of 8.0 MiB written (37%)")
        );
        assert_eq!(p.wrote(1 << 20, at(3_500)), None);
        assert_eq!(
            p.wrote(4 << 20, at(4_100)).as_deref(),
            Some("slot B: 8.0 of 8.0 MiB written (100%)")
        );
    }

    /// The test release key, trusted in `base/keys`.
    fn key() -> TestKey {
        TestKey::from_seed(9)
    }

    /// A release whose data is not block-aligned (version 9.9, counter 1).
    fn test_release() -> Release {
        let data: Vec<u8> = (0..3_000_001u32)
            .map(|i| (i * 13 + i / 977) as u8)
            .collect();
        Release::build(&key(), "9.9", 1, &data)
    }

    /// The messages of an install of `r`: the header, then uneven chunks.
    fn install_messages(r: &Release) -> Vec<Result<InstallRequest, Status>> {
        let header = InstallHeader {
            manifest: r.block.clone(),
        };
        let mut msgs = vec![Ok(InstallRequest {
            msg: Some(Msg::Header(header)),
        })];
        msgs.extend(r.payload.chunks(300_007).map(|c| {
            Ok(InstallRequest {
                msg: Some(Msg::Chunk(Bytes::copy_from_slice(c))),
            })
        }));
        msgs
    }

    /// An install into B, A running, on the disk in `base`, trusting the
    /// test key.
    fn ctx_for(base: &Path) -> InstallCtx {
        key().trust_in(&base.join("keys"));
        InstallCtx {
            disk: base.join("disk.img"),
            running: Slot::A,
            tries: 3,
            keys: TrustedKeys::new(base.join("keys")),
            idle: Duration::from_secs(30),
        }
    }

    /// One whole install of [`test_image`] into B through `run`, in this
    /// process.
    fn install_into_b(base: &Path) -> InstallResponse {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(run(
            Arc::new(Mutex::new(())),
            ctx_for(base),
            futures::stream::iter(install_messages(&test_release())),
        ))
        .unwrap()
    }

    /// The install lock is held until the install has ended, `finish_update`
    /// included: a second install taking it between the last image byte and
    /// the GPT write could invalidate the target, start writing, and have
    /// its half-written image marked bootable by the first. A thread tries
    /// the lock without pause from the moment the install holds it; when it
    /// gets it, B must already be the next boot on the disk.
    #[test]
    fn the_install_lock_is_held_until_the_target_is_marked_bootable() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let base = std::env::temp_dir().join(format!("matic-install-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("state")).unwrap();
        proven_a_disk(&base.join("disk.img"));
        let lock = Arc::new(Mutex::new(()));
        let done = Arc::new(AtomicBool::new(false));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (resp, free_early) = rt.block_on(async {
            let (tx, rx) = mpsc::channel(4);
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            let mut install = Box::pin(run(lock.clone(), ctx_for(&base), stream));
            // The first poll takes the lock, then waits for the header.
            assert!(futures::poll!(&mut install).is_pending());
            assert!(lock.try_lock().is_err(), "the install holds the lock");
            // Whoever gets the lock must find the install finished: B
            // already the next boot on the disk.
            let prober = {
                let (lock, done, disk) = (lock.clone(), done.clone(), base.join("disk.img"));
                std::thread::spawn(move || {
                    while !done.load(Ordering::SeqCst) {
                        if let Ok(_held) = lock.try_lock() {
                            let f = std::fs::File::open(&disk).unwrap();
                            return Disk::open(f).unwrap().status().next != Some(Slot::B);
                        }
                        std::hint::spin_loop();
                    }
                    false
                })
            };
            tokio::spawn(async move {
                for m in install_messages(&test_release()) {
                    tx.send(m).await.unwrap();
                }
            });
            let resp = install.await;
            done.store(true, Ordering::SeqCst);
            (resp, prober.join().unwrap())
        });
        assert_eq!(resp.unwrap().slot, "B");
        assert!(
            !free_early,
            "the install lock was free before the install had ended"
        );
        let d = Disk::open(std::fs::File::open(base.join("disk.img")).unwrap()).unwrap();
        assert_eq!(d.status().next, Some(Slot::B));
        let _ = std::fs::remove_dir_all(&base);
    }

    /// The disk is opened once per install: under strace, a whole install
    /// (first GPT write, the image, the last GPT write) opens the disk's
    /// path exactly once, and the install is complete. (The install runs in
    /// a child of this test binary so the trace holds only it; the disk is
    /// made and checked here. Needs `strace`, which
    /// `scripts/lib/deps.sh` installs; a missing one fails the test.)
    #[test]
    fn an_install_opens_the_disk_once() {
        if let Some(dir) = crate::strace_test::child_dir() {
            let resp = install_into_b(Path::new(&dir));
            assert_eq!(resp.slot, "B");
            return;
        }
        let base = std::env::temp_dir().join(format!("matic-install-opens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("state")).unwrap();
        let disk = base.join("disk.img");
        proven_a_disk(&disk);
        let trace = crate::strace_test::trace_test(
            "install::tests::an_install_opens_the_disk_once",
            "open,openat,openat2",
            &base,
        );
        // The install is whole: B is next with 3 tries, holds the payload,
        // and its manifest block verifies at the slot's tail.
        let r = test_release();
        let (file, table) = slots::open_table(&disk).unwrap();
        let b = table.get(Slot::B);
        assert_eq!((b.attrs.priority(), b.attrs.tries()), (2, 3));
        let mut back = vec![0u8; r.payload.len()];
        file.read_exact_at(&mut back, b.offset).unwrap();
        assert!(back == r.payload, "slot B does not hold the payload");
        let keys = TrustedKeys::new(base.join("keys"));
        let m = crate::release::read_slot(&file, &disk, Slot::B, &b, &keys).unwrap();
        assert_eq!(m, r.manifest);
        let quoted = format!("\"{}\"", disk.display());
        let opens: Vec<&str> = trace.lines().filter(|l| l.contains(&quoted)).collect();
        assert_eq!(
            opens.len(),
            1,
            "the install opened {quoted} {} times:\n{}",
            opens.len(),
            opens.join("\n")
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Writes `payload` in uneven chunks through [`write_loop`] at 1 MiB
    /// into an 8 MiB file in `dir`, checked against `r`'s manifest; returns
    /// the check's verdict and the bytes at the offset.
    fn write_checked(
        dir: &Path,
        r: &Release,
        payload: &[u8],
    ) -> (Result<(), VerityError>, Vec<u8>) {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("disk");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let offset = 1 << 20;
        let (tx, rx) = mpsc::channel(QUEUE);
        let feeder = {
            let payload = payload.to_vec();
            std::thread::spawn(move || {
                for piece in payload.chunks(40_000 + 1) {
                    // The writer stops taking chunks when the check refuses.
                    if tx.blocking_send(Bytes::copy_from_slice(piece)).is_err() {
                        return;
                    }
                }
            })
        };
        let disk = InstallDisk::open(&path).unwrap();
        let check = StreamVerifier::new(&r.manifest, 2).unwrap();
        let progress = Progress::new(payload.len() as u64, Slot::B, std::time::Instant::now());
        let (_, checked) = write_loop(SlotWriter::new(disk, offset), check, rx, progress).unwrap();
        feeder.join().unwrap();
        let mut back = vec![0u8; payload.len()];
        std::fs::File::open(&path)
            .unwrap()
            .read_exact_at(&mut back, offset)
            .unwrap();
        (checked, back)
    }

    /// Many uneven chunks through the writer and the checker: the bytes
    /// land at the offset, in order, and the payload passes its check.
    #[test]
    fn writer_places_every_chunk_and_the_check_passes() {
        let dir = std::env::temp_dir().join(format!("matic-install-writer-{}", std::process::id()));
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i * 7 + i / 4093) as u8)
            .collect();
        let r = Release::build(&key(), "1.0", 1, &data);
        let (checked, back) = write_checked(&dir, &r, &r.payload);
        checked.unwrap();
        assert!(back == r.payload, "bytes on disk differ from the payload");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One byte changed anywhere in the payload fails the check.
    #[test]
    fn a_flipped_payload_byte_fails_the_check() {
        let dir = std::env::temp_dir().join(format!("matic-install-flip-{}", std::process::id()));
        let r = Release::build(&key(), "1.0", 1, &[0x5a; 200_000]);
        for at in [0, 4096 * 20 + 7, r.payload.len() - 1] {
            let mut bad = r.payload.clone();
            bad[at] ^= 0x01;
            let (checked, _) = write_checked(&dir, &r, &bad);
            assert!(checked.is_err(), "byte {at} flipped passed the check");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
