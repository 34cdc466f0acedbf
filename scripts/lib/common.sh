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

matic_log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
matic_die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# matic_help: print the calling script's header comment (its usage).
matic_help() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; }

# matic_cargo_build [CARGO_ARGS...]: build every binary in release mode.
# matic-init goes alone first: built in one invocation with the std crates,
# Cargo would unify the std features of shared dependencies (rustix,
# matic-boot) into the no_std PID 1 and it would not link.
matic_cargo_build() {
  cargo build --release --locked "$@" -p matic-init --manifest-path "$MATIC_ROOT/Cargo.toml"
  cargo build --workspace --release --locked "$@" --exclude matic-init --manifest-path "$MATIC_ROOT/Cargo.toml"
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
