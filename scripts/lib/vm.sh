#!/usr/bin/env bash
# Running MaticOS nodes in QEMU (sourced; needs common.sh). Shared by
# scripts/run and the VM test suites so every boot uses the same machine.
#
# Boot modes ($VM_BOOT):
#   uefi (default)  the disk alone, as a real machine boots it: OVMF
#                   (Debian's ovmf: read-only OVMF_CODE_4M.fd pflash, its
#                   variables in DISK.vars, below) starts the ESP's loader,
#                   whose kernel, initramfs and command line are the disk's
#                   (scripts/build-disk --append adds to the command line)
#   direct          QEMU's -kernel/-initrd/-append with $VM_KERNEL and
#                   $VM_INITRD: only for measurements that need another
#                   initramfs or the kernel's own start without firmware
#                   (bench-boot's no-verity run, timing_floor)
#
# A VM lives in a directory VMDIR holding:
#   qemu.pid     QEMU's pid (QEMU is daemonized)
#   qmp.sock     the QMP socket (vm_qmp): tests reset or stop the machine
#   console.log  the serial console, across reboots
#   started_at   host clock (date +%s.%N) just before QEMU started
#   port         the host port forwarded to the node's API (TCP 50051)
#
# Machine: software emulation (no KVM), $VM_MACHINE (default q35: its
# PCIe interrupts cost ~20 ms where the i440FX's ACPI interrupt links cost
# ~150-200 ms per PCI device, docs/image.md; a few q35 boots in CI hung
# in the kernel before /init, which vm_watch_stalls below gets past,
# docs/e2e.md "q35, and the kernel that hung"; VM_MACHINE=pc for the
# i440FX), CPU $VM_CPU (default max), the virtio disk first in the
# firmware's boot order (bootindex: OVMF no longer tries QEMU's empty DVD
# drive first, ~2 s per start under emulation), virtio disk (raw, cache=writeback:
# a guest write QEMU has performed is in the image file even if QEMU is
# killed, so vm_kill is an honest power cut for what the guest had sent),
# virtio NIC on QEMU's user network with the API forwarded to 127.0.0.1,
# an i6300esb watchdog whose expiry resets the machine, an ACPI ERST device
# (the firmware's error record store: the kernel's pstore keeps a panic's
# log there across the reset; the agent moves it into the boot history,
# docs/history.md) backed by DISK.erst beside the disk image, the UEFI
# variables (the firmware's NVRAM: boot entries, and whatever the OS stores
# there) in DISK.vars, a copy of OVMF_VARS_4M.fd made at the disk's first
# start — the disk, its .erst and its .vars are one machine: whoever makes
# or copies a disk removes the copy's .erst and .vars, a power cut keeps
# them, as a real machine's NVRAM survives one (and OVMF's first start on
# fresh variables, which sets them up, is paid once per machine, not at
# every power-on: ~0.7 s under emulation) — and no -no-reboot: reboots and
# panics (panic=5) restart the VM, as rollback needs.

