//! The transport side of `osctl install`: where the release comes from (a
//! file, or an https URL downloaded to a temporary file first; plain http
//! only when the operator says `--insecure`, and never by a redirect), the
//! optional `--sha256` of the whole file (checked before any node is
//! contacted), and the request stream (the manifest block as the header,
//! then the payload in [`CHUNK`]-sized chunks read from the file just ahead
//! of tonic: the release is never held in memory).
//!
//! Must never: hand a node bytes other than the release's payload after
//! its manifest (what a release file is, is [`crate::release::file`]'s), or
//! bytes whose digest differs from the one the operator asked for.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;
use matic_proto::v1::{InstallHeader, InstallRequest, install_request};
use matic_release::hex;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// Size of each chunk on the wire: well under tonic's 4 MiB message limit,
/// large enough that per-message overhead is negligible.
pub const CHUNK: usize = 256 * 1024;

/// Errors of the image side, naming the file or URL.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read release {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot download {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("cannot write the download to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "osctl install no longer takes --version: the version is in the release's signed manifest (set it with `osctl release sign --version V`)"
    )]
    VersionFlag,
    #[error(
        "refusing {0}: plain http:// can be altered on the way; use https://, or pass --insecure (best with --sha256) to accept it"
    )]
    Insecure(String),
    #[error(
        "release {image} has SHA-256 {got}, not {want} as --sha256 expects; nothing was sent to any node"
    )]
    DigestMismatch {
        image: String,
        got: String,
        want: String,
    },
}

/// Parses `--sha256 HEX`: exactly 64 hexadecimal digits (either case).
pub fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected 64 hexadecimal digits (as sha256sum prints them), got {} characters",
            s.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        // Checked above: ASCII hex digits only, so this cannot fail.
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Refuses a digest other than the one the operator expects.
pub fn check_digest(
    image: &str,
    got: &[u8; 32],
    want: Option<&[u8; 32]>,
) -> Result<(), ImageError> {
    match want {
        Some(w) if w != got => Err(ImageError::DigestMismatch {
            image: image.to_string(),
            got: hex::string(got),
            want: hex::string(w),
        }),
        _ => Ok(()),
    }
}

/// Is `s` an http(s) URL rather than a path?
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// SHA-256 and size of a file, read in 1 MiB blocks; `progress` gets the
/// byte count after every block.
pub async fn sha256_file(
    path: &Path,
    progress: impl Fn(u64),
) -> Result<([u8; 32], u64), ImageError> {
    let err = |source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = tokio::fs::File::open(path).await.map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).await.map_err(err)?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
        progress(n);
    }
    Ok((h.finalize().into(), n))
}

/// Refuses a URL that is not `https://` unless `insecure`.
pub fn check_scheme(url: &str, insecure: bool) -> Result<(), ImageError> {
    if url.starts_with("https://") || insecure {
        Ok(())
    } else {
        Err(ImageError::Insecure(url.to_string()))
    }
}

/// Redirects followed at most (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// The redirect rule: at most [`MAX_REDIRECTS`] hops, and never from
/// https to plain http, `--insecure` or not: `--insecure` accepts an http
/// URL the operator typed, not a downgrade a server (or whoever sits
/// between) chose.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
        if from_https && attempt.url().scheme() != "https" {
            let why = format!(
                "redirected to {}, which would drop TLS; refused",
                attempt.url()
            );
            attempt.error(why)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// Download `url` into `dest`, streaming; `progress(done, total)`. Only
/// `https://` unless `insecure` (then `http://` too); a redirect may never
/// leave https.
pub async fn download(
    url: &str,
    insecure: bool,
    dest: &Path,
    progress: impl Fn(u64, Option<u64>),
) -> Result<(), ImageError> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    check_scheme(url, insecure)?;
    let dl = |reason: String| ImageError::Download {
        url: url.to_string(),
        reason,
    };
    // reqwest's own message repeats the URL we already name: keep its causes.
    let reason = |e: &reqwest::Error| match std::error::Error::source(e) {
        Some(cause) => crate::client::chain_text(cause),
        None => e.to_string(),
    };
    let client = reqwest::Client::builder()
        .redirect(redirect_policy())
        .build()
        .map_err(|e| dl(reason(&e)))?;
    let resp = client.get(url).send().await.map_err(|e| dl(reason(&e)))?;
    if !resp.status().is_success() {
        return Err(dl(format!("the server answered {}", resp.status())));
    }
    let total = resp.content_length();
    let werr = |source| ImageError::Write {
        path: dest.to_path_buf(),
        source,
    };
    let mut f = tokio::fs::File::create(dest).await.map_err(werr)?;
    let mut body = resp.bytes_stream();
    let mut done = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| dl(reason(&e)))?;
        f.write_all(&chunk).await.map_err(werr)?;
        done += chunk.len() as u64;
        progress(done, total);
    }
    f.flush().await.map_err(werr)?;
    if let Some(t) = total
        && t != done
    {
        return Err(dl(format!("got {done} of {t} bytes")));
    }
    Ok(())
}

