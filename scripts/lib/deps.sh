#!/usr/bin/env bash
# Installs the Debian packages MaticOS's scripts need, only when missing.
# Usage: scripts/lib/deps.sh   (sourced or run; needs root or sudo)
set -euo pipefail

MATIC_APT_PACKAGES=(
  qemu-system-x86 qemu-utils squashfs-tools e2fsprogs gdisk cpio zstd kmod strace
  tini catatonit dumb-init busybox-static runit s6 util-linux procps
  socat libseccomp2 jq iproute2 cryptsetup-bin
  # agent/tests/workloads.rs runs Debian's containerd and runc as the node does.
  containerd runc
  # The disk's loader and UEFI boots: systemd's EFI stub, objcopy/objdump,
  # FAT32 made and filled without mounting, the firmware.
  systemd-boot-efi binutils dosfstools mtools ovmf
)

# deps_missing: the packages of the list not installed now.
deps_missing() {
  missing=()
  local p
  for p in "${MATIC_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
}
deps_install() { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2; }
deps_missing
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  deps_install "${missing[@]}"
  # An install may remove a listed package that was there (seen: Debian's
  # qemu-system-x86 took away a newer qemu-utils from backports): a second
  # pass puts it back at the version that fits, and what is still missing
  # after it is an error that names it.
  deps_missing
  if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]} again (an install removed them)" >&2
    deps_install "${missing[@]}"
    deps_missing
    ((${#missing[@]} == 0)) || { echo "deps: still not installed: ${missing[*]}" >&2; exit 1; }
  fi
fi
