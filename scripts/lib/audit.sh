#!/usr/bin/env bash
# The root image audit (sourced): a MaticOS image has no shell, no
# interpreter, no login program and no /etc/passwd. Used by build-rootfs
# (the build fails) and by scripts/test.d/50-image-audit.

# Basenames that must not appear anywhere in an image (shell globs).
MATIC_FORBIDDEN_NAMES=(
  sh bash dash ash zsh ksh mksh csh tcsh fish rbash busybox toybox
  'python*' 'perl*' 'ruby*' 'lua*' 'node' 'nodejs' 'php*' 'tclsh*' 'wish*'
  awk gawk mawk nawk
  login agetty getty mingetty 'getty*' su sudo doas sshd ssh dropbear telnetd rlogind
)
# Absolute paths that must not exist.
MATIC_FORBIDDEN_PATHS=(/etc/passwd /etc/shadow)

# matic_audit_list: read an image listing (one absolute path per line) on
# stdin; print one line per violation; return 1 when there is any.
matic_audit_list() {
  local path base pat bad=0
  while IFS= read -r path; do
    [ -n "$path" ] || continue
    base=${path##*/}
    for pat in "${MATIC_FORBIDDEN_NAMES[@]}"; do
      # shellcheck disable=SC2053  # $pat is a glob on purpose
      if [[ $base == $pat ]]; then
        echo "forbidden program in image: $path (matches '$pat')"
        bad=1
      fi
    done
    for pat in "${MATIC_FORBIDDEN_PATHS[@]}"; do
      if [[ $path == "$pat" ]]; then
        echo "forbidden file in image: $path"
        bad=1
      fi
    done
  done
  return "$bad"
}

# matic_squashfs_list IMG: the image's paths, absolute, one per line.
matic_squashfs_list() {
  unsquashfs -l -d '' "$1" | sed -n 's#^\(/.*\)$#\1#p'
}

# matic_audit_squashfs IMG: audit a built image; print violations; 0 if clean.
matic_audit_squashfs() {
  local listing
  listing=$(matic_squashfs_list "$1") || { echo "unsquashfs could not list $1"; return 1; }
  [ -n "$listing" ] || { echo "$1 lists no files"; return 1; }
  matic_audit_list <<<"$listing"
}