/// A temporary file removed on drop (the downloaded image).
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(tag: &str) -> TempFile {
        use std::time::{SystemTime, UNIX_EPOCH};
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        TempFile(std::env::temp_dir().join(format!("osctl-{tag}-{}-{nanos}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A local read error met while streaming, reported instead of the node's
/// complaint about a short stream.
pub type ReadFailure = Arc<Mutex<Option<std::io::Error>>>;

/// Chunks read ahead of the network: enough to keep the connection busy
/// while the next read waits on the disk.
const READ_AHEAD: usize = 4;

/// The Install request stream: the header, then `len` bytes of the file
/// from byte `offset` (the payload after the manifest block) in [`CHUNK`]
/// pieces; `sent(n)` is called with each chunk's size as tonic takes it.
/// A reader thread reads the file with plain `read`s into fresh buffers
/// (no zero-fill, no per-chunk hop through tokio's file shim) and stops
/// as soon as the stream is dropped. A file shorter than `offset + len` is
/// a read failure (the stream then ends short and the node refuses it).
pub fn request_stream(
    path: PathBuf,
    header: InstallHeader,
    (offset, len): (u64, u64),
    sent: impl Fn(u64) + Send + 'static,
    failure: ReadFailure,
) -> impl Stream<Item = InstallRequest> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    // A plain thread, not spawn_blocking: the stream can be built outside a
    // runtime, and the thread ends with the file or with the stream.
    let spawn_failure = failure.clone();
    let reader = std::thread::Builder::new()
        .name("osctl-image-reader".into())
        .spawn(move || {
            let header = InstallRequest {
                msg: Some(install_request::Msg::Header(header)),
            };
            if tx.blocking_send(header).is_err() {
                return;
            }
            if let Err(e) = read_chunks(&path, offset, len, |chunk| {
                tx.blocking_send(InstallRequest {
                    msg: Some(install_request::Msg::Chunk(chunk)),
                })
                .is_ok()
            }) {
                *failure.lock().unwrap() = Some(e);
            }
        });
    if let Err(e) = reader {
        // The stream then ends at once and the failure is what is reported.
        *spawn_failure.lock().unwrap() = Some(e);
    }
    futures::StreamExt::inspect(tokio_stream::wrappers::ReceiverStream::new(rx), move |m| {
        if let Some(install_request::Msg::Chunk(c)) = &m.msg {
            sent(c.len() as u64);
        }
    })
}

/// Reads `len` bytes of `path` from `offset` in [`CHUNK`]-sized pieces
/// (only the last may be shorter) and hands each to `send` until it
/// returns false or `len` bytes were sent; the file ending first is an
/// `UnexpectedEof` error.
fn read_chunks(
    path: &Path,
    offset: u64,
    len: u64,
    mut send: impl FnMut(Bytes) -> bool,
) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut left = len;
    while left > 0 {
        let want = left.min(CHUNK as u64);
        let mut buf = Vec::with_capacity(want as usize);
        // `take` + `read_to_end` fills the spare capacity directly and keeps
        // reading until the chunk is full or the file ends.
        (&f).take(want).read_to_end(&mut buf)?;
        if (buf.len() as u64) < want {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended {} bytes before the payload's end",
                    left - buf.len() as u64
                ),
            ));
        }
        left -= want;
        if !send(Bytes::from(buf)) {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use futures::StreamExt;

    #[test]
    fn urls_and_paths() {
        assert!(is_url("https://x/y") && is_url("http://x") && !is_url("/tmp/http:x"));
    }

    #[test]
    fn expected_digests() {
        let d: [u8; 32] = Sha256::digest(b"image").into();
        let h = hex::string(&d);
        assert_eq!(h.len(), 64);
        assert_eq!(parse_sha256(&h).unwrap(), d);
        assert_eq!(parse_sha256(&h.to_uppercase()).unwrap(), d);
        assert!(parse_sha256(&h[1..]).is_err());
        assert!(parse_sha256(&format!("{}g", &h[1..])).is_err());
        assert!(check_digest("i", &d, None).is_ok());
        assert!(check_digest("i", &d, Some(&d)).is_ok());
        let other = [0u8; 32];
        let e = check_digest("maticos-1.img", &d, Some(&other)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "release maticos-1.img has SHA-256 {h}, not {} as --sha256 expects; nothing was sent to any node",
                "0".repeat(64)
            )
        );
    }

    #[tokio::test]
    async fn plain_http_needs_insecure() {
        let d = TempDir::new("http");
        let e = download(
            "http://127.0.0.1:9/x-1.img",
            false,
            &d.path().join("x"),
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ImageError::Insecure(_)), "{e}");
        assert!(!d.path().join("x").exists());
    }

    #[tokio::test]
    async fn hash_covers_the_file_and_stream_exactly_the_payload() {
        let d = TempDir::new("img");
        let p = d.path().join("maticos-1.0.release");
        // A 4096-byte head, 2.5 chunks of a non-repeating pattern, a tail
        // that is not the payload's.
        let payload: Vec<u8> = (0..(CHUNK * 5 / 2) as u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut file = vec![0xaa; 4096];
        file.extend_from_slice(&payload);
        file.extend_from_slice(b"not payload");
        std::fs::write(&p, &file).unwrap();
        let (digest, size) = sha256_file(&p, |_| {}).await.unwrap();
        assert_eq!(size, file.len() as u64);
        assert_eq!(digest.as_slice(), Sha256::digest(&file).as_slice());

        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s2 = sent.clone();
        let failure = ReadFailure::default();
        let header = InstallHeader {
            manifest: vec![0xaa; 4096],
        };
        let msgs: Vec<InstallRequest> = request_stream(
            p.clone(),
            header.clone(),
            (4096, payload.len() as u64),
            move |n| {
                s2.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            },
            failure.clone(),
        )
        .collect()
        .await;
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0].msg, Some(install_request::Msg::Header(header)));
        let mut body = Vec::new();
        for (i, m) in msgs[1..].iter().enumerate() {
            let Some(install_request::Msg::Chunk(c)) = &m.msg else {
                panic!("chunk expected")
            };
            assert_eq!(c.len(), if i < 2 { CHUNK } else { CHUNK / 2 });
            body.extend_from_slice(c);
        }
        assert_eq!(body, payload);
        assert_eq!(
            sent.load(std::sync::atomic::Ordering::Relaxed),
            payload.len() as u64
        );
        assert!(failure.lock().unwrap().is_none());

        // A file that ends before the payload does is a read failure.
        let failure = ReadFailure::default();
        let msgs: Vec<_> = request_stream(
            p.clone(),
            InstallHeader::default(),
            (4096, file.len() as u64),
            |_| {},
            failure.clone(),
        )
        .collect()
        .await;
        assert_eq!(msgs.len(), 3, "the header and the two whole chunks");
        let e = failure.lock().unwrap().take().expect("a short file fails");
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn missing_file_is_recorded_as_read_failure() {
        let failure = ReadFailure::default();
        let msgs: Vec<_> = request_stream(
            PathBuf::from("/nonexistent/osctl-image"),
            InstallHeader::default(),
            (4096, 1),
            |_| {},
            failure.clone(),
        )
        .collect()
        .await;
        assert_eq!(msgs.len(), 1, "only the header");
        assert!(failure.lock().unwrap().is_some());
    }
}
