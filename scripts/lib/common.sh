#!/usr/bin/env bash
# Shared settings and helpers for MaticOS's build and VM scripts (sourced, not run).
#
# Every path a script writes lives under $MATIC_OUT (default: out/ in the
# repository); downloads are cached under $MATIC_CACHE so a second run works
# offline. Cargo's own CARGO_TARGET_DIR is honoured (default: target/).

MATIC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MATIC_OUT=${MATIC_OUT:-$MATIC_ROOT/out}
MATIC_CACHE=${MATIC_CACHE:-$MATIC_OUT/cache}
MATIC_TARGET=${CARGO_TARGET_DIR:-$MATIC_ROOT/target}
MATIC_RELEASE=$MATIC_TARGET/release
# The PKI is generated once and kept: a rebuilt disk keeps the same CA, so an
# osctl config made earlier still works.
MATIC_PKI=${MATIC_PKI:-$MATIC_OUT/pki}
# The release signing key, likewise made once and kept: every image built
# here trusts its public half, so a release signed later installs on a disk
# built earlier (docs/image.md, "Release keys").
MATIC_RELEASE_KEYS=${MATIC_RELEASE_KEYS:-$MATIC_OUT/release-keys}
export MATIC_ROOT MATIC_OUT MATIC_CACHE MATIC_TARGET MATIC_RELEASE MATIC_PKI MATIC_RELEASE_KEYS

# The kernel command line every disk's loader starts with (build-disk adds
# matic.disk_guid= and its --append; the matic.* parameters are
# docs/interfaces.md's contract). loglevel=7: the serial log shows init's
# info lines (stage 1, the slot chosen, services), the only record of a
# boot whose API never comes up. No lockdown=: kexec_file_load under
# lockdown needs a signature the loader's kernel trusts, which Debian's
# signed kernels do not have here, so stage 1 turns lockdown on itself
# (docs/image.md, "The loader").
MATIC_LOGLEVEL=${MATIC_LOGLEVEL:-${VM_LOGLEVEL:-7}}
MATIC_CMDLINE_BASE="console=ttyS0 panic=5 loglevel=$MATIC_LOGLEVEL matic.ip=10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3"

matic_log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
matic_die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# matic_help: print the calling script's header comment (its usage).
matic_help() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; }

# matic_build_init [CARGO_ARGS...]: build matic-init's PID 1 binary in
# release mode, the one way every script builds it (a build elsewhere
# without the flag would rebuild it, and the last build decides what
# ships). `-C relocation-model=static` (absolute addresses, vtables in plain
# read-only data; the binary is already linked -no-pie: docs/init.md,
# "Size") goes to that binary alone: stable Cargo has no per-package
# rustflags, and RUSTFLAGS would reach the agent and every build script.
# The profile's `strip` is off for it (build.rs strips the release binary
# itself): a different `strip` changes the crates' metadata hashes, so the
# symbols' names and order, and the unstripped build that
# scripts/test.d/20-init-static makes would not have the shipped code's
# addresses, which the panic handler logs (docs/init.md, "Size").
matic_build_init() {
  CARGO_PROFILE_RELEASE_STRIP=false cargo rustc --release --locked "$@" -p matic-init --bin matic-init \
    --manifest-path "$MATIC_ROOT/Cargo.toml" -- -C relocation-model=static
}

# The static pause and test workload programs (workloads/), built for an
# explicit --target so their own directory holds them: a plain workspace
# build (scripts/test's) rebuilds the host-target copies without
# crt-static and would otherwise replace what the images package.
MATIC_WORKLOADS_TARGET=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
MATIC_WORKLOADS_BIN=$MATIC_TARGET/$MATIC_WORKLOADS_TARGET/release
# The node's sandbox image (contract/src/workloads.rs PAUSE_IMAGE; the
# image's containerd-config.toml names it as sandbox_image) and the test
# workload's.
MATIC_PAUSE_IMAGE=localhost/matic/pause:1
MATIC_WORKLOAD_IMAGE=localhost/matic/workload:1

# matic_build_workloads [CARGO_ARGS...]: build matic-pause and
# matic-workload static (-C target-feature=+crt-static: an image layer
# holds the one file, no libraries), stripped.
matic_build_workloads() {
  local b
  for b in matic-pause matic-workload; do
    cargo rustc --release --locked "$@" -p matic-workloads --bin "$b" \
      --target "$MATIC_WORKLOADS_TARGET" --manifest-path "$MATIC_ROOT/Cargo.toml" \
      -- -C target-feature=+crt-static -C strip=symbols
  done
}