VM_MEMORY=${VM_MEMORY:-1024}
VM_MACHINE=${VM_MACHINE:-q35}
VM_CPU=${VM_CPU:-max}
VM_SMP=${VM_SMP:-2}
VM_BOOT=${VM_BOOT:-uefi}
# The emulator's own hangs (vm_watch_stalls): how long a kernel may print
# nothing before it has started /init (at loglevel 7 it prints every few
# ms; the longest gap in the suite's consoles was 2.2 s, three nodes on
# two cores), and how many resets in a row one QEMU process gets (0: none,
# the stall is left to the caller's timeout).
VM_STALL_SECS=${VM_STALL_SECS:-30}
VM_STALL_RESETS=${VM_STALL_RESETS:-1}
VM_OVMF_CODE=${VM_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
VM_OVMF_VARS=${VM_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
# Direct mode's kernel parameters: the disk's defaults (MATIC_CMDLINE_BASE,
# common.sh; loglevel from VM_LOGLEVEL, default 7: its cost is within the
# run-to-run noise of TCG boots, docs/image.md) plus lockdown=integrity,
# which a direct boot needs no kexec to keep.
VM_APPEND_BASE="$MATIC_CMDLINE_BASE lockdown=integrity"

# vm_disk_guid DISK: the GPT disk GUID of the image, upper case (empty when
# it has no GPT). The command line names the system disk by it
# (matic.disk_guid=, docs/init.md): stage 1 never guesses between disks.
vm_disk_guid() {
  matic_need blkid
  blkid -p -s PTUUID -o value "$1" 2>/dev/null | tr a-f A-F || true
}

# vm_copy_disk SRC DST: DST becomes a new machine's disk: a sparse copy of
# SRC, without DST's old .erst and .vars (the disk and its NVRAM are one
# machine, see the header: a copy that kept a crash record of another boot
# would report that crash as its own).
vm_copy_disk() {
  cp --sparse=always "$1" "$2" && rm -f "$2.erst" "$2.vars"
}

# vm_start VMDIR DISK PORT [EXTRA_APPEND] [-- QEMU_ARGS...]: boot a node in
# the background. uefi mode: the disk boots itself; EXTRA_APPEND is refused
# (the command line is the disk's: build it with --append). direct mode:
# $VM_KERNEL / $VM_INITRD (default the ones scripts/build-image wrote) with
# $VM_APPEND_BASE, matic.disk_guid= of DISK and EXTRA_APPEND.
vm_start() {
  local dir=$1 disk=$2 port=$3 extra=${4:-}
  shift 3; (($#)) && shift
  [ "${1:-}" = -- ] && shift
  [ -f "$disk" ] || matic_die "disk $disk missing: run scripts/build-image"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd) # QEMU -daemonize changes to /: paths must be absolute
  disk=$(cd "$(dirname "$disk")" && pwd)/$(basename "$disk")
  local boot=()
  case $VM_BOOT in
    uefi)
      [ -z "$extra" ] || matic_die "vm_start: kernel parameters '$extra' given, but under UEFI the command line is the disk's loader's: build the disk with --append '$extra' (or VM_BOOT=direct)"
      [ -f "$VM_OVMF_CODE" ] && [ -f "$VM_OVMF_VARS" ] ||
        matic_die "OVMF firmware ($VM_OVMF_CODE, $VM_OVMF_VARS) missing: install Debian's ovmf (scripts/lib/deps.sh)"
      boot=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$VM_OVMF_CODE"
        -drive "if=pflash,format=raw,unit=1,file=$disk.vars"
        -global virtio-blk-pci.bootindex=0)
      ;;
    direct)
      local kernel=${VM_KERNEL:-$MATIC_OUT/kernel/vmlinuz} initrd=${VM_INITRD:-$MATIC_OUT/initramfs} guid
      [ -f "$kernel" ] || matic_die "kernel $kernel missing: run scripts/build-image"
      [ -f "$initrd" ] || matic_die "initramfs $initrd missing: run scripts/build-image"
      guid=$(vm_disk_guid "$disk")
      [ -n "$guid" ] || matic_die "$disk has no GPT disk GUID (blkid): not a MaticOS disk?"
      # No bootindex here: QEMU's -kernel option ROM takes index 0.
      boot=(-kernel "$kernel" -initrd "$initrd" -append "$VM_APPEND_BASE matic.disk_guid=$guid${extra:+ $extra}")
      ;;
    *) matic_die "VM_BOOT=$VM_BOOT: uefi or direct" ;;
  esac
  vm_stop "$dir"
  rm -f "$dir/qmp.sock" "$dir/qemu.pid"
  # The machine's first start: fresh variables, so the firmware finds the
  # loader at the removable media path, EFI/BOOT/BOOTX64.EFI, with no boot
  # entry of its own (and adds one for the disk, which later starts use).
  # (`command`: the end-to-end suite has a shell function named install.)
  [ "$VM_BOOT" != uefi ] || [ -s "$disk.vars" ] || command install -m 0644 "$VM_OVMF_VARS" "$disk.vars"
  : >"$dir/console.log"
  echo "$port" >"$dir/port"
  # -action is QEMU >= 6.0; older ones spell it -watchdog-action.
  local wd=(-action watchdog=reset)
  qemu-system-x86_64 -help | grep -q '^-action' || wd=(-watchdog-action reset)
  date +%s.%N >"$dir/started_at"
  qemu-system-x86_64 \
    -name maticos -machine "$VM_MACHINE,accel=tcg" -cpu "$VM_CPU" -smp "$VM_SMP" -m "$VM_MEMORY" \
    -display none -monitor none -serial "file:$dir/console.log" \
    "${boot[@]}" \
    -drive "file=$disk,if=virtio,format=raw,cache=writeback" \
    -netdev "user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$port-:50051" \
    -device virtio-net-pci,netdev=n0 \
    -device i6300esb "${wd[@]}" \
    -object "memory-backend-file,id=erst,mem-path=$disk.erst,size=0x40000,share=on" \
    -device acpi-erst,memdev=erst \
    -qmp "unix:$dir/qmp.sock,server=on,wait=off" \
    -pidfile "$dir/qemu.pid" -daemonize "$@" ||
    matic_die "QEMU failed to start (port $port in use? see above)"
  if ((VM_STALL_RESETS > 0)); then
    # Detached from the caller's output (a pipe to tee would stay open
    # until QEMU exits): it reports in VMDIR/stalls.log.
    vm_watch_stalls "$dir" "$(cat "$dir/qemu.pid")" </dev/null >>"$dir/stalls.log" 2>&1 &
    disown
  fi
}

