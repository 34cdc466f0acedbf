//! Checks a payload against its signed manifest while it streams in, on
//! several cores: the agent pushes each received chunk here beside writing
//! it to the slot, and the install is accepted only if [`StreamVerifier::finish`]
//! is.
//!
//! How: data blocks are hashed on `threads` worker threads (whole 4 KiB
//! blocks handed over as zero-copy `Bytes` slices of the received chunks;
//! only a block straddling two chunks is copied), their digests kept (32 B
//! per block). The superblock block is checked byte by byte but its UUID
//! ([`superblock::check`]) when it arrives, after which the workers are
//! joined. The tree arrives top level first, so each tree block is checked
//! on arrival: the top against the root hash, every other block against its
//! digest in the level above (kept, already checked), a level-0 block's
//! digests against the data blocks' digests, and the zero padding after a
//! block's last digest. Nothing is accepted before every byte has been
//! accounted for and the length is exactly the manifest's payload size.
//!
//! Memory: the data digests (0.8 % of the data), the tree above level 0
//! (≈ 0.006 % of the data), one partial block, and a bounded queue of at
//! most `2 × threads` jobs of at most [`JOB_BLOCKS`] blocks (`push` blocks
//! when it is full: backpressure on the sender).
//!
//! Must never: accept a payload before every byte is accounted for, leave a
//! worker thread running after the verifier is gone (`Drop` joins them), or
//! use `unsafe`.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;

use super::digest::Salted;
use super::{DIGEST_LEN, Geometry, superblock};
use crate::manifest::Manifest;

/// Most data blocks in one job handed to a worker (256 KiB of 4 KiB blocks):
/// large enough that the queue costs nothing per block, small enough that a
/// large chunk is shared between the workers.
pub const JOB_BLOCKS: usize = 64;

/// Why a payload is refused. Every message names what did not match.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerityError {
    #[error("the payload is longer than the manifest's {size} bytes")]
    TooLong { size: u64 },
    #[error("the payload ends after {received} of the manifest's {size} bytes")]
    TooShort { received: u64, size: u64 },
    #[error(
        "the verity superblock (payload bytes {offset}..{end}) does not match the manifest's verity parameters",
        end = offset + block_len
    )]
    Superblock { offset: u64, block_len: u64 },
    #[error("the top of the verity tree does not hash to the manifest's root hash")]
    Root,
    #[error(
        "verity tree level {level} block {index} (payload byte {offset}) does not match its digest in the level above"
    )]
    TreeBlock {
        level: usize,
        index: u64,
        offset: u64,
    },
    #[error(
        "verity tree level {level} block {index} (payload byte {offset}) is not zero after its last digest"
    )]
    TreePadding {
        level: usize,
        index: u64,
        offset: u64,
    },
    #[error(
        "data block {index} (payload byte {offset}) does not match its digest in the verity tree"
    )]
    DataBlock { index: u64, offset: u64 },
    #[error("starting a verity worker thread: {0}")]
    Spawn(String),
    #[error("a verity worker thread stopped")]
    Worker,
}

/// Data blocks `first..` to hash.
struct Job {
    first: u64,
    blocks: Bytes,
}

/// What a worker hashed: runs of digests starting at a data block.
type Digests = Vec<(u64, Vec<[u8; DIGEST_LEN]>)>;

/// Checks one payload, pushed in order; see the module doc.
pub struct StreamVerifier {
    geometry: Geometry,
    salt: Vec<u8>,
    salted: Salted,
    root_hash: [u8; DIGEST_LEN],
    payload_size: u64,
    /// Bytes pushed so far (complete blocks and `partial`).
    received: u64,
    /// Data blocks handed to the workers.
    data_sent: u64,
    /// Hash blocks seen after the data (0 = none; the first is the superblock).
    hash_seen: u64,
    /// A block begun in one chunk and not yet complete.
    partial: Vec<u8>,
    /// `None` once the workers are joined (the data is complete).
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<Digests>>,
    /// The data blocks' digests, filled when the workers are joined.
    data_digests: Vec<[u8; DIGEST_LEN]>,
    /// Tree blocks of levels 1 and up (checked), from the top level's start.
    upper: Vec<u8>,
    /// The first error: every later call returns it again.
    failed: Option<VerityError>,
}