# matic_workload_images DIR: write pause.tar and workload.tar (OCI image
# archives, docs/image.md "Workload images") into DIR from the static
# binaries; prints each image's name and manifest digest.
matic_workload_images() {
  local dir=$1 tool=$MATIC_RELEASE/oci-archive
  [ -x "$tool" ] || matic_die "$tool missing: run cargo build --workspace --release"
  [ -x "$MATIC_WORKLOADS_BIN/matic-pause" ] || matic_die "$MATIC_WORKLOADS_BIN/matic-pause missing: run scripts/build-image (matic_build_workloads)"
  mkdir -p "$dir"
  "$tool" --name "$MATIC_PAUSE_IMAGE" --entrypoint /pause \
    --file "pause=$MATIC_WORKLOADS_BIN/matic-pause" --out "$dir/pause.tar"
  "$tool" --name "$MATIC_WORKLOAD_IMAGE" --entrypoint /workload \
    --file "workload=$MATIC_WORKLOADS_BIN/matic-workload" --out "$dir/workload.tar"
}

# matic_cargo_build [CARGO_ARGS...]: build every binary in release mode.
# matic-init goes alone first: built in one invocation with the std crates,
# Cargo would unify the std features of shared dependencies (rustix,
# matic-boot) into the no_std PID 1 and it would not link.
matic_cargo_build() {
  matic_build_init "$@"
  cargo build --workspace --release --locked "$@" --exclude matic-init --manifest-path "$MATIC_ROOT/Cargo.toml"
  matic_build_workloads "$@"
}

# matic_pki: make the API's PKI in $MATIC_PKI unless it is there.
matic_pki() {
  if [ -s "$MATIC_PKI/server.key" ] && [ -s "$MATIC_PKI/osctlconfig" ]; then
    matic_log "reusing the existing PKI"
    return 0
  fi
  [ -x "$MATIC_RELEASE/osctl" ] || matic_die "$MATIC_RELEASE/osctl missing: run cargo build --workspace --release"
  # SANs: the host-forwarded address, the node's address on QEMU's network.
  "$MATIC_RELEASE/osctl" gen-certs --out "$MATIC_PKI" \
    --san 127.0.0.1 --san 10.0.2.15 --san localhost >/dev/null
}

# matic_release_keys: make the release key in $MATIC_RELEASE_KEYS unless it
# is there (osctl release keygen never overwrites one).
matic_release_keys() {
  [ -s "$MATIC_RELEASE_KEYS/release.key" ] && return 0
  [ -x "$MATIC_RELEASE/osctl" ] || matic_die "$MATIC_RELEASE/osctl missing: run cargo build --workspace --release"
  matic_log "making the release key in $MATIC_RELEASE_KEYS"
  "$MATIC_RELEASE/osctl" release keygen --out "$MATIC_RELEASE_KEYS" >&2
}

# matic_need CMD...: fail with a clear message when a host tool is missing.
matic_need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || matic_die "missing host tool '$c' (run scripts/lib/deps.sh)"
  done
}

# matic_apt_known PKG: make sure apt knows PKG, running `apt-get update`
# once if it does not (a fresh machine or container may have no lists yet).
matic_apt_known() {
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  apt-cache show "$1" >/dev/null 2>&1 && return 0
  matic_log "apt does not know $1: running apt-get update"
  $sudo apt-get update -qq >&2 || matic_die "apt-get update failed"
  apt-cache show "$1" >/dev/null 2>&1 || matic_die "no Debian package $1"
}

# matic_default_kernel_package: the versioned kernel package the images use
# unless told otherwise: what linux-image-amd64 resolves to, resolved once
# and cached ($MATIC_CACHE/kernel-package) so later runs stay offline and on
# the same kernel.
matic_default_kernel_package() {
  local pkg
  if [ -s "$MATIC_CACHE/kernel-package" ]; then
    cat "$MATIC_CACHE/kernel-package"
    return 0
  fi
  matic_apt_known linux-image-amd64
  pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
  [ -n "$pkg" ] || matic_die "could not resolve linux-image-amd64 to a versioned package (apt-get update?)"
  mkdir -p "$MATIC_CACHE" && echo "$pkg" >"$MATIC_CACHE/kernel-package"
  echo "$pkg"
}