# vm_watch_stalls VMDIR PID (background, one per QEMU process PID): resets
# the machine when its kernel hangs before starting /init, and says so in
# VMDIR/stalls.log. A hang is either a kernel that has printed nothing for
# $VM_STALL_SECS, or one that reported an RCU stall (vm_console_boot: a
# CPU, or RCU's own thread, made no progress for the kernel's 21 s, in a
# kernel start that takes 1-3 s). Why: boots of the suite on q35 hung for
# good in the kernel, before /init (docs/e2e.md, "q35, and the kernel
# that hung"): silent in the ACPI scan or after the clocksource switch,
# and in CI's run of e9242ba with RCU stall reports every 21-63 s while
# vCPU 0 sat halted and its timer never fired: emulator faults before any
# MaticOS code runs, which a reset gets past. Only that window is watched
# (from the kernel's banner to its `Run /init` line): a stage 1, an agent
# or a panic of ours is never reset by it, and the slot's boot counting
# (stage 1, after /init) never sees the hung boot. At most
# $VM_STALL_RESETS resets in a row: a boot after a reset that hangs again
# is left hanging (the caller's timeout fails), and a boot that reaches
# /init starts the count again (scenarios boot one QEMU many times).
vm_watch_stalls() {
  # Its own process (vm_start's `&`): a command that fails must not end it
  # under the caller's `set -e`.
  set +e
  local dir=$1 pid=$2 banners inits state why idle
  local resets=0 reset_banners=0 reset_inits=0
  while [ "$(vm_pid "$dir" 2>/dev/null)" = "$pid" ]; do
    sleep 5
    read -r banners inits state < <(vm_console_boot "$dir/console.log")
    # A boot since the last reset reached /init: the next hang is a new one.
    if ((inits > reset_inits)); then resets=0 reset_inits=$inits; fi
    [ "$state" = kernel ] || [ "$state" = rcu-stall ] || continue
    # After a reset, the hung boot stays the console's last one until the
    # firmware has run and the next kernel prints its banner.
    ((resets == 0 || banners > reset_banners)) || continue
    if [ "$state" = rcu-stall ]; then
      why="the kernel reported an RCU stall before /init ($(grep -a -m 1 -o 'rcu: INFO: .*' <(tail -n 200 "$dir/console.log") | tr -d '\r' | cut -c1-80))"
    else
      idle=$(($(date +%s) - $(stat -c %Y "$dir/console.log")))
      ((idle >= VM_STALL_SECS)) || continue
      why="the kernel printed nothing for ${idle} s before /init"
    fi
    if ((resets >= VM_STALL_RESETS)); then
      echo "$(date -u +%T) QEMU $pid: $why, again after $resets reset(s); no more resets"
      return 0
    fi
    resets=$((resets + 1)) reset_banners=$banners
    echo "$(date -u +%T) QEMU $pid: $why (last line: $(tail -n 1 "$dir/console.log" | tr -d '\r' | cut -c1-120)); vCPUs: $(vm_cpu_state "$dir" | tr '\n' ' '); system_reset $resets of $VM_STALL_RESETS"
    vm_qmp "$dir" system_reset >/dev/null 2>&1
    vm_qmp "$dir" cont >/dev/null 2>&1
  done
}

