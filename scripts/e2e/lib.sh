#!/usr/bin/env bash
# Shared helpers of the end-to-end suite (sourced by scripts/e2e/run and the
# scenario files; needs scripts/lib/{common,vm}.sh).
#
# One node at a time runs in $E2E_VM with its disk at $E2E_DISK (scenario
# 13 alone runs three, "several nodes" below). Scenarios
# drive it only through osctl (vm_osctl) and QEMU's own controls (QMP,
# SIGKILL for a power cut), and read outcomes through osctl and the disk
# image itself (matic-disk status, sgdisk). What a node runs is never kept in
# shell state: it is asked (version, boot-status), so a scenario can start
# from whatever the previous one left.
#
# Every wait polls a condition with a bounded timeout; a failure prints what
# was expected, what was seen, and the tail of the serial console.

E2E_DIR=${E2E_DIR:-$MATIC_OUT/test/e2e}
E2E_IMAGES=$E2E_DIR/images
E2E_VM=$E2E_DIR/vm
E2E_DISK=$E2E_DIR/disk.img
E2E_PORT=${E2E_PORT:-50161}
# Seconds a new slot has to be marked successful (matic.boot_timeout).
# Short, so the rollback scenarios are quick; long enough for a healthy
# boot under software emulation on a loaded 2-core machine.
E2E_BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-40}
# loglevel=7: init's info lines (slot chosen, SIGTERM order, /var unmounted)
# reach console.log, the only log that survives a crash or a power cut;
# printk.devkmsg=on: the kernel otherwise rate-limits /dev/kmsg writers to 10
# lines per 5 s and drops init's shutdown lines (seen: "SIGTERM to" missing).
# Nodes boot under UEFI: this is built into each disk's loader
# (build-disk --append), not given to QEMU.
E2E_APPEND="matic.boot_timeout=$E2E_BOOT_TIMEOUT loglevel=7 printk.devkmsg=on"
# Tries a freshly installed slot gets: the agent's --tries default
# (agent/src/config.rs), which every e2e image keeps. Every install() checks
# its reply against it, so scenario 13 b), which installs through osctl
# upgrade and sees no reply, can count the bad slot's boots against it.
E2E_TRIES=${E2E_TRIES:-3}
# Upper bounds for the waits (seconds), generous for a loaded CI machine.
E2E_BOOT_WAIT=${E2E_BOOT_WAIT:-240}
E2E_MARK_WAIT=${E2E_MARK_WAIT:-120}
# How many consecutive agent crashes scenario 7 injects.
E2E_CRASHES=${E2E_CRASHES:-20}
# Write rate of the disk while a power cut is aimed (bytes/s; qmp_throttle).
E2E_CUT_BPS=${E2E_CUT_BPS:-8000000}
# Versions of the good images (VERSION_ID, also the label given to install).
E2E_GOOD=(e2e-1 e2e-2 e2e-3)

# --- logging and failing --------------------------------------------------