impl StreamVerifier {
    /// A verifier for the payload `manifest` describes, hashing data on
    /// `threads` worker threads (at least one).
    pub fn new(manifest: &Manifest, threads: usize) -> Result<Self, VerityError> {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(2 * threads);
        let rx = Arc::new(Mutex::new(rx));
        let salted = Salted::new(manifest.salt());
        let block = manifest.geometry.data_block_size as usize;
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads {
            let (rx, salted) = (Arc::clone(&rx), salted.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("verity-{n}"))
                .spawn(move || work(&rx, &salted, block));
            match spawned {
                Ok(handle) => workers.push(handle),
                // Dropping `tx` ends the workers already started; their
                // handles are joined by the Drop of `Self` below.
                Err(e) => {
                    drop(tx);
                    for w in workers {
                        let _ = w.join();
                    }
                    return Err(VerityError::Spawn(e.to_string()));
                }
            }
        }
        Ok(Self {
            geometry: manifest.geometry,
            salt: manifest.salt().to_vec(),
            salted,
            root_hash: manifest.root_hash,
            payload_size: manifest.payload_size,
            received: 0,
            data_sent: 0,
            hash_seen: 0,
            partial: Vec::new(),
            jobs: Some(tx),
            workers,
            data_digests: Vec::new(),
            upper: Vec::new(),
            failed: None,
        })
    }