# vm_console_boot CONSOLE: where the last boot on a serial console log is,
# for vm_watch_stalls. Prints "BANNERS INITS STATE": how many kernel
# banners and `Run /init` lines the log holds, and the last boot's state:
# none (no kernel yet), kernel (started, not yet at /init), rcu-stall (not
# at /init, and its kernel reported an RCU stall: `rcu: INFO: rcu_preempt
# detected stalls on CPUs/tasks` or `... self-detected stall on CPU`) or
# init (it ran /init; whatever the kernel reports later is not the
# watcher's business).
vm_console_boot() {
  LC_ALL=C awk '
    /^\[ *0\.000000\] Linux version/ { banners++; state = "kernel"; next }
    /Run \/init as init process/ { inits++; state = "init"; next }
    state == "kernel" && /rcu: INFO: rcu_[a-z]+ (detected stalls|self-detected stall)/ { state = "rcu-stall" }
    END { print banners + 0, inits + 0, (state == "" ? "none" : state) }' "$1" 2>/dev/null ||
    echo "0 0 none"
}

# vm_pid VMDIR: print QEMU's pid if it is running; fail otherwise.
vm_pid() {
  local pid
  pid=$(cat "$1/qemu.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # A reused pid must still be our QEMU.
  grep -q qemu-system "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

# vm_qmp VMDIR COMMAND [ARGS_JSON]: run one QMP command, print the replies.
vm_qmp() {
  local dir=$1 cmd=$2 args=${3:-}
  matic_need socat
  {
    echo '{"execute":"qmp_capabilities"}'
    if [ -n "$args" ]; then
      printf '{"execute":"%s","arguments":%s}\n' "$cmd" "$args"
    else
      printf '{"execute":"%s"}\n' "$cmd"
    fi
    sleep 0.5
  } | socat - "UNIX-CONNECT:$dir/qmp.sock"
}

# vm_cpu_state VMDIR: where each vCPU is (QEMU's `info registers -a`, the
# RIP and halt lines), for a failure report: a guest that stopped printing
# is either spinning somewhere (RIP moves between two calls) or waiting
# with every vCPU halted. Prints nothing when QEMU is not running.
vm_cpu_state() {
  vm_pid "$1" >/dev/null || return 0
  matic_need jq
  vm_qmp "$1" human-monitor-command '{"command-line":"info registers -a"}' 2>/dev/null |
    jq -r 'select(.return | type == "string") | .return' 2>/dev/null | tr -d '\r' |
    grep -E '^(CPU#|RIP=)' | sed -E 's/^(RIP=[0-9a-f]+).* (CPL=[0-9]).* (HLT=[0-9]).*/\1 \2 \3/' || true
}

# vm_kill VMDIR: cut the power (SIGKILL); whatever QEMU already wrote to the
# disk image stays, nothing else reaches it.
vm_kill() {
  local pid
  pid=$(vm_pid "$1") || return 0
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

# vm_stop VMDIR: stop a VM if one runs there (QEMU's own quit, then SIGKILL).
vm_stop() {
  local dir=$1 pid _
  pid=$(vm_pid "$dir") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  vm_kill "$dir"
}

# vm_osctl VMDIR ARGS...: osctl against the node in VMDIR, with the PKI's
# admin config and the VM's forwarded port; with VM_OSCTL_BOUND=SECONDS the
# whole call is bounded (timeout(1): it then fails with 124).
vm_osctl() {
  local dir=$1 bound=()
  shift
  [ -z "${VM_OSCTL_BOUND:-}" ] || bound=(timeout "$VM_OSCTL_BOUND")
  OSCTL_CONFIG=$MATIC_PKI/osctlconfig "${bound[@]}" "$MATIC_RELEASE/osctl" \
    --endpoints "127.0.0.1:$(cat "$dir/port")" "$@"
}

# vm_wait_agent VMDIR TIMEOUT_SECONDS: poll `osctl version` until it answers;
# fail if QEMU exits or the time runs out. Prints the host seconds it took
# from QEMU's start.
vm_wait_agent() {
  local dir=$1 timeout=$2 start now
  start=$(cat "$dir/started_at")
  while :; do
    # A short connect timeout: until the guest listens, QEMU's forward
    # accepts on the host side and the handshake would wait its full default.
    if vm_osctl "$dir" --connect-timeout 2 version >/dev/null 2>&1; then
      now=$(date +%s.%N)
      awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f\n", b - a }'
      return 0
    fi
    vm_pid "$dir" >/dev/null || { matic_log "QEMU exited before the agent answered (console: $dir/console.log)"; return 1; }
    now=$(date +%s)
    ((now - ${start%.*} < timeout)) || { matic_log "the agent did not answer within ${timeout}s (console: $dir/console.log)"; return 1; }
    sleep 1
  done
}