e2e_t0=$(date +%s.%N)
say() { printf '  [%6.1fs] %s\n' "$(awk -v a="$e2e_t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
# die MESSAGE: fail the scenario, with the console's tail for context (each
# console of $E2E_CONSOLES when a scenario runs several nodes).
die() {
  printf '  FAIL: %s\n' "$*" >&2
  local c
  for c in ${E2E_CONSOLES:-$E2E_VM/console.log}; do
    [ -f "$c" ] || continue
    echo "  --- last 40 console lines ($c) ---" >&2
    tail -n 40 "$c" | sed 's/^/  | /' >&2
    # Where the vCPUs are, twice a second apart (QEMU still running).
    local state=()
    mapfile -t state < <(vm_cpu_state "$(dirname "$c")"; sleep 1; vm_cpu_state "$(dirname "$c")")
    ((${#state[@]} == 0)) || { echo "  --- vCPUs (info registers -a, twice) ---"; printf '  | %s\n' "${state[@]}"; } >&2
    [ ! -s "$(dirname "$c")/stalls.log" ] || { echo "  --- stall resets ---"; sed 's/^/  | /' "$(dirname "$c")/stalls.log"; } >&2
  done
  exit 1
}
# elapsed START: seconds since START (date +%s.%N), one decimal.
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# --- images -----------------------------------------------------------------

# img VERSION: the signed release the scenarios install; sq VERSION: its SquashFS.
img() { echo "$E2E_IMAGES/$1.release"; }
sq() { echo "$E2E_IMAGES/$1.squashfs"; }
# sign VERSION: sign sq VERSION into img VERSION with the build's release key.
sign() {
  quiet "$MATIC_RELEASE/osctl" release sign --key "$MATIC_RELEASE_KEYS/release.key" \
    --version "$1" --counter 1 "$(sq "$1")" --out "$(img "$1")"
}
# quiet COMMAND...: run a build step with its output in build.log; show the
# log's tail if it fails.
quiet() {
  "$@" >>"$E2E_DIR/build.log" 2>&1 || {
    tail -n 30 "$E2E_DIR/build.log" >&2
    die "build step failed: $*"
  }
}

# Every image carries the stand-in kubelet (kubelet-standin/, docs/config.md
# "The stand-in kubelet"): an unconfigured node shows kubelet `waiting`, a
# kubelet section starts it and its log shows its checks.
E2E_KUBELET=$MATIC_RELEASE/matic-kubelet-standin
build_rootfs() { quiet "$MATIC_ROOT/scripts/build-rootfs" --kubelet "$E2E_KUBELET" "$@"; }

# e2e_build_images: the base disk (slot A = e2e-1) and every image the
# scenarios install. E2E_REUSE=1 keeps images from an earlier run (debugging).
e2e_build_images() {
  local v
  if [ "${E2E_REUSE:-0}" = 1 ] && [ -f "$E2E_DIR/base/disk.img" ] && [ -f "$(img e2e-not-mountable)" ] &&
    [ -f "$(img e2e-fault)" ] && [ -f "$(img e2e-kernel2)" ] && [ -f "$(img e2e-no-blk)" ]; then
    say "reusing the images in $E2E_IMAGES (E2E_REUSE=1)"
    return 0
  fi
  mkdir -p "$E2E_IMAGES"
  : >"$E2E_DIR/build.log"
  say "building the base disk (slot A: e2e-1) and the images"
  # build-image's stage 1 builds the workspace (E2E_NO_CARGO=1 skips it).
  local cargo=()
  [ "${E2E_NO_CARGO:-0}" != 1 ] || cargo=(--no-cargo)
  quiet "$MATIC_ROOT/scripts/build-image" "${cargo[@]}" --kubelet "$E2E_KUBELET" --version e2e-1 --out-dir "$E2E_DIR/base" --append "$E2E_APPEND"
  cp "$E2E_DIR/base/rootfs.squashfs" "$(sq e2e-1)"
  cp "$E2E_DIR/base/rootfs.release" "$(img e2e-1)"
  # Every image is a signed release (the node installs nothing else): the
  # broken ones are broken inside, with valid signatures.
  for v in e2e-2 e2e-3; do
    build_rootfs --out "$(sq $v)" --version "$v"
    sign "$v"
  done
  build_rootfs --variant agent-exits --out "$(sq e2e-agent-exits)" --version e2e-agent-exits
  sign e2e-agent-exits
  build_rootfs --variant no-init --out "$(sq e2e-no-init)" --version e2e-no-init
  sign e2e-no-init
  # /sbin/init that exits at once (the broken agent in init's place).
  build_rootfs --init "$MATIC_RELEASE/matic-broken-agent" --out "$(sq e2e-init-exits)" --version e2e-init-exits
  sign e2e-init-exits
  build_rootfs --variant fault-injection --out "$(sq e2e-fault)" --version e2e-fault
  sign e2e-fault
  quiet "$MATIC_ROOT/scripts/build-disk" --release "$(img e2e-fault)" --out "$E2E_IMAGES/fault-disk.img" --append "$E2E_APPEND"
  e2e_make_not_mountable "$(sq e2e-1)" "$(sq e2e-not-mountable)"
  sign e2e-not-mountable
  # A release with the other Debian kernel (its own kernel dir and
  # initramfs): stage 1 kexecs into it.
  local kpkg
  kpkg=$(matic_other_kernel_package)
  say "  the other kernel: $kpkg"
  quiet "$MATIC_ROOT/scripts/build-kernel" --package "$kpkg" --out "$E2E_DIR/kernel2"
  quiet "$MATIC_ROOT/scripts/build-initramfs" --kernel-dir "$E2E_DIR/kernel2" --out "$E2E_DIR/kernel2/initramfs"
  build_rootfs --kernel-dir "$E2E_DIR/kernel2" --initramfs "$E2E_DIR/kernel2/initramfs" \
    --out "$(sq e2e-kernel2)" --version e2e-kernel2
  sign e2e-kernel2
  # The default kernel with an initramfs that has no virtio_blk: its kernel
  # id differs, so stage 1 kexecs into it, and it cannot find the disk.
  quiet "$MATIC_ROOT/scripts/build-initramfs" --without virtio_blk --out "$E2E_DIR/initramfs-no-blk"
  build_rootfs --initramfs "$E2E_DIR/initramfs-no-blk" \
    --out "$(sq e2e-no-blk)" --version e2e-no-blk
  sign e2e-no-blk
  for v in "${E2E_GOOD[@]}" e2e-agent-exits e2e-no-init e2e-init-exits e2e-not-mountable e2e-fault e2e-kernel2 e2e-no-blk; do
    say "  image $v: $(stat -c %s "$(img $v)") bytes"
  done
}

# e2e_make_not_mountable SRC DST: a copy of a real SquashFS whose superblock
# keeps the "hsqs" magic but claims SquashFS major version 0xffff, which the
# kernel refuses to mount. It is then signed like any release: the install
# and stage 1's verity check accept it, the mount must not.
e2e_make_not_mountable() {
  cp "$1" "$2"
  # struct squashfs_super_block: s_major is the u16 at byte 28.
  printf '\xff\xff' | dd of="$2" bs=1 seek=28 conv=notrunc status=none
  [ "$(head -c 4 "$2")" = hsqs ] || die "$2: lost the SquashFS magic"
}

# --- the node ---------------------------------------------------------------

osctl_json() { vm_osctl "$E2E_VM" -o json "$@"; }
# boots: how many times the kernel started init on this QEMU (console.log
# keeps every boot of one QEMU process; QEMU reboots in place).
boots() { grep -c 'Run /init as init process' "$E2E_VM/console.log" 2>/dev/null || true; }
node_up() { vm_pid "$E2E_VM" >/dev/null; }

# node_boot: start QEMU on $E2E_DISK (UEFI: the disk's loader carries
# $E2E_APPEND) and wait for the agent.
node_boot() {
  vm_start "$E2E_VM" "$E2E_DISK" "$E2E_PORT"
  wait_api "$E2E_BOOT_WAIT" || die "the node did not answer osctl version after QEMU started"
}

# node_fresh [DISK]: power off whatever runs, copy a pristine disk (default:
# the base disk, slot A = e2e-1, B empty) and boot it.
# shellcheck disable=SC2120 # scenario 7 passes a disk
node_fresh() {
  local src=${1:-$E2E_DIR/base/disk.img}
  vm_stop "$E2E_VM"
  vm_copy_disk "$src" "$E2E_DISK"
  node_boot
  wait_marked
}

# wait_api SECONDS: poll `osctl version` until it answers (QEMU must stay up).
wait_api() {
  local until=$(($(date +%s) + $1))
  while :; do
    vm_osctl "$E2E_VM" version >/dev/null 2>&1 && return 0
    node_up || { echo "  QEMU exited while waiting for the API" >&2; return 1; }
    (($(date +%s) < until)) || { echo "  the API did not answer within $1 s" >&2; return 1; }
    sleep 1
  done
}

# wait_boot BEFORE SECONDS: wait for a boot after the BEFORE-th (as counted
# by `boots`), then for its API. The old agent may answer for a moment after
# a reboot request: only a new boot counts.
wait_boot() {
  local before=$1 secs=$2 until=$(($(date +%s) + $2))
  while (($(boots) <= before)); do
    node_up || die "QEMU exited while waiting for boot $((before + 1))"
    (($(date +%s) < until)) || die "no new boot within $secs s (boots seen: $(boots))"
    sleep 0.5
  done
  wait_api $((until - $(date +%s) > 10 ? until - $(date +%s) : 10)) || die "boot $((before + 1)) started but its API never answered"
}

# wait_until SECONDS WHAT COMMAND...: poll COMMAND until it succeeds.
wait_until() {
  local secs=$1 what=$2 until=$(($(date +%s) + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    node_up || die "QEMU exited while waiting for: $what"
    (($(date +%s) < until)) || die "not within $secs s: $what (last: $("$@" 2>&1 | tail -c 1200))"
    sleep 1
  done
}

# running_version, running_slot: what the node says it runs.
running_version() { osctl_json version | jq -er '.[0].result.os_version'; }
running_slot() { osctl_json version | jq -er '.[0].result.slot'; }
# slot_field SLOT FIELD: one field of boot-status for a slot.
slot_field() { osctl_json boot-status | jq -er --arg s "$1" ".[0].result.slots[] | select(.name == \$s) | .$2"; }
other() { if [ "$1" = A ]; then echo B; else echo A; fi; }

# is_running VERSION SLOT: the API reports this image from this slot.
is_running() {
  local j
  j=$(osctl_json version) || return 1
  jq -e --arg v "$1" --arg s "$2" '.[0].ok and .[0].result.os_version == $v and .[0].result.slot == $s' <<<"$j" >/dev/null ||
    { echo "running: $(jq -c '.[0].result | {os_version, slot}' <<<"$j")"; return 1; }
}
expect_running() { is_running "$1" "$2" >/dev/null 2>&1 || die "expected $1 from slot $2, the node says: $(is_running "$1" "$2")"; }

# marked: the running slot is marked successful (the agent did its part).
marked() {
  osctl_json boot-status | jq -e '.[0].ok and ([.[0].result.slots[] | select(.running and .successful and .bootable)] | length == 1)' >/dev/null
}
wait_marked() { wait_until "$E2E_MARK_WAIT" "the running slot is marked successful" marked; }

# slot_is SLOT JQ_CONDITION: boot-status's entry for SLOT satisfies it.
slot_is() {
  osctl_json boot-status | jq -e --arg s "$1" ".[0].ok and (.[0].result.slots[] | select(.name == \$s) | $2)" >/dev/null
}
expect_slot() {
  slot_is "$1" "$2" || die "boot-status: slot $1 should satisfy '$2'; it is $(osctl_json boot-status | jq -c --arg s "$1" '.[0].result.slots[] | select(.name == $s)')"
}

# install IMAGE_VERSION: osctl install, checked; prints the JSON result.
install() {
  local v=$1 out
  out=$(osctl_json install "$(img "$v")") || die "osctl install $v failed: $out"
  jq -e --arg v "$v" --argjson t "$E2E_TRIES" '.[0].ok and .[0].result.version == $v and .[0].result.tries == $t' <<<"$out" >/dev/null ||
    die "osctl install $v: unexpected result $out"
  echo "$out"
}

# reboot_into VERSION SLOT: osctl reboot; wait for the next boot to run it.
reboot_into() {
  local b
  b=$(boots)
  vm_osctl "$E2E_VM" reboot >/dev/null || die "osctl reboot failed"
  wait_boot "$b" "$E2E_BOOT_WAIT"
  wait_until 60 "$1 from slot $2 answers" is_running "$1" "$2"
}

# pick_image EXCLUDE...: a good image version not among the arguments.
pick_image() {
  local v x
  for v in "${E2E_GOOD[@]}"; do
    for x in "$@"; do [ "$v" = "$x" ] && continue 2; done
    echo "$v"
    return 0
  done
  die "no good image left besides $*"
}

# need_good_node: a node running a good image from a slot marked successful;
# reuses the running one when it is in that state, else boots a fresh disk.
need_good_node() {
  if node_up && marked >/dev/null 2>&1; then
    local v
    v=$(running_version 2>/dev/null) || v=
    case " ${E2E_GOOD[*]} " in *" $v "*) return 0 ;; esac
  fi
  say "booting a fresh node (slot A: e2e-1)"
  node_fresh
}

# --- the disk image, read from the host ------------------------------------

disk_tool() { "$MATIC_RELEASE/matic-disk" "$@"; }
# disk_next: the slot the disk's GPT will boot next (A, B or none).
disk_next() { disk_tool status "$E2E_DISK" | sed -n 's/^next=//p'; }
# disk_slot SLOT: matic-disk's status line for SLOT.
disk_slot() { disk_tool status "$E2E_DISK" | grep "^$1 "; }
# part_range NAME: START SIZE in bytes of a partition.
part_range() { disk_tool layout "$E2E_DISK" | awk -v n="$1" '$1 == n { print $2, $3 }'; }
# slot_holds SLOT IMAGE_VERSION: the slot holds exactly the release: its
# payload from the slot's first byte, its manifest block at the start of the
# slot's last 64 KiB.
slot_holds() {
  local start size n f
  read -r start size < <(part_range "MATIC_ROOT_$1")
  f=$(img "$2")
  n=$(($(stat -c %s "$f") - 4096))
  cmp -s <(tail -c +4097 "$f") <(tail -c +$((start + 1)) "$E2E_DISK" | head -c "$n") &&
    cmp -s <(head -c 4096 "$f") <(tail -c +$((start + size - 65536 + 1)) "$E2E_DISK" | head -c 4096)
}
# gpt_sound: sgdisk -v finds no problem (QEMU stopped or killed).
gpt_sound() {
  local out
  out=$(sgdisk -v "$E2E_DISK" 2>&1)
  grep -q 'No problems found' <<<"$out" || die "sgdisk -v $E2E_DISK: $out"
}

# --- QMP: the disk's write counter, for power cuts chosen by bytes written --

# qmp_open / qmp_close: one QMP connection kept open (a coprocess), so that
# polling costs a round trip, not a connection. Bash gives a coprocess's
# descriptors to the main shell only: these functions set globals instead of
# printing, and must not be called inside $(...).
qmp_open() {
  coproc QMP { exec socat - "UNIX-CONNECT:$E2E_VM/qmp.sock"; }
  IFS= read -r -t 10 QMP_LINE <&"${QMP[0]}" || die "QMP: no greeting"
  echo '{"execute":"qmp_capabilities"}' >&"${QMP[1]}"
  qmp_reply || die "QMP: no reply to qmp_capabilities"
}
qmp_reply() { # QMP_LINE := the next reply (events are skipped)
  while IFS= read -r -t 10 QMP_LINE <&"${QMP[0]}"; do
    case $QMP_LINE in *'"return"'* | *'"error"'*) return 0 ;; esac
  done
  return 1
}
# qmp_wr_bytes: WR := bytes the guest has written to its disks (the
# devices' own counters, summed over every block device).
qmp_wr_bytes() {
  echo '{"execute":"query-blockstats"}' >&"${QMP[1]}" || return 1
  qmp_reply || return 1
  # shellcheck disable=SC2034 # read by the scenarios
  WR=$(jq -e '[.return[].stats.wr_bytes] | add' <<<"$QMP_LINE") || return 1
}
# qmp_throttle BYTES_PER_SECOND: limit the disk's write rate (0: no limit).
# The guest syncs a whole image in a fraction of a second on an unthrottled
# host file; a slower disk spreads the same writes over seconds, so power
# cuts can land at chosen byte counts. The guest runs unchanged.
qmp_throttle() {
  printf '{"execute":"block_set_io_throttle","arguments":{"device":"virtio0","bps":0,"bps_rd":0,"bps_wr":%s,"iops":0,"iops_rd":0,"iops_wr":0}}\n' "$1" >&"${QMP[1]}"
  qmp_reply && [[ $QMP_LINE == *'"return"'* ]] || die "QMP: block_set_io_throttle failed: $QMP_LINE"
}
qmp_close() {
  [ -n "${QMP_PID:-}" ] || return 0
  local pid=$QMP_PID
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# power_off: osctl shutdown, and wait until QEMU has exited.
power_off() {
  vm_osctl "$E2E_VM" shutdown >/dev/null || die "osctl shutdown failed"
  local until=$(($(date +%s) + 120))
  while node_up; do
    (($(date +%s) < until)) || die "QEMU still runs 120 s after osctl shutdown"
    sleep 0.5
  done
}
# flip_byte FILE OFFSET: invert every bit of one byte of FILE, in place.
flip_byte() {
  local old
  old=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((old ^ 255)))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

# power_cut: SIGKILL QEMU (vm_kill): what QEMU wrote to the image stays.
power_cut() { qmp_close; vm_kill "$E2E_VM"; }

# --- several nodes (scenario 13: osctl upgrade across a fleet) --------------

# Node I (1..3) lives in $E2E_DIR/fleet/nI (vm/, disk.img), its API on
# E2E_PORT+I, with E2E_FLEET_MEMORY MiB: the three run beside each other,
# the suite's own node stopped.
E2E_FLEET_MEMORY=${E2E_FLEET_MEMORY:-512}
# osctl upgrade's batch size: 1, as the scenario checks; 3 shows its
# one-at-a-time check failing (every node rebooting at once).
E2E_FLEET_MAX_UNAVAILABLE=${E2E_FLEET_MAX_UNAVAILABLE:-1}
FLEET=(1 2 3)
fleet_vm() { echo "$E2E_DIR/fleet/n$1/vm"; }
fleet_disk() { echo "$E2E_DIR/fleet/n$1/disk.img"; }
fleet_endpoint() { echo "127.0.0.1:$((E2E_PORT + $1))"; }
# fleet_nodes: osctl's --nodes for the whole fleet, in order.
fleet_nodes() {
  local i eps=()
  for i in "${FLEET[@]}"; do eps+=("$(fleet_endpoint "$i")"); done
  (IFS=,; echo "${eps[*]}")
}
fleet_json() { local i=$1; shift; vm_osctl "$(fleet_vm "$i")" -o json "$@"; }
fleet_boots() { grep -c 'Run /init as init process' "$(fleet_vm "$1")/console.log" 2>/dev/null || true; }

# fleet_start: a copy of the base disk (slot A: e2e-1) for each node, all
# booted at once; waits until each answers with its slot marked and its
# agent has told init boot-ok (A is marked on the base disk already: only
# the console says the agent has done its part).
fleet_start() {
  local i until=$(($(date +%s) + E2E_BOOT_WAIT))
  for i in "${FLEET[@]}"; do
    mkdir -p "$E2E_DIR/fleet/n$i"
    vm_copy_disk "$E2E_DIR/base/disk.img" "$(fleet_disk "$i")"
    VM_MEMORY=$E2E_FLEET_MEMORY vm_start "$(fleet_vm "$i")" "$(fleet_disk "$i")" $((E2E_PORT + i))
  done
  for i in "${FLEET[@]}"; do
    until grep -q 'matic-init: control: boot-ok' "$(fleet_vm "$i")/console.log" &&
      fleet_is "$i" e2e-1 A >/dev/null 2>&1 && fleet_marked "$i"; do
      vm_pid "$(fleet_vm "$i")" >/dev/null || die "node $i: QEMU exited while booting"
      (($(date +%s) < until)) || die "node $i: not up with e2e-1 from A, marked, boot-ok, within $E2E_BOOT_WAIT s"
      sleep 1
    done
  done
}

# fleet_stop: power every node off (SIGTERM, then SIGKILL), and the watcher.
fleet_stop() {
  local i
  [ -z "${FLEET_WATCH_PID:-}" ] || kill "$FLEET_WATCH_PID" 2>/dev/null || true
  for i in "${FLEET[@]}"; do vm_stop "$(fleet_vm "$i")"; done
}

# fleet_is I VERSION SLOT: node I's API reports this image from this slot.
fleet_is() {
  local j
  j=$(fleet_json "$1" version) || return 1
  jq -e --arg v "$2" --arg s "$3" '.[0].ok and .[0].result.os_version == $v and .[0].result.slot == $s' <<<"$j" >/dev/null ||
    { echo "node $1 runs $(jq -c '.[0].result | {os_version, slot}' <<<"$j")"; return 1; }
}
# fleet_marked I: node I's running slot is marked successful.
fleet_marked() {
  fleet_json "$1" boot-status | jq -e '.[0].ok and ([.[0].result.slots[] | select(.running and .successful and .bootable)] | length == 1)' >/dev/null
}
# fleet_slot_is I SLOT JQ_CONDITION: node I's boot-status entry for SLOT
# satisfies it.
fleet_slot_is() {
  fleet_json "$1" boot-status | jq -e --arg s "$2" ".[0].ok and (.[0].result.slots[] | select(.name == \$s) | $3)" >/dev/null ||
    die "node $1: boot-status: slot $2 should satisfy '$3'; it is $(fleet_json "$1" boot-status | jq -c --arg s "$2" '.[0].result.slots[] | select(.name == $s)')"
}

# fleet_watch FILE: until killed, read each node's console every 0.5 s and
# append "HOST_SECONDS NODE SHUTDOWNS BOOTS BOOT_OKS" to FILE when a count
# changed: init's "shutdown for reboot" lines, the kernel's starts of init,
# init's "control: boot-ok" lines (the agent marked the boot). The consoles
# carry guest clocks only; these host times let the nodes' reboots be
# compared (to within the 0.5 s poll).
fleet_watch() {
  local out=$1 i now c
  local -A last=()
  while :; do
    now=$(date +%s.%N)
    for i in "${FLEET[@]}"; do
      c=$(awk '/matic-init: shutdown for reboot/ { s++ } /Run \/init as init process/ { b++ }
        /matic-init: control: boot-ok/ { k++ } END { print s + 0, b + 0, k + 0 }' "$(fleet_vm "$i")/console.log" 2>/dev/null) || continue
      [ "${last[$i]:-}" = "$c" ] && continue
      # (A write that failed, e.g. a full host disk, is tried again.)
      echo "$now $i $c" >>"$out" && last[$i]=$c
    done
    sleep 0.5
  done
}

# fleet_windows EVENTS SINCE: from fleet_watch's EVENTS, the nodes' reboot
# windows that opened after host time SINCE, "NODE START END" a line, by
# START: from the first sight of a new "shutdown for reboot" to the first
# sight of a boot-ok after it (END "-" when none came).
fleet_windows() {
  awk -v since="$2" '
    { t = $1; n = $2; s = $3; k = $5
      if (t >= since && (n in ps)) {
        if (!(n in open) && s > ps[n]) { open[n] = t; ok[n] = k }
        else if ((n in open) && k > ok[n]) { print n, open[n], t; delete open[n] }
      }
      ps[n] = s
    }
    END { for (n in open) print n, open[n], "-" }' "$1" | sort -k2,2n
}

# fleet_one_at_a_time WINDOWS: fleet_windows' lines show no two nodes
# rebooting at once: each window closed, and each opened after the one
# before it had closed. Otherwise prints the first overlap and fails.
fleet_one_at_a_time() {
  awk '$3 == "-" { print "node " $1 ": no boot-ok on its console after its reboot"; bad = 1; exit }
    prev != "" && !($2 > prev) { print "node " $1 " began its reboot before node " pn "\047s had ended: two nodes rebooting at once"; bad = 1; exit }
    { prev = $3; pn = $1 }
    END { exit bad }' <<<"$1"
}

# fleet_upgrade IMAGE_VERSION OUT: `osctl upgrade` of that release across
# the fleet, E2E_FLEET_MAX_UNAVAILABLE nodes at a time, as an operator runs
# it (--nodes, -o json).
# OUT gets its JSON lines, each prefixed by the host time it arrived;
# OUT.err its stderr. Sets UPGRADE_RC (its exit code), UPGRADE_SECS (host
# wall time) and UPGRADE_SUMMARY (the summary object).
fleet_upgrade() {
  local v=$1 out=$2 t0
  t0=$(date +%s.%N)
  set +e
  OSCTL_CONFIG=$MATIC_PKI/osctlconfig "$MATIC_RELEASE/osctl" --nodes "$(fleet_nodes)" -o json \
    upgrade "$(img "$v")" --max-unavailable "$E2E_FLEET_MAX_UNAVAILABLE" --healthy-for "$E2E_FLEET_HEALTHY_FOR" --timeout "$E2E_FLEET_TIMEOUT" 2>"$out.err" |
    while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done >"$out"
  UPGRADE_RC=${PIPESTATUS[0]}
  set -e
  # shellcheck disable=SC2034 # read by the scenarios
  UPGRADE_SECS=$(elapsed "$t0")
  UPGRADE_SUMMARY=$(cut -d' ' -f2- "$out" | jq -c 'select(.summary) | .summary')
  [ -n "$UPGRADE_SUMMARY" ] || die "osctl upgrade $v (exit $UPGRADE_RC) printed no summary: $(tail -c 800 "$out.err")"
}
# upgrade_node I JQ_CONDITION: the last summary's entry for node I satisfies it.
upgrade_node() {
  jq -e --arg n "$(fleet_endpoint "$1")" ".nodes[] | select(.node == \$n) | $2" <<<"$UPGRADE_SUMMARY" >/dev/null ||
    die "osctl upgrade: node $1 should satisfy '$2'; the summary says $(jq -c --arg n "$(fleet_endpoint "$1")" '.nodes[] | select(.node == $n)' <<<"$UPGRADE_SUMMARY")"
}
