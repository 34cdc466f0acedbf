#!/usr/bin/env bash
# Boot timing (sourced; needs common.sh and vm.sh). Figures are printed,
# never asserted: QEMU under software emulation varies with the host.

# timing_floor: boot the same kernel with a trivial initramfs whose /init
# prints the uptime and powers off (scripts/lib/floor-init.c). Prints
# "floor_init_uptime=S floor_wall=S" (guest seconds at /init; host seconds
# from QEMU's start to its exit).
timing_floor() {
  local dir=$MATIC_OUT/floor kernel=${VM_KERNEL:-$MATIC_OUT/kernel/vmlinuz}
  matic_need gcc cpio zstd
  mkdir -p "$dir/root"
  if [ ! -s "$dir/initramfs" ] || [ "$MATIC_ROOT/scripts/lib/floor-init.c" -nt "$dir/initramfs" ]; then
    gcc -static -Os -s -o "$dir/root/init" "$MATIC_ROOT/scripts/lib/floor-init.c"
    (cd "$dir/root" && echo init | cpio -o -H newc -R 0:0 --quiet) | zstd -q -19 >"$dir/initramfs"
  fi
  local t0 t1
  t0=$(date +%s.%N)
  # -no-reboot: the floor powers off; a failure must not loop. Direct
  # kernel boot (as VM_BOOT=direct): the floor is the kernel's own start,
  # without the firmware; matic.slot=A keeps the command line the one a
  # direct node boot gets (there, stage 1 then never kexecs away from the
  # initramfs under test).
  timeout 120 qemu-system-x86_64 -machine "$VM_MACHINE,accel=tcg" -cpu "$VM_CPU" -smp "$VM_SMP" -m "$VM_MEMORY" \
    -display none -monitor none -serial "file:$dir/console.log" -no-reboot -nic none \
    -kernel "$kernel" -initrd "$dir/initramfs" -append "$VM_APPEND_BASE matic.slot=A" ||
    matic_die "the floor boot failed (console: $dir/console.log)"
  t1=$(date +%s.%N)
  local up
  up=$(sed -n 's/.*matic-floor: \/init running at uptime \([0-9.]*\) s.*/\1/p' "$dir/console.log" | head -n1)
  [ -n "$up" ] || matic_die "the floor's /init did not report (console: $dir/console.log)"
  awk -v u="$up" -v a="$t0" -v b="$t1" 'BEGIN { printf "floor_init_uptime=%s floor_wall=%.2f\n", u, b - a }'
}

# timing_node VMDIR AGENT_SECS: print one line of node figures, guest
# seconds of this boot's own clock: the kernel's hand-over to /init, stage
# 1's modules loaded and verified root, stage 2, the agent's start, its
# `main` entered and TLS loaded (its timeline marks `agent-main`,
# `agent-tls-loaded`), the agent listening (its mark on `osctl boots show
# 0`: the socket bound, TLS loaded, both lanes serving), its boot history
# opened (the agent's
# `history boot N` kernel log line; an agent before the boot-time work
# served the API only after it), containerd's start, boot-ok; then
# listen_after_init (the goal's figure: /init to the agent listening) and
# its ratio to the kernel's own time to /init; and the host seconds from
# QEMU's start until `osctl version` answered (vm_wait_agent's output).
timing_node() {
  local dir=$1 agent_secs=$2 dmesg_txt listening
  dmesg_txt=$(vm_osctl "$dir" dmesg) || { echo "timing: osctl dmesg failed"; return 1; }
  _ts() { grep -m1 -E "$1" <<<"$dmesg_txt" | sed -n 's/^[^[]*\[ *\([0-9.]*\)\].*/\1/p'; }
  # The timeline's marks in s (columns NODE BOOT MARK AT STEP; AT in ms).
  local timeline
  timeline=$(vm_osctl "$dir" boots show 0 2>/dev/null) || timeline=
  _mark() { awk -v m="$1" '$3 == m { printf "%.3f", $4 / 1000; exit }' <<<"$timeline"; }
  listening=$(_mark agent-listening)
  local init
  init=$(_ts 'Run /init as init process')
  printf 'init=%s modules=%s root=%s stage2=%s agent_started=%s agent_main=%s agent_tls=%s agent_listening=%s history_open=%s containerd_started=%s boot_ok=%s (guest s) ' \
    "$init" "$(_ts 'matic-init: modules: ')" "$(_ts 'matic-init: slot .*verified; ')" \
    "$(_ts 'matic-init: stage 2')" "$(_ts 'matic-init: matic-agent: started')" \
    "$(_mark agent-main)" "$(_mark agent-tls-loaded)" "${listening:-?}" \
    "$(_ts 'matic-agent: history boot ')" \
    "$(_ts 'matic-init: containerd: started')" "$(_ts 'matic-init: control: boot-ok')"
  awk -v i="${init:-0}" -v l="${listening:-0}" 'BEGIN {
    if (i > 0 && l > 0) printf "listen_after_init=%.3f ratio=%.2f ", l - i, (l - i) / i
    else printf "listen_after_init=? ratio=? " }'
  printf 'api_answers=%s (host s)\n' "$agent_secs"
}

# timing_medians: reads the KEY=VALUE lines of timing_node or timing_floor
# on stdin and prints the median of each numeric key, in first-seen order.
timing_medians() {
  awk '{
      for (f = 1; f <= NF; f++) {
        if (split($f, kv, "=") != 2 || kv[2] !~ /^[0-9.]+$/) continue
        if (!(kv[1] in n)) order[++keys] = kv[1]
        v[kv[1], ++n[kv[1]]] = kv[2]
      }
    }
    END {
      for (k = 1; k <= keys; k++) {
        key = order[k]; m = n[key]
        for (i = 1; i <= m; i++) a[i] = v[key, i]
        for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        printf "%s%s=%s", (k > 1 ? " " : ""), key, med
      }
      printf " (medians of %d)\n", m
    }'
}