    /// The payload's next bytes, in order, any chunk size. Blocks while the
    /// workers' queue is full. After an error, returns that error again.
    pub fn push(&mut self, chunk: Bytes) -> Result<(), VerityError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.take(chunk);
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    /// After the last byte: every data and tree block checked up to the
    /// root hash, the superblock by its fields, the length exactly the
    /// manifest's payload size.
    pub fn finish(mut self) -> Result<(), VerityError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.received != self.payload_size {
            return Err(VerityError::TooShort {
                received: self.received,
                size: self.payload_size,
            });
        }
        // The whole payload was pushed, so every block was checked as it
        // came (the last tree block closes the last level).
        debug_assert!(self.jobs.is_none() && self.partial.is_empty());
        Ok(())
    }

    fn fail(&mut self, e: VerityError) {
        self.failed = Some(e);
        // Stop hashing data nobody will use.
        self.jobs = None;
    }

    fn data_block_len(&self) -> usize {
        self.geometry.data_block_size as usize
    }

    fn hash_block_len(&self) -> usize {
        self.geometry.hash_block_size as usize
    }

    /// Bytes of the block that starts at `received`, and whether it is data.
    fn next_block(&self) -> (usize, bool) {
        if self.data_sent < self.geometry.data_blocks {
            (self.data_block_len(), true)
        } else {
            (self.hash_block_len(), false)
        }
    }

    fn take(&mut self, mut chunk: Bytes) -> Result<(), VerityError> {
        if chunk.len() as u64 > self.payload_size - self.received {
            return Err(VerityError::TooLong {
                size: self.payload_size,
            });
        }
        self.received += chunk.len() as u64;
        while !chunk.is_empty() {
            let (len, data) = self.next_block();
            if !self.partial.is_empty() || chunk.len() < len {
                // A block split between chunks: the one copy.
                let n = (len - self.partial.len()).min(chunk.len());
                self.partial.extend_from_slice(&chunk.split_to(n));
                if self.partial.len() == len {
                    let block = Bytes::from(std::mem::take(&mut self.partial));
                    self.block(block, data)?;
                }
            } else if data {
                // Whole data blocks straight from the chunk, no copy.
                let left = (self.geometry.data_blocks - self.data_sent) as usize;
                let blocks = (chunk.len() / len).min(left).min(JOB_BLOCKS);
                let run = chunk.split_to(blocks * len);
                self.send(run)?;
            } else {
                let block = chunk.split_to(len);
                self.block(block, false)?;
            }
        }
        Ok(())
    }

    /// One complete block (data or hash).
    fn block(&mut self, block: Bytes, data: bool) -> Result<(), VerityError> {
        if data {
            self.send(block)
        } else {
            self.hash_block(&block)
        }
    }

    /// Hands whole data blocks to the workers.
    fn send(&mut self, blocks: Bytes) -> Result<(), VerityError> {
        let first = self.data_sent;
        self.data_sent += (blocks.len() / self.data_block_len()) as u64;
        let jobs = self.jobs.as_ref().ok_or(VerityError::Worker)?;
        jobs.send(Job { first, blocks })
            .map_err(|_| VerityError::Worker)
    }

    /// The superblock or a tree block, in payload order.
    fn hash_block(&mut self, block: &[u8]) -> Result<(), VerityError> {
        let g = self.geometry;
        let seen = self.hash_seen;
        self.hash_seen += 1;
        if seen == 0 {
            if !superblock::check(block, &g, &self.salt) {
                return Err(VerityError::Superblock {
                    offset: g.data_len(),
                    block_len: u64::from(g.hash_block_size),
                });
            }
            self.join_workers()?;
            if g.levels == 0 {
                // One data block: the root is its digest.
                if self.data_digests[0] != self.root_hash {
                    return Err(VerityError::Root);
                }
            }
            return Ok(());
        }
        // Payload block number of this tree block, and its level and index:
        // levels are laid out top first.
        let at = g.hash_start_block + (seen - 1);
        let (level, index) = (0..g.levels)
            .rev()
            .find_map(|l| {
                let start = g.level_start(l);
                (at < start + g.level_blocks(l)).then(|| (l, at - start))
            })
            .expect("the payload size bounds the tree blocks");
        let offset = at * u64::from(g.hash_block_size);
        let digest = self.salted.digest(block);
        let expected: &[u8] = if level + 1 == g.levels {
            &self.root_hash
        } else {
            let (blk, off) = g.digest_position(level + 1, index);
            let at = (blk - g.hash_start_block) as usize * self.hash_block_len() + off;
            &self.upper[at..at + DIGEST_LEN]
        };
        if digest[..] != *expected {
            return Err(if level + 1 == g.levels {
                VerityError::Root
            } else {
                VerityError::TreeBlock {
                    level,
                    index,
                    offset,
                }
            });
        }
        // Digests this block holds: those of the level below (the data for
        // level 0); zeros after the last.
        let below = if level == 0 {
            g.data_blocks
        } else {
            g.level_blocks(level - 1)
        };
        let per = g.digests_per_block();
        let first = index * per;
        let held = (below - first).min(per) as usize;
        if block[held * DIGEST_LEN..].iter().any(|&b| b != 0) {
            return Err(VerityError::TreePadding {
                level,
                index,
                offset,
            });
        }
        if level == 0 {
            for (k, stored) in block[..held * DIGEST_LEN]
                .chunks_exact(DIGEST_LEN)
                .enumerate()
            {
                let data = first + k as u64;
                if self.data_digests[data as usize][..] != *stored {
                    return Err(VerityError::DataBlock {
                        index: data,
                        offset: data * u64::from(g.data_block_size),
                    });
                }
            }
        } else {
            self.upper.extend_from_slice(block);
        }
        Ok(())
    }

    /// Closes the queue, waits for the workers and gathers their digests.
    fn join_workers(&mut self) -> Result<(), VerityError> {
        self.jobs = None;
        let blocks = self.geometry.data_blocks as usize;
        self.data_digests = vec![[0; DIGEST_LEN]; blocks];
        let mut filled = 0usize;
        let mut stopped = false;
        for w in std::mem::take(&mut self.workers) {
            match w.join() {
                Ok(runs) => {
                    for (first, digests) in runs {
                        let first = first as usize;
                        filled += digests.len();
                        self.data_digests[first..first + digests.len()].copy_from_slice(&digests);
                    }
                }
                Err(_) => stopped = true,
            }
        }
        if stopped || filled != blocks {
            return Err(VerityError::Worker);
        }
        Ok(())
    }
}