# matic_other_kernel_package: the newest linux-image-6.1.0-N-amd64 that apt
# knows as a dependency of some version of linux-image-amd64 (the point
# release's and the security update's, e.g. 6.1.0-50 and 6.1.0-57) other
# than the default one: the second kernel the kernel-update tests install.
matic_other_kernel_package() {
  local def other
  def=$(matic_default_kernel_package)
  matic_apt_known linux-image-amd64
  other=$(apt-cache show linux-image-amd64 |
    sed -n 's/^Depends:.*\(linux-image-[0-9][0-9.]*-[0-9][0-9]*-amd64\).*/\1/p' |
    grep -vxF "$def" | sort -u -V | tail -n1)
  [ -n "$other" ] || matic_die "apt knows no kernel package besides $def (apt-cache show linux-image-amd64; apt-get update?)"
  echo "$other"
}

# matic_kernel_id VMLINUZ MAIN_ARCHIVE: the kernel-id line (without its
# newline) of a kernel and its initramfs's main archive: "<kernel release>
# <SHA-256 of the vmlinuz bytes followed by the main archive bytes>"
# (docs/interfaces.md, "/boot ... and the kernel id"). The release is the
# one in the bzImage's header.
matic_kernel_id() {
  local vmlinuz=$1 main=$2 kver hex
  kver=$(matic_bzimage_release "$vmlinuz")
  [[ $kver =~ ^[A-Za-z0-9._+-]+$ ]] || matic_die "$vmlinuz: no usable kernel release ('$kver')"
  hex=$(cat "$vmlinuz" "$main" | sha256sum | cut -d' ' -f1)
  echo "$kver $hex"
}

# matic_bzimage_release VMLINUZ: the kernel release from a bzImage's header
# (the version string the setup header points at, up to its first blank).
matic_bzimage_release() {
  local off
  # Boot protocol: kernel_version (u16 at 0x20e) + 0x200 is the string.
  off=$(od -An -tu2 -j $((0x20e)) -N2 "$1" | tr -d ' ')
  [ -n "$off" ] || matic_die "$1: not a bzImage"
  dd if="$1" bs=1 skip=$((off + 0x200)) count=64 status=none | tr '\0' '\n' | head -n1 | cut -d' ' -f1
}

# matic_kernel_id_cpio ID_FILE: print the initramfs's second archive: an
# uncompressed newc cpio holding only /boot (0755) and /boot/kernel-id
# (0644, ID_FILE's bytes), root-owned, mtime 0: the same id gives the same
# bytes.
matic_kernel_id_cpio() {
  local stage
  stage=$(mktemp -d "${TMPDIR:-/tmp}/matic-kid.XXXXXX")
  # `command`: scripts/e2e/lib.sh has a shell function named install.
  command install -d -m 0755 "$stage/boot"
  command install -m 0644 "$1" "$stage/boot/kernel-id"
  (cd "$stage" && touch -h -d @0 boot boot/kernel-id &&
    printf 'boot\nboot/kernel-id\n' | cpio -o -H newc -R 0:0 --reproducible --quiet)
  rm -rf "$stage"
}

# matic_check_kernel_id VMLINUZ INITRD ID_FILE: ID_FILE is the kernel id of
# this kernel and initramfs: INITRD ends with the id archive
# matic_kernel_id_cpio makes from ID_FILE, and the line is the one
# matic_kernel_id computes from VMLINUZ and what precedes that archive (the
# main archive). Prints what differs and fails otherwise.
matic_check_kernel_id() {
  local vmlinuz=$1 initrd=$2 idf=$3 tmp main_len want got
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/matic-kidcheck.XXXXXX")
  matic_kernel_id_cpio "$idf" >"$tmp/id.cpio"
  main_len=$(($(stat -c %s "$initrd") - $(stat -c %s "$tmp/id.cpio")))
  if ((main_len <= 0)) || ! cmp -s "$tmp/id.cpio" <(tail -c +$((main_len + 1)) "$initrd"); then
    echo "$initrd does not end with the id archive of $idf"
    rm -rf "$tmp"
    return 1
  fi
  head -c "$main_len" "$initrd" >"$tmp/main"
  want=$(cat "$idf")
  got=$(matic_kernel_id "$vmlinuz" "$tmp/main")
  rm -rf "$tmp"
  [[ $want =~ ^[A-Za-z0-9._+-]+\ [0-9a-f]{64}$ ]] && [ "$(wc -l <"$idf")" = 1 ] ||
    { echo "$idf: not one line '<release> <64 hex>'"; return 1; }
  [ "$want" = "$got" ] || { echo "$idf says '$want'; $vmlinuz and $initrd's main archive give '$got'"; return 1; }
}

