//! `oci-archive`: writes a one-layer OCI image archive from files on disk,
//! for the image build (the node's pause image and the test workload).
//!
//! `oci-archive --name localhost/matic/pause:1 --entrypoint /pause \
//!    --file pause=target/.../matic-pause --out pause.tar`
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use matic_oci::layout::RunConfig;
use matic_oci::{Compression, ImageSpec, LayerFile, Platform, write_archive};

#[derive(Parser)]
#[command(about = "Write a one-layer OCI image archive")]
struct Args {
    /// The image's full reference, e.g. localhost/matic/pause:1.
    #[arg(long)]
    name: String,
    /// The entrypoint, one argument per flag.
    #[arg(long = "entrypoint", required = true)]
    entrypoint: Vec<String>,
    /// PATH_IN_IMAGE=HOST_FILE, executable (0755).
    #[arg(long = "file", required = true)]
    files: Vec<String>,
    /// Store the layer as plain tar instead of tar+gzip.
    #[arg(long)]
    uncompressed: bool,
    /// The archive to write.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(digest) => {
            println!("{} {}", args.name, digest);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oci-archive: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<String, String> {
    let mut files = Vec::new();
    for f in &args.files {
        let (path, host) = f
            .split_once('=')
            .ok_or_else(|| format!("--file {f:?}: expected PATH_IN_IMAGE=HOST_FILE"))?;
        let data = std::fs::read(host).map_err(|e| format!("{host}: {e}"))?;
        files.push(LayerFile {
            path: path.to_string(),
            mode: 0o755,
            data,
        });
    }
    let spec = ImageSpec {
        name: args.name.clone(),
        platform: Platform::host(),
        run: RunConfig {
            entrypoint: args.entrypoint.clone(),
            ..RunConfig::default()
        },
        files,
        compression: if args.uncompressed {
            Compression::Uncompressed
        } else {
            Compression::Gzip
        },
    };
    let tmp = args.out.with_extension("tmp");
    let out = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let written = write_archive(&spec, std::io::BufWriter::new(out)).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    Ok(written.manifest.digest)
}