impl Drop for StreamVerifier {
    fn drop(&mut self) {
        // Closing the queue ends the workers once it is drained.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker: hashes the jobs it takes from the shared queue until it closes.
fn work(jobs: &Mutex<Receiver<Job>>, salted: &Salted, block: usize) -> Digests {
    let mut done = Digests::new();
    loop {
        // The lock is held only to take one job, not while hashing.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return done,
        };
        let Ok(job) = job else { return done };
        let digests = job
            .blocks
            .chunks_exact(block)
            .map(|b| salted.digest(b))
            .collect();
        done.push((job.first, digests));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyId;
    use crate::verity::build;

    fn manifest(built: &build::Built, salt: &[u8]) -> Manifest {
        Manifest::new(
            "1",
            0,
            [0; 32],
            built.geometry,
            salt,
            built.root_hash,
            KeyId([0; 8]),
        )
        .unwrap()
    }

    fn check(payload: &[u8], m: &Manifest, chunk: usize) -> Result<(), VerityError> {
        let mut v = StreamVerifier::new(m, 2)?;
        let bytes = Bytes::copy_from_slice(payload);
        for at in (0..payload.len()).step_by(chunk) {
            v.push(bytes.slice(at..(at + chunk).min(payload.len())))?;
        }
        v.finish()
    }

    #[test]
    fn accepts_the_reference_payload_in_any_chunking() {
        let data: Vec<u8> = (0..300 * 4096 + 5).map(|i| (i % 251) as u8).collect();
        let salt = [3u8; 32];
        let built = build::payload(&data, &salt, [1; 16]);
        let m = manifest(&built, &salt);
        for chunk in [1, 1000, 4096, 4097, 65536, 1 << 20, built.payload.len()] {
            assert_eq!(check(&built.payload, &m, chunk), Ok(()), "chunk {chunk}");
        }
    }

    #[test]
    fn names_what_failed() {
        let data = vec![9u8; 200 * 4096];
        let built = build::payload(&data, &[], [1; 16]);
        let m = manifest(&built, &[]);
        let g = built.geometry;
        let flip = |at: usize| {
            let mut p = built.payload.clone();
            p[at] ^= 0x10;
            check(&p, &m, 8192)
        };
        assert_eq!(
            flip(5 * 4096 + 7),
            Err(VerityError::DataBlock {
                index: 5,
                offset: 5 * 4096
            })
        );
        assert!(matches!(
            flip(200 * 4096 + 2),
            Err(VerityError::Superblock { .. })
        ));
        let top = g.level_start(1) as usize * 4096;
        assert_eq!(flip(top + 3), Err(VerityError::Root));
        let leaf = g.level_start(0) as usize * 4096;
        assert_eq!(
            flip(leaf + 4096 + 1),
            Err(VerityError::TreeBlock {
                level: 0,
                index: 1,
                offset: (leaf + 4096) as u64
            })
        );
        let mut p = built.payload.clone();
        p.pop();
        assert_eq!(
            check(&p, &m, 4096),
            Err(VerityError::TooShort {
                received: p.len() as u64,
                size: m.payload_size
            })
        );
        let mut p = built.payload.clone();
        p.push(0);
        assert_eq!(
            check(&p, &m, 4096),
            Err(VerityError::TooLong {
                size: m.payload_size
            })
        );
    }

    #[test]
    fn an_error_sticks_and_drop_joins_the_workers() {
        let built = build::payload(&[1u8; 10 * 4096], &[], [0; 16]);
        let m = manifest(&built, &[]);
        let mut v = StreamVerifier::new(&m, 3).unwrap();
        let too_long = Bytes::from(vec![0u8; built.payload.len() + 1]);
        let e = v.push(too_long).unwrap_err();
        assert_eq!(v.push(Bytes::from_static(b"x")), Err(e.clone()));
        assert_eq!(v.finish(), Err(e));
        // Dropped half-way with jobs queued: Drop must return (joined).
        let mut v = StreamVerifier::new(&m, 2).unwrap();
        v.push(Bytes::copy_from_slice(&built.payload[..5 * 4096]))
            .unwrap();
        drop(v);
    }
}