# matic_check_loader UKI KERNEL INITRD CMDLINE_FILE: UKI is a PE32+ (x86-64)
# image whose .linux, .initrd and .cmdline sections hold exactly those
# files' bytes and which has an .osrel section. Prints what differs and
# fails otherwise. Used by build-loader and the image audit.
matic_check_loader() {
  local uki=$1 tmp sec want bad=0
  shift
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/matic-uki.XXXXXX")
  if ! objdump -f "$uki" 2>/dev/null | grep -q 'file format pei-x86-64'; then
    echo "$uki is not a PE32+ x86-64 image"
    rm -rf "$tmp"
    return 1
  fi
  for sec in .osrel .linux .initrd .cmdline; do
    objcopy --dump-section "$sec=$tmp/$sec" "$uki" "$tmp/scratch" 2>/dev/null ||
      { echo "$uki has no $sec section"; bad=1; continue; }
    case $sec in
      .linux) want=$1 ;;
      .initrd) want=$2 ;;
      .cmdline) want=$3 ;;
      *) continue ;;
    esac
    cmp -s "$tmp/$sec" "$want" || { echo "$uki: $sec is not $want byte for byte"; bad=1; }
  done
  rm -rf "$tmp"
  return "$bad"
}

# matic_release_boot RELEASE DIR: extract a release file's /boot
# (vmlinuz, initrd.img, kernel-id) into DIR. A release file is its
# 4096-byte manifest block, then the payload, whose first bytes are the
# SquashFS.
matic_release_boot() {
  local f
  mkdir -p "$2"
  for f in vmlinuz initrd.img kernel-id; do
    unsquashfs -o 4096 -cat "$1" "/boot/$f" >"$2/$f" 2>/dev/null && [ -s "$2/$f" ] ||
      matic_die "release $1 has no /boot/$f (built before releases carried their kernel?)"
  done
}

# matic_apt_fetch PKG DESTDIR: download a Debian package into the cache (once)
# and unpack it into DESTDIR (once). Prints the path of the .deb.
matic_apt_fetch() {
  local pkg=$1 dest=$2 debdir=$MATIC_CACHE/debs deb
  mkdir -p "$debdir"
  deb=$(compgen -G "$debdir/${pkg}_*.deb" | head -n1 || true)
  if [ -z "$deb" ]; then
    matic_apt_known "$pkg"
    matic_log "downloading Debian package $pkg"
    (cd "$debdir" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2) || matic_die "apt-get download $pkg failed"
    deb=$(compgen -G "$debdir/${pkg}_*.deb" | head -n1 || true)
    [ -n "$deb" ] || matic_die "apt-get download $pkg produced no .deb in $debdir"
  fi
  if [ ! -e "$dest/.unpacked" ]; then
    rm -rf "$dest" && mkdir -p "$dest"
    dpkg -x "$deb" "$dest" || matic_die "dpkg -x $deb failed"
    touch "$dest/.unpacked"
  fi
  printf '%s\n' "$deb"
}

# matic_copy_with_libs STAGE BIN DEST: copy an ELF binary to STAGE/DEST plus
# every shared library the dynamic loader resolves for it (and the loader),
# at the same absolute paths. Fails when a library cannot be resolved.
matic_copy_with_libs() {
  local stage=$1 bin=$2 dest=$3 line lib
  install -D -m 0755 "$bin" "$stage$dest"
  # A static binary has no PT_INTERP: nothing more to copy.
  if ! readelf -l "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
    return 0
  fi
  local ldso
  ldso=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
  [ -x "$ldso" ] || matic_die "$bin: loader $ldso not on the build host"
  local out
  out=$("$ldso" --list "$bin") || matic_die "$bin: the loader could not resolve its libraries"
  if grep -q 'not found' <<<"$out"; then
    matic_die "$bin: unresolved libraries: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
  fi
  while read -r line; do
    # Forms: "libx.so.1 => /lib/.../libx.so.1 (0x...)", "/lib64/ld-linux... (0x...)", "linux-vdso..."
    lib=
    case $line in
      *'=> /'*) lib=${line#*=> }; lib=${lib%% *} ;;
      /*) lib=${line%% *} ;;
    esac
    [ -n "$lib" ] || continue
    # Keep the path the loader will look up; copy the real file behind symlinks.
    install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib"
  done <<<"$out"
  # The loader itself, at its PT_INTERP path.
  install -D -m 0755 "$(readlink -f "$ldso")" "$stage$ldso"
}
