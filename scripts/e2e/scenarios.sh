#!/usr/bin/env bash
# The end-to-end scenarios of issue 6 (sourced by scripts/e2e/run). Each
# scenario_N runs in its own subshell with `set -e`; it starts from whatever
# node the previous one left (asking the node what it runs) and sets up
# what it needs when that is not there, so each also runs alone.

# 1. Update and back: A -> B -> A; the running slot is never written.
scenario_1() {
  # A pristine disk: slot A e2e-1 (successful), B empty.
  node_fresh
  expect_running e2e-1 A
  config_live_and_kubelet
  # Booted by the firmware from the ESP's loader: slot A's own kernel.
  [ "$(running_kernel)" = "$(kernel_of e2e-1)" ] ||
    die "slot A runs kernel $(running_kernel), not its release's $(kernel_of e2e-1)"
  expect_slot B '.bootable | not'
  slot_holds A e2e-1 || die "slot A does not hold e2e-1 before the update"

  say "install e2e-2 (into B, A running)"
  local r
  r=$(install e2e-2)
  jq -e '.[0].result.slot == "B"' <<<"$r" >/dev/null || die "install went to the wrong slot: $r"
  expect_slot B '.version == "e2e-2" and .bootable and (.successful | not) and .next_boot and (.running | not) and .tries > 0'
  expect_slot A '.running and .successful'
  slot_holds B e2e-2 || die "slot B does not hold the bytes of e2e-2 after the install"
  slot_holds A e2e-1 || die "the running slot A was written during the install"

  say "reboot into B"
  reboot_into e2e-2 B
  wait_marked
  # Issue 17: the imported image is on MATIC_STATE, not in the slot.
  workload_listed || die "after the reboot osctl images lacks $E2E_WORKLOAD_IMAGE: $(osctl_json images)"
  say "   osctl images still lists $E2E_WORKLOAD_IMAGE after the reboot"
  expect_slot B '.running and .successful and .bootable'
  expect_slot A '.bootable and .successful and (.next_boot | not)'

  say "install e2e-3 (into A, B running), reboot"
  r=$(install e2e-3)
  jq -e '.[0].result.slot == "A"' <<<"$r" >/dev/null || die "install went to the wrong slot: $r"
  expect_slot A '.version == "e2e-3" and .bootable and (.successful | not) and .next_boot'
  slot_holds A e2e-3 || die "slot A does not hold the bytes of e2e-3"
  slot_holds B e2e-2 || die "the running slot B was written during the install"
  reboot_into e2e-3 A
  wait_marked
  expect_slot A '.running and .successful'
  expect_slot B '.version == "e2e-2" and .bootable'
}

# service_state NAME: the service's state in `osctl services`.
service_state() { osctl_json services | jq -er --arg s "$1" '.[0].result.services[] | select(.name == $s) | .state'; }
kubelet_is() { [ "$(service_state kubelet)" = "$1" ]; }
# running_boot: the running boot's number in the node's boot history.
running_boot() { osctl_json boots | jq -er '.[0].result.boots[] | select(.running) | .number'; }
# kubelet_logged TEXT: the stand-in kubelet's log on the node holds TEXT;
# when it does not, its last lines and the node's containers are printed
# (wait_until shows them when its time runs out).
kubelet_logged() {
  local log
  log=$(vm_osctl "$E2E_VM" logs kubelet 2>&1) && grep -qF -- "$1" <<<"$log" && return 0
  echo "osctl logs kubelet, last lines:"
  tail -n 6 <<<"$log"
  echo "osctl containers: $(vm_osctl "$E2E_VM" containers 2>&1 | tail -n 4)"
  return 1
}
node_hostname() { osctl_json version | jq -er '.[0].result.hostname'; }
hostname_is_not() { [ "$(node_hostname)" != "$1" ]; }
same_boot() { (($(boots) == $1)) && [ "$(running_boot)" = "$2" ]; }

# config_live_and_kubelet (issue 15, on scenario 1's first boot): every
# image carries the stand-in kubelet, so an unconfigured node shows kubelet
# `waiting`. One `osctl config apply` changes the hostname and adds a name
# server live (no reboot: the same boot) and adds a kubelet section: init
# starts the stand-in, which passes every check (its argv, its files,
# containerd's CRI). Without the section kubelet is stopped and `waiting`
# again; the empty document gives the node its command-line defaults back.
config_live_and_kubelet() {
  local t0 b n doc out log c
  t0=$(date +%s.%N)
  wait_until 30 "kubelet is waiting on an unconfigured node" kubelet_is waiting
  say "   services: kubelet waiting (no kubelet section)"
  b=$(boots)
  n=$(running_boot) || die "osctl boots names no running boot"
  doc=$E2E_DIR/node-config.toml
  {
    printf 'version = 1\nhostname = "e2e-kubelet-node"\n\n[network]\n'
    printf 'nameservers = ["10.0.2.3", "10.0.2.53"]\n\n[kubelet]\n'
    printf 'api_server = "https://10.0.2.2:6443"\nca = """\n%s\n"""\n' "$(cat "$MATIC_ROOT/kubelet-standin/testdata/ca.crt")"
    printf 'bootstrap_token = "abcdef.0123456789abcdef"\n'
    printf 'labels = { "node-role.kubernetes.io/worker" = "" }\nextra_args = { "max-pods" = "50" }\n'
  } >"$doc"
  say "osctl config apply: hostname, a name server, a kubelet section"
  out=$(osctl_json config apply "$doc" --mode no-reboot) || die "osctl config apply failed: $out"
  jq -e '.[0].ok and (.[0].result.rebooting | not)' <<<"$out" >/dev/null ||
    die "config apply: expected no reboot: $out"
  [ "$(node_hostname)" = e2e-kubelet-node ] || die "osctl version: hostname $(node_hostname), not e2e-kubelet-node"
  osctl_json config get | jq -e '.[0].result.document | contains("\"10.0.2.53\"")' >/dev/null ||
    die "config get does not show the name server 10.0.2.53: $(osctl_json config get)"
  wait_until 90 "kubelet is running" kubelet_is running
  wait_until 90 "the stand-in kubelet logs 'all checks passed'" kubelet_logged 'all checks passed'
  log=$(vm_osctl "$E2E_VM" logs kubelet)
  for c in argv config kubeconfig token ca cri; do
    grep -qF "check $c: ok" <<<"$log" || die "kubelet's log lacks 'check $c: ok': $log"
  done
  ! grep -q 'FAILED' <<<"$log" || die "a stand-in check failed: $log"
  kubelet_is running || die "kubelet stopped after its checks: $(service_state kubelet)"
  say "   version: hostname e2e-kubelet-node; config get: name server 10.0.2.53; kubelet running, every check ok"
  say "   kubelet's $(grep -o 'runtime: .*' <<<"$log" | head -n1)"
  pods_through_the_standin
  same_boot "$b" "$n" || die "the node rebooted during a live config apply"

  say "osctl config apply: the kubelet section removed"
  sed -i '/^\[kubelet\]/,$d' "$doc"
  out=$(osctl_json config apply "$doc" --mode no-reboot) || die "osctl config apply failed: $out"
  jq -e '.[0].ok and (.[0].result.rebooting | not)' <<<"$out" >/dev/null || die "config apply: expected no reboot: $out"
  wait_until 60 "kubelet is waiting again" kubelet_is waiting
  wait_until 30 "the stand-in kubelet stopped on SIGTERM" kubelet_logged 'SIGTERM, stopping'
  say "osctl config apply: the empty document (the command line's hostname back)"
  printf 'version = 1\n' >"$doc"
  out=$(osctl_json config apply "$doc" --mode no-reboot) || die "osctl config apply failed: $out"
  wait_until 30 "the hostname is no longer e2e-kubelet-node" hostname_is_not e2e-kubelet-node
  same_boot "$b" "$n" || die "the node rebooted during a live config apply"
  say "   kubelet waiting again, hostname $(node_hostname), same boot; these checks took $(elapsed "$t0") s"
}

# The test workload image (build-rootfs writes its archive) and its name.
E2E_WORKLOAD_TAR=$MATIC_OUT/images/workload.tar
E2E_WORKLOAD_IMAGE=$MATIC_WORKLOAD_IMAGE
# workload_listed: `osctl images` lists the test workload with a size and
# a sha256 digest.
workload_listed() {
  osctl_json images | jq -e --arg n "$E2E_WORKLOAD_IMAGE" \
    '[.[0].result.images[] | select(.name == $n and .size > 0 and (.digest | test("^sha256:[0-9a-f]{64}$")))] | length == 1' >/dev/null
}
# container_of POD: the JSON of the one container of the stand-in's POD.
container_of() {
  osctl_json containers | jq -ec --arg p "matic-standin/$1" '[.[0].result.containers[] | select(.pod == $p)] | if length == 1 then .[0] else error("\(length) containers in \($p)") end'
}

# pods_through_the_standin (issue 17, on scenario 1's first boot, the
# stand-in running with every check passed): it waits for the test
# workload image; `osctl image import` puts it in containerd and `osctl
# images` lists it; the stand-in then runs two host-network pods through
# the CRI as kubelet would (our pause image as the sandbox), whose
# workloads print a line and exit 0 and 3. `osctl containers` shows both
# exited with those codes, `osctl logs --container` has the line, and the
# stand-in's log has each pod's start latency. The image stays listed
# after the reboot scenario 1 makes next (it lives on MATIC_STATE).
pods_through_the_standin() {
  local t0 out c id
  t0=$(date +%s.%N)
  [ -s "$E2E_WORKLOAD_TAR" ] || die "$E2E_WORKLOAD_TAR missing (scripts/build-rootfs writes it)"
  wait_until 30 "the stand-in waits for the workload image" kubelet_logged "pods: waiting for $E2E_WORKLOAD_IMAGE"
  say "osctl image import $(basename "$E2E_WORKLOAD_TAR") ($(stat -c %s "$E2E_WORKLOAD_TAR") bytes)"
  out=$(osctl_json image import "$E2E_WORKLOAD_TAR") || die "osctl image import failed: $out"
  workload_listed || die "osctl images does not list $E2E_WORKLOAD_IMAGE with a size and digest: $(osctl_json images)"
  wait_until 120 "the stand-in's two pods ran" kubelet_logged 'pods: test pods done, exit codes 0 3'
  ! vm_osctl "$E2E_VM" logs kubelet | grep -q 'FAILED' || die "the stand-in failed: $(vm_osctl "$E2E_VM" logs kubelet)"
  c=$(container_of standin-ok) || die "osctl containers: no one container in standin-ok: $(osctl_json containers)"
  jq -e --arg i "$E2E_WORKLOAD_IMAGE" '.state == "EXITED" and .exit_code == 0 and .image == $i' <<<"$c" >/dev/null ||
    die "standin-ok's container did not exit 0: $c"
  id=$(jq -r .id <<<"$c")
  vm_osctl "$E2E_VM" logs --container "${id:0:12}" | grep -qxF 'matic-standin: hello from a pod' ||
    die "osctl logs --container ${id:0:12} lacks the workload's line: $(vm_osctl "$E2E_VM" logs --container "$id")"
  c=$(container_of standin-three) || die "osctl containers: no one container in standin-three: $(osctl_json containers)"
  jq -e '.state == "EXITED" and .exit_code == 3' <<<"$c" >/dev/null || die "standin-three's container did not exit 3: $c"
  say "   osctl images: $E2E_WORKLOAD_IMAGE; containers: standin-ok exited 0 (its line in osctl logs --container), standin-three exited 3"
  vm_osctl "$E2E_VM" logs kubelet | grep -o 'pod standin-[a-z]*: .* running [0-9]* ms after RunPodSandbox' |
    sed -E 's/^pod ([^:]*): .* running ([0-9]*) ms .*/   pod start \1: \2 ms (RunPodSandbox -> running)/' | while IFS= read -r l; do say "$l"; done
  say "   these pod checks took $(elapsed "$t0") s"
}

# 8. Manual rollback after a successful update returns to the previous version.
scenario_8() {
  need_good_node
  local cur slot prev
  slot=$(running_slot)
  if ! slot_is "$(other "$slot")" '.bootable and .successful' 2>/dev/null; then
    # Set up "after a successful update": update once and let it succeed.
    cur=$(running_version)
    local next
    next=$(pick_image "$cur")
    say "setup: update $cur -> $next"
    install "$next" >/dev/null
    reboot_into "$next" "$(other "$slot")"
    wait_marked
    slot=$(running_slot)
  fi
  cur=$(running_version)
  prev=$(slot_field "$(other "$slot")" version)
  say "running $cur from $slot; osctl rollback to $prev in $(other "$slot")"
  local b
  b=$(boots)
  vm_osctl "$E2E_VM" rollback >/dev/null || die "osctl rollback failed"
  wait_boot "$b" "$E2E_BOOT_WAIT"
  wait_until 60 "$prev from slot $(other "$slot")" is_running "$prev" "$(other "$slot")"
  wait_marked
  expect_slot "$(other "$slot")" '.running and .successful and .next_boot'
  expect_slot "$slot" ".version == \"$cur\" and .bootable"
  # The machine configuration's try-and-revert, on this healthy node
  # (scripts/e2e/trials.sh).
  check_config_trials
}

# 6. Power cut right after the flags are written: the node boots the new
# slot, or the old one if the cut came before; never neither.
scenario_6() {
  need_good_node
  local slot cur new w next

  # a) Cut the moment osctl install has its reply: the agent wrote and
  #    synced the flags, so the new slot must boot.
  slot=$(running_slot) cur=$(running_version)
  new=$(pick_image "$cur" "$(slot_field "$(other "$slot")" version)")
  say "a) install $new into $(other "$slot"), power cut as soon as osctl returns"
  install "$new" >/dev/null
  power_cut
  gpt_sound
  next=$(disk_next)
  [ "$next" = "$(other "$slot")" ] || die "after the flags were written, the disk's next slot is $next, not $(other "$slot")"
  say "   disk: next=$next; $(disk_slot "$next")"
  node_boot
  expect_running "$new" "$next"
  wait_marked
  # The boot history: the boot the cut ended left no ending of its own.
  boot_ended 1 power_loss_or_reset "power loss or hard reset"
  say "   osctl boots: the previous boot ended in a power loss or hard reset"

  # b) Cut when the guest has written as many bytes as the image has (data
  #    synced, flags being or about to be written): whichever slot the GPT
  #    on the disk names must boot, with its own image.
  slot=$(running_slot) cur=$(running_version)
  new=$(pick_image "$cur" "$(slot_field "$(other "$slot")" version)")
  local size
  size=$(stat -c %s "$(img "$new")")
  say "b) install $new into $(other "$slot"), power cut once $size bytes were written"
  qmp_open
  qmp_throttle "$E2E_CUT_BPS"
  local base
  qmp_wr_bytes || die "QMP: no block statistics"
  base=$WR
  local t_start t_cut
  t_start=$(date +%s.%N)
  osctl_json install "$(img "$new")" >"$E2E_DIR/install.out" 2>&1 &
  local job=$! until=$(($(date +%s) + 300))
  while :; do
    qmp_wr_bytes || die "QMP stopped answering"
    w=$WR
    ((w - base >= size)) && break
    kill -0 "$job" 2>/dev/null || break
    (($(date +%s) < until)) || die "the install did not write $size bytes within 300 s"
    sleep 0.02
  done
  power_cut
  t_cut=$(date +%s.%N)
  wait "$job" 2>/dev/null || true
  gpt_sound
  next=$(disk_next)
  say "   cut after $((w - base)) bytes written; disk: next=$next; $(disk_slot "$(other "$slot")")"
  case $next in
    "$slot") want=$cur ;;
    "$(other "$slot")") want=$new ;;
    *) die "the disk has no bootable slot after the cut: $(disk_tool status "$E2E_DISK" | tr '\n' ' ')" ;;
  esac
  node_boot
  expect_running "$want" "$next"
  wait_marked
  logs_up_to_the_cut "$new" "$t_start" "$t_cut"
}

# logs_up_to_the_cut VERSION T_START T_CUT: the boot a power cut ended
# (the one before the running one) kept the agent's lines up to about the
# cut (docs/history.md: the logs reach the disk once a second). The
# install of VERSION began at host time T_START and was cut at T_CUT; the
# writer logs its progress every 2 s, so the last line kept must be
# stamped no earlier than 5 s before the cut, reckoned on the node's boot
# clock from the install's first line: 2 s between lines, 1 s of fsync
# policy, and up to 2 s from osctl's start (T_START) to that first line
# (start-up, TLS, the manifest's checks), which makes the cut look later.
logs_up_to_the_cut() {
  local version=$1 t_start=$2 t_cut=$3 log first last
  log=$(vm_osctl "$E2E_VM" logs matic-agent --boot -1) ||
    die "osctl logs matic-agent --boot -1 failed: $log"
  first=$(grep -m1 "matic-agent: install: release $version " <<<"$log" | cut -d' ' -f1)
  [ -n "$first" ] || die "the cut boot's agent log has no line of the install of $version: $(tail -n 5 <<<"$log")"
  grep -q 'matic-agent: install: slot [AB]: .* MiB written' <<<"$log" ||
    die "the cut boot's agent log has no progress line of the install: $(tail -n 5 <<<"$log")"
  last=$(tail -n 1 <<<"$log" | cut -d' ' -f1)
  awk -v f="$first" -v l="$last" -v s="$t_start" -v c="$t_cut" \
    'BEGIN { exit !(l + 0 >= f + (c - s) - 5) }' ||
    die "the cut boot's agent log ends at boot second $last, more than 5 s before the cut (about $(awk -v f="$first" -v s="$t_start" -v c="$t_cut" 'BEGIN { printf "%.1f", f + c - s }')): $(tail -n 3 <<<"$log")"
  say "   osctl logs matic-agent --boot -1: the install's lines up to $(awk -v f="$first" -v l="$last" -v s="$t_start" -v c="$t_cut" 'BEGIN { printf "%.1f s before the cut", f + c - s - l }')"
}

# bad_image VERSION: install a broken image into the other slot, reboot, and
# wait until the node is back on the previous slot by itself. Prints the
# recovery time; RECOVERY_BOOTS is set to the number of boots it took.
bad_image() {
  local bad=$1 slot cur b t0
  need_good_node
  slot=$(running_slot) cur=$(running_version)
  say "running $cur from $slot; install $bad into $(other "$slot") and reboot"
  local r
  r=$(install "$bad")
  BAD_TRIES=$(jq -er '.[0].result.tries' <<<"$r")
  expect_slot "$(other "$slot")" '.bootable and .next_boot'
  b=$(boots)
  t0=$(date +%s.%N)
  vm_osctl "$E2E_VM" reboot >/dev/null || die "osctl reboot failed"
  # Recovery: a later boot answers with the old image from the old slot.
  local until=$(($(date +%s) + 600))
  until (($(boots) > b + 1)) && is_running "$cur" "$slot" >/dev/null 2>&1; do
    node_up || die "QEMU exited during the rollback"
    (($(date +%s) < until)) || die "not back on $cur from $slot within 600 s (boots since the reboot: $(($(boots) - b)))"
    sleep 1
  done
  RECOVERY_BOOTS=$(($(boots) - b))
  say "back on $cur from $slot after $(elapsed "$t0") s and $RECOVERY_BOOTS boots (from osctl reboot to the API answering)"
  expect_slot "$(other "$slot")" '(.bootable | not) and .priority == 0 and (.next_boot | not)'
  expect_slot "$slot" '.running and .successful and .next_boot'
}

# boot_ended INDEX KIND [TEXT]: `osctl boots` lists, INDEX places before the
# running boot (1 = the boot before), a boot that ended as KIND (the API's
# ending_kind) with TEXT in its ending's words.
boot_ended() {
  local j
  j=$(osctl_json boots) || die "osctl boots failed: $j"
  jq -e --argjson i "$1" --arg k "$2" --arg t "${3:-}" \
    '.[0].ok and .[0].result.boots[0].running and (.[0].result.boots[$i] | .ending_kind == $k and (.ending | contains($t)))' <<<"$j" >/dev/null ||
    die "osctl boots: the boot $1 before the running one should have ended as $2${3:+ ($3)}; the list: $(jq -c '[.[0].result.boots[] | {number, slot, ending_kind, ending}]' <<<"$j")"
}

# console_since_boot N [CONSOLE]: the console lines since boot number N+1
# of this QEMU (CONSOLE: another node's console.log, default the suite's).
console_since_boot() {
  awk -v n="$1" '/Run \/init as init process/ { c++ } c > n' "${2:-$E2E_VM/console.log}"
}

# 2. Bad image whose agent exits at start: backoff, boot deadline, tries
# run out. Not in the default order: scenario 13 b) makes the same rollback
# on its first node and runs these checks there (agent_exits_rollback).
scenario_2() {
  local b
  need_good_node
  b=$(boots)
  bad_image e2e-agent-exits
  # One boot of the bad slot per try, then the good one.
  agent_exits_rollback "$(console_since_boot "$b")" $((RECOVERY_BOOTS - 1)) "$BAD_TRIES"
}

# agent_exits_rollback CONSOLE BAD TRIES: CONSOLE (the console since the
# reboot into e2e-agent-exits, the boot back on the old slot included)
# shows BAD boots of the bad slot, one per try (TRIES), init restarting the
# crashing agent in each (with its backoff: more than twice a boot), and
# each boot ended by init's boot deadline.
agent_exits_rollback() {
  local log=$1 bad=$2 tries=$3 restarts deadlines
  ((bad == tries)) || die "expected $tries boots of the bad slot (one per try), saw $bad"
  restarts=$(grep -c 'matic-init: matic-agent: started' <<<"$log" || true)
  deadlines=$(grep -c 'matic-init: boot deadline: slot not marked successful in time' <<<"$log" || true)
  say "   console: matic-agent started $restarts times; $deadlines boot deadlines passed"
  ((restarts > 2 * bad)) || die "init did not restart the crashing agent (started $restarts times in $bad bad boots)"
  ((deadlines == bad)) || die "expected one boot deadline per bad boot: $deadlines deadlines, $bad bad boots"
}

# 3. Bad image that passes the digest but does not mount (EINVAL: the
# image's fault, docs/init.md): stage 1 gives the slot up at once.
scenario_3() {
  local b
  need_good_node
  b=$(boots)
  bad_image e2e-not-mountable
  local log
  log=$(console_since_boot "$b")
  grep -qE 'matic-init: slot [AB]: mounting its squashfs failed: os error 22' <<<"$log" ||
    die "the console does not show stage 1 failing to mount the slot (EINVAL)"
  grep -qE 'matic-init: slot [AB]: its image cannot boot; slot given up, rebooting' <<<"$log" ||
    die "the console does not show stage 1 giving the slot up"
  ((RECOVERY_BOOTS == 2)) || die "expected exactly 2 boots (bad slot refused by stage 1, then the good one), saw $RECOVERY_BOOTS"
  given_up_boot_recorded
}

# The boot before the running one was stage 1 giving the other slot up: no
# agent ran in it, so its record comes from the kernel log init had dumped
# to pstore on its way down (docs/history.md).
given_up_boot_recorded() {
  boot_ended 1 unmountable_root
  osctl_json boots | jq -e --arg s "$(other "$(running_slot)")" '.[0].result.boots[1].slot == $s' >/dev/null ||
    die "osctl boots: the boot before should name slot $(other "$(running_slot)"): $(osctl_json boots | jq -c '[.[0].result.boots[] | {number, slot, ending_kind}]')"
  vm_osctl "$E2E_VM" dmesg --boot -1 | grep -q 'slot given up, rebooting' ||
    die "osctl dmesg --boot -1 does not show stage 1 giving the slot up"
  say "   osctl boots: the boot before ended in stage 1 (unmountable root, slot $(other "$(running_slot)")); dmesg --boot -1 shows why"
}

# 4. Broken init in the new slot, the previous slot boots:
# a) /sbin/init missing: stage 1's execve fails with ENOENT, the image's
#    fault, so stage 1 gives the slot up at once and reboots (PID 1 never
#    just exits);
# b) /sbin/init exits at once: PID 1 dies, the kernel panics ("Attempted to
#    kill init"), and panic=5 reboots the machine, once per try.
scenario_4() {
  local b log panics
  need_good_node
  b=$(boots)
  bad_image e2e-no-init
  log=$(console_since_boot "$b")
  panics=$(grep -cE 'matic-init: slot [AB]: executing its /sbin/init failed: os error 2\b' <<<"$log" || true)
  say "   console: $panics times stage 1 could not exec /sbin/init"
  ((panics == 1)) || die "expected one failed exec of /sbin/init (the slot given up at once), saw $panics"
  grep -qE 'matic-init: slot [AB]: its image cannot boot; slot given up, rebooting' <<<"$log" ||
    die "the console does not show stage 1 giving the slot up"
  ((RECOVERY_BOOTS == 2)) || die "expected 2 boots (the bad slot given up by stage 1, then the good one), saw $RECOVERY_BOOTS"
  given_up_boot_recorded

  b=$(boots)
  bad_image e2e-init-exits
  log=$(console_since_boot "$b")
  panics=$(grep -c 'Kernel panic - not syncing: Attempted to kill init' <<<"$log" || true)
  say "   console: $panics kernel panics (Attempted to kill init)"
  ((panics == BAD_TRIES)) || die "expected one kernel panic per try ($BAD_TRIES), saw $panics"
  ((RECOVERY_BOOTS == panics + 1)) || die "expected one boot per panic plus the good one: $panics panics, $RECOVERY_BOOTS boots"
  # The boot history: each panicked boot never reached the agent; its record
  # comes from the crash dump the firmware's ERST kept (pstore).
  local i bad
  bad=$(other "$(running_slot)")
  for i in $(seq "$panics"); do
    boot_ended "$i" kernel_panic "Attempted to kill init"
  done
  osctl_json boots | jq -e --arg s "$bad" --argjson n "$panics" '[.[0].result.boots[1:$n + 1][] | select(.slot == $s)] | length == $n' >/dev/null ||
    die "osctl boots: the panicked boots should name slot $bad: $(osctl_json boots | jq -c '[.[0].result.boots[] | {number, slot, ending_kind}]')"
  vm_osctl "$E2E_VM" dmesg --boot -1 | grep -q 'Kernel panic - not syncing: Attempted to kill init' ||
    die "osctl dmesg --boot -1 does not show the previous boot's panic"
  say "   osctl boots: $panics boots of slot $bad ended in a kernel panic; dmesg --boot -1 shows it"
}

# 5. Power cuts during install, at >= 10 points chosen from bytes written
# (QMP's write counter of the disk; the disk is throttled, see qmp_throttle):
# cut 0 and E2E_CUTS more.
scenario_5() {
  need_good_node
  local slot cur part full size k target w base t0 cuts=${E2E_CUTS:-9}
  slot=$(running_slot) cur=$(running_version)
  local tgt
  tgt=$(other "$slot")
  # The cut install writes one image, the fresh one another: after a cut the
  # target slot holds a torn mix, not a whole earlier copy of the same bytes.
  part=$(pick_image "$cur") full=$(pick_image "$cur" "$part")
  size=$(stat -c %s "$(img "$part")")
  say "running $cur from $slot; cutting installs of $part ($size bytes) into $tgt at $cuts points"
  printf '  %-4s %-16s %-16s %-10s %s\n' cut "target bytes" "written at cut" "after (s)" "fresh install" >"$E2E_DIR/cuts.txt"
  # Cut 0 comes with the first write the install makes (it invalidates the
  # target in the GPT before any image byte); cut k with k/(cuts+1) of the
  # image's size written.
  for k in $(seq 0 "$cuts"); do
    target=$((size * k / (cuts + 1)))
    ((k > 0)) || target=1
    qmp_open
    qmp_throttle "$E2E_CUT_BPS"
    qmp_wr_bytes || die "QMP: no block statistics"
    base=$WR
    t0=$(date +%s.%N)
    osctl_json install "$(img "$part")" >"$E2E_DIR/install.out" 2>&1 &
    local job=$! until=$(($(date +%s) + 300))
    while :; do
      qmp_wr_bytes || die "QMP stopped answering"
    w=$WR
      ((w - base >= target)) && break
      kill -0 "$job" 2>/dev/null || die "cut $k: the install finished before $target bytes were written ($((w - base)) written): $(cat "$E2E_DIR/install.out")"
      (($(date +%s) < until)) || die "cut $k: $target bytes not written within 300 s"
      sleep 0.02
    done
    power_cut
    local after
    after=$(elapsed "$t0")
    wait "$job" 2>/dev/null || true
    # The disk as the power cut left it.
    gpt_sound
    disk_slot "$tgt" | grep -q 'bootable=0' || die "cut $k: slot $tgt is bootable after a cut install: $(disk_slot "$tgt")"
    [ "$(disk_next)" = "$slot" ] || die "cut $k: the disk would boot $(disk_next), not $slot"
    say "cut $k: $((w - base)) bytes written (target $target) ${after} s into the install; GPT sound, $tgt unbootable"
    node_boot
    expect_running "$cur" "$slot"
    expect_slot "$tgt" '(.bootable | not)'
    # A fresh install into the same slot then succeeds.
    install "$full" >/dev/null
    expect_slot "$tgt" ".version == \"$full\" and .bootable and .next_boot"
    slot_holds "$tgt" "$full" || die "cut $k: after the fresh install slot $tgt does not hold $full"
    printf '  %-4s %-16s %-16s %-10s %s\n' "$k" "$target" "$((w - base))" "$after" ok >>"$E2E_DIR/cuts.txt"
  done
  cat "$E2E_DIR/cuts.txt"
}

# 10. A changed byte in an installed slot is caught. The running root is a
# dm-verity device. A good release is installed into the other slot, the
# node powered off, one byte of that slot changed on the host, the node
# booted:
# a) a byte of its SquashFS (block 0, which every mount reads): the
#    kernel's dm-verity finds the block corrupted and restarts the machine
#    (restart_on_corruption), once per try; the previous slot boots;
# b) a byte of its manifest (the security counter): stage 1 refuses the
#    signature and gives the slot up at once; the previous slot boots.
scenario_10() {
  need_good_node
  local slot cur tgt new r tries start size b log v
  slot=$(running_slot) cur=$(running_version) tgt=$(other "$slot")
  v=$(osctl_json version)
  jq -e '.[0].result.root_verity and (.[0].result.root_device | test("^/dev/dm-[0-9]+$")) and (.[0].result.release.root_hash | length == 64)' <<<"$v" >/dev/null ||
    die "the running root is not a verity device: $(jq -c '.[0].result | {root_device, root_verity, release}' <<<"$v")"
  say "running $cur from $slot, root on $(jq -r '.[0].result.root_device' <<<"$v") (verity, root hash $(jq -r '.[0].result.release.root_hash[:12]' <<<"$v")...)"
  local part
  for part in squashfs manifest; do
    new=$(pick_image "$cur")
    r=$(install "$new")
    tries=$(jq -er '.[0].result.tries' <<<"$r")
    expect_slot "$tgt" ".bootable and .next_boot and .release.version == \"$new\""
    say "$part: $new installed into $tgt ($tries tries); power off, change one byte of its $part, boot"
    power_off
    read -r start size < <(part_range "MATIC_ROOT_$tgt")
    case $part in
      squashfs) flip_byte "$E2E_DISK" $((start + 1000)) ;;
      manifest) flip_byte "$E2E_DISK" $((start + size - 65536 + 16)) ;;
    esac
    # A new QEMU starts a new console log: count its boots from 0.
    b=0
    node_boot
    expect_running "$cur" "$slot"
    log=$(console_since_boot "$b")
    case $part in
      squashfs)
        grep -qE 'device-mapper: verity: .*data block 0 is corrupted' <<<"$log" ||
          die "the console does not show dm-verity finding data block 0 corrupted"
        (($(boots) - b == tries + 1)) ||
          die "expected $tries boots of the changed slot (one per try) and one of $slot, saw $(($(boots) - b))"
        say "   dm-verity restarted the node $tries times; back on $cur from $slot"
        ;;
      manifest)
        grep -qE "matic-init: slot $tgt: .*signature does not verify" <<<"$log" ||
          die "the console does not show stage 1 refusing the manifest's signature"
        grep -qE "matic-init: slot $tgt: its image cannot boot; slot given up" <<<"$log" ||
          die "the console does not show stage 1 giving the slot up"
        (($(boots) - b == 2)) || die "expected 2 boots (the slot refused by stage 1, then $slot), saw $(($(boots) - b))"
        expect_slot "$tgt" '.release_error | length > 0'
        say "   stage 1 refused the manifest and gave $tgt up; back on $cur from $slot"
        ;;
    esac
    expect_slot "$tgt" '(.bootable | not) and (.next_boot | not)'
    expect_slot "$slot" '.running and .successful and .next_boot'
  done
}

# 9. Graceful reboot and poweroff.
scenario_9() {
  need_good_node
  local b log slot
  b=$(boots)
  slot=$(running_slot)
  say "osctl reboot"
  vm_osctl "$E2E_VM" reboot >/dev/null || die "osctl reboot failed"
  wait_boot "$b" "$E2E_BOOT_WAIT"
  # The shutdown that ended boot b, as init logged it on the console.
  log=$(awk -v n="$b" '/Run \/init as init process/ { c++ } c == n' "$E2E_VM/console.log")
  check_shutdown_order "$log" reboot
  boot_ended 1 reboot "over the API"
  say "   osctl boots: the previous boot ended in a reboot requested over the API"
  # This boot mounted /var without a journal recovery.
  log=$(console_since_boot "$b")
  # (A failed check here is noted and the scenario goes on to the poweroff,
  # so one run shows every problem.)
  local problems=()
  if grep -E 'EXT4-fs \(vda4\).*(recovery|orphan)' <<<"$log"; then
    problems+=("ext4 on /var needed a journal recovery after a graceful reboot")
    echo "  FAIL (continuing): ${problems[-1]}" >&2
  fi
  grep -qE 'EXT4-fs \(vda4\): mounted' <<<"$log" || die "no ext4 mount of vda4 on the console after the reboot"
  # The services' own logs saw SIGTERM.
  # (Its lines are in the boot record: the boot before this one.)
  wait_until 30 "matic-agent's log of the boot before shows it stopped on SIGTERM" sh -c "OSCTL_CONFIG=$MATIC_PKI/osctlconfig $MATIC_RELEASE/osctl --endpoints 127.0.0.1:$E2E_PORT logs matic-agent --boot -1 | grep -q 'SIGTERM, stopping'"

  say "osctl shutdown"
  b=$(boots)
  local t0
  t0=$(date +%s.%N)
  vm_osctl "$E2E_VM" shutdown >/dev/null || die "osctl shutdown failed"
  local until=$(($(date +%s) + 120))
  while node_up; do
    (($(date +%s) < until)) || die "QEMU still runs 120 s after osctl shutdown"
    sleep 0.5
  done
  say "QEMU exited $(elapsed "$t0") s after osctl shutdown"
  (($(boots) == b)) || die "the node rebooted instead of powering off"
  log=$(awk -v n="$b" '/Run \/init as init process/ { c++ } c == n' "$E2E_VM/console.log")
  check_shutdown_order "$log" poweroff
  check_state_clean
  ((${#problems[@]} == 0)) || die "${problems[*]}"
}

# check_shutdown_order CONSOLE_TEXT WHAT: init stopped the services one at
# a time in reverse table order (kubelet, containerd, matic-agent; a skipped
# one has no lines): each got SIGTERM only after the one after it in the
# table had stopped; then /var was unmounted, then the reboot or poweroff.
check_shutdown_order() {
  local log=$1 what=$2 seq
  grep -q "shutdown for $what" <<<"$log" || die "no 'shutdown for $what' line from init on the console"
  seq=$(sed -n '/shutdown for '"$what"'/,$p' <<<"$log" |
    grep -oE 'matic-init: ((kubelet|containerd|matic-agent): (SIGTERM to|stopped)|/var unmounted|(reboot|poweroff) now)' |
    sed -e 's/^matic-init: //' -e 's/ to$//' | tr '\n' ',')
  say "   $what: init's console lines: ${seq//,/; }"
  case $seq in
    "containerd: SIGTERM,containerd: stopped,matic-agent: SIGTERM,matic-agent: stopped,/var unmounted,$what now," | \
      "kubelet: SIGTERM,kubelet: stopped,containerd: SIGTERM,containerd: stopped,matic-agent: SIGTERM,matic-agent: stopped,/var unmounted,$what now,") ;;
    *) die "the $what did not stop the services in reverse order, then unmount /var: '$seq'" ;;
  esac
}

# check_state_clean: after QEMU exited, MATIC_STATE's ext4 needs no recovery.
check_state_clean() {
  local start size tmp out
  read -r start size < <(part_range MATIC_STATE)
  tmp=$E2E_DIR/state.ext4
  # A sparse copy of the partition's byte range, for dumpe2fs and e2fsck.
  dd if="$E2E_DISK" of="$tmp" bs=1M skip=$((start / 1048576)) count=$((size / 1048576)) conv=sparse status=none
  out=$(dumpe2fs -h "$tmp" 2>/dev/null)
  local bad=()
  say "   MATIC_STATE: dumpe2fs -h: $(grep -E '^Filesystem state:' <<<"$out" | tr -s ' '); features: $(grep -E '^Filesystem features:' <<<"$out" | cut -d: -f2- | tr -s ' ')"
  grep -q '^Filesystem state: *clean$' <<<"$out" || bad+=("MATIC_STATE is not clean")
  if grep -q needs_recovery <<<"$out"; then bad+=("MATIC_STATE's journal needs recovery"); fi
  if ! e2fsck -fn "$tmp" >"$E2E_DIR/e2fsck.out" 2>&1; then
    bad+=("e2fsck -fn: $(tail -n 5 "$E2E_DIR/e2fsck.out" | tr '\n' ' ')")
  fi
  rm -f "$tmp"
  ((${#bad[@]} == 0)) || die "${bad[*]}"
  say "   MATIC_STATE: clean, no needs_recovery; e2fsck -fn clean"
}

# 7. Agent crashes: a fault-injection image aborts its agent on demand.
# Init's released backoff for matic-agent (README): the n-th consecutive
# crash waits 0, 1, 2, 4, then 5 s (the agent's cap; a 60 s run resets the
# count). Each time the API must answer within E2E_API_BACK s after that.
E2E_API_BACK=${E2E_API_BACK:-20}
E2E_AGENT_BACKOFF_CAP=${E2E_AGENT_BACKOFF_CAP:-5}
backoff_s() {
  local n=$1 d
  ((n <= 1)) && { echo 0; return; }
  d=$((n - 2 > 10 ? 1024 : 1 << (n - 2)))
  ((d > E2E_AGENT_BACKOFF_CAP)) && d=$E2E_AGENT_BACKOFF_CAP
  echo "$d"
}
agent_field() { osctl_json services | jq -er ".[0].result.services[] | select(.name == \"matic-agent\") | .$1"; }
agent_restarted_since() { # RESTARTS PID: a new agent process answers, counted
  local j
  j=$(osctl_json services) || return 1
  jq -e --argjson r "$1" --argjson p "$2" '.[0].result.services[] | select(.name == "matic-agent") |
    .restarts > $r and .pid != $p and .state == "running"' <<<"$j" >/dev/null
}
scenario_7() {
  say "booting a fresh node from the fault-injection image"
  node_fresh "$E2E_IMAGES/fault-disk.img"
  expect_running e2e-fault A
  local b n t0 secs r0 restarts pid allowed
  b=$(boots)
  r0=$(agent_field restarts) pid=$(agent_field pid)
  restarts=$r0
  for n in $(seq 1 "$E2E_CRASHES"); do
    t0=$(date +%s.%N)
    vm_osctl "$E2E_VM" restart fault:abort-agent >/dev/null || die "crash $n: osctl restart fault:abort-agent failed"
    # The reply comes before the abort; the API answers again once init has
    # restarted the agent (after its backoff delay) as a new, counted process.
    allowed=$(($(backoff_s "$n") + E2E_API_BACK))
    wait_until "$allowed" "crash $n: a restarted agent answers (backoff $(backoff_s "$n") s + $E2E_API_BACK s)" \
      agent_restarted_since "$restarts" "$pid"
    secs=$(elapsed "$t0")
    restarts=$(agent_field restarts) pid=$(agent_field pid)
    ((restarts == r0 + n)) || die "crash $n: services shows $restarts restarts, expected $((r0 + n))"
    [ "$(agent_field last_exit)" = signal:6 ] || die "crash $n: last_exit is $(agent_field last_exit), not signal:6 (SIGABRT)"
    say "crash $n: API back after $secs s (backoff $(backoff_s "$n") s); matic-agent restarts=$restarts last_exit=signal:6"
  done
  (($(boots) == b)) || die "the node rebooted during the crash loop (init exited?)"
  if grep -q 'Kernel panic' "$E2E_VM/console.log"; then die "a kernel panic during the crash loop"; fi
  say "osctl restart matic-agent"
  vm_osctl "$E2E_VM" restart matic-agent >/dev/null || die "osctl restart matic-agent failed"
  wait_until 60 "a new agent process answers after osctl restart matic-agent" agent_pid_changed "$pid"
  say "API back with a new agent (pid $(agent_field pid), was $pid); restarts=$(agent_field restarts)"
  (($(boots) == b)) || die "the node rebooted (init exited?)"
  vm_stop "$E2E_VM"
}
agent_pid_changed() {
  local j
  j=$(osctl_json services) || return 1
  jq -e --argjson p "$1" '.[0].result.services[] | select(.name == "matic-agent") | .pid != $p and .state == "running"' <<<"$j" >/dev/null
}

# kernel_of VERSION: the kernel release an image carries (the first field of
# its /boot/kernel-id, read from its SquashFS on the host).
kernel_of() {
  unsquashfs -cat "$(sq "$1")" boot/kernel-id | cut -d' ' -f1 | grep . ||
    die "$(sq "$1") has no /boot/kernel-id"
}
running_kernel() { osctl_json version | jq -er '.[0].result.kernel'; }
# kexecs_since_boot N: how many times stage 1 kexec'd since boot N+1.
kexecs_since_boot() { console_since_boot "$1" | grep -cE "matic-init: kexec into slot [AB]'s kernel" || true; }

# 11. Kernel update through the slots. A release carrying the other Debian
# kernel is installed into the other slot; the node reboots:
# a) power cut as soon as the loader's stage 1 announces the kexec: the try
#    it spent is on the disk; the next boot spends another and goes on;
# b) that boot: the loader (slot A's kernel on the ESP) chooses the slot,
#    kexecs its kernel, the new kernel's stage 1 takes the slot as given
#    (matic.slot=) and the node runs the new kernel, under lockdown, and
#    marks the boot successful;
# c) osctl rollback: the previous slot and its kernel come back, no kexec
#    when its kernel is the loader's.
# loader_marks: the running boot's loader marks as `kernel,/init,kexec` (ms
# of the loader's clock), listed first and in order; fails without them.
loader_marks() {
  osctl_json boots show "$(running_boot)" | jq -er '
    [.[0].result.marks[] | select(.name | startswith("loader:"))] as $l
    | select(($l | map(.name)) == ["loader:kernel", "loader:/init", "loader:kexec"]
        and $l[1].at_ms > 0 and $l[2].at_ms > $l[1].at_ms
        and (.[0].result.marks[0:3] | map(.name)) == ($l | map(.name)))
    | $l | map(.at_ms | tostring) | join(",")'
}

scenario_11() {
  need_good_node
  local slot cur tgt k1 k2 r tries b t0 secs_kexec secs_plain
  slot=$(running_slot) cur=$(running_version) tgt=$(other "$slot")
  k1=$(running_kernel) k2=$(kernel_of e2e-kernel2)
  [ "$k1" != "$k2" ] || die "e2e-kernel2 carries the running kernel $k1: no kernel change to test"
  say "running $cur from $slot on kernel $k1; install e2e-kernel2 (kernel $k2) into $tgt"
  r=$(install e2e-kernel2)
  tries=$(jq -er '.[0].result.tries' <<<"$r")
  expect_slot "$tgt" '.bootable and .next_boot and (.successful | not)'

  say "a) reboot; power cut when stage 1 announces the kexec"
  b=$(boots)
  vm_osctl "$E2E_VM" reboot >/dev/null || die "osctl reboot failed"
  local until=$(($(date +%s) + E2E_BOOT_WAIT))
  until (($(kexecs_since_boot "$b") > 0)); do
    node_up || die "QEMU exited before the kexec"
    (($(date +%s) < until)) || die "no kexec line on the console within $E2E_BOOT_WAIT s"
    sleep 0.2
  done
  power_cut
  disk_slot "$tgt" | grep -q "tries=$((tries - 1))\b" ||
    die "after the cut slot $tgt should have $((tries - 1)) tries left (one spent by the loader): $(disk_slot "$tgt")"
  [ "$(disk_next)" = "$tgt" ] || die "after the cut the disk should boot $tgt next, it boots $(disk_next)"
  say "   cut during the kexec; slot $tgt: $(disk_slot "$tgt")"

  say "b) power on: the loader kexecs $tgt's kernel"
  t0=$(date +%s.%N)
  node_boot
  secs_kexec=$(elapsed "$t0")
  expect_running e2e-kernel2 "$tgt"
  [ "$(running_kernel)" = "$k2" ] || die "slot $tgt runs kernel $(running_kernel), not its own $k2"
  wait_marked
  # A new QEMU: its console counts from boot 1.
  (($(kexecs_since_boot 0) == 1)) || die "expected one kexec in this QEMU's console, saw $(kexecs_since_boot 0)"
  console_since_boot 1 | grep -q "matic-init: slot $tgt given by matic.slot=" ||
    die "the kexec'd kernel's stage 1 did not take slot $tgt as given"
  (($(vm_osctl "$E2E_VM" dmesg | grep -c 'Kernel is locked down from command line') == 1)) ||
    die "the kexec'd kernel is not locked down from its command line"
  disk_slot "$tgt" | grep -q 'successful=1' || die "slot $tgt not marked successful on the disk: $(disk_slot "$tgt")"
  say "   running e2e-kernel2 from $tgt on $k2 (QEMU start -> API ${secs_kexec}s with the kexec), marked successful"
  # Issue 14: the kexec'd boot's timeline starts with the loader's part
  # (matic.loader_ms, docs/history.md "A kexec'd boot"), on its own clock.
  local loader
  loader=$(loader_marks) || die "osctl boots show: no loader marks in the kexec'd boot's timeline: $(osctl_json boots show "$(running_boot)")"
  say "   osctl boots show: the loader's marks $loader (its clock, ms)"

  say "c) osctl rollback to $slot"
  b=$(boots)
  vm_osctl "$E2E_VM" rollback >/dev/null || die "osctl rollback failed"
  wait_boot "$b" "$E2E_BOOT_WAIT"
  wait_until 60 "$cur from slot $slot" is_running "$cur" "$slot"
  [ "$(running_kernel)" = "$k1" ] || die "back on $slot the kernel is $(running_kernel), not $k1"
  (($(kexecs_since_boot "$b") == 0)) || die "the rollback to the loader's own kernel kexec'd"
  (($(vm_osctl "$E2E_VM" dmesg | grep -c 'Kernel is locked down from securityfs') == 1)) ||
    die "the loader's kernel was not locked down by stage 1"
  wait_marked
  ! loader_marks >/dev/null || die "osctl boots show: loader marks in a boot that was not kexec'd"
  say "   back on $cur from $slot, kernel $k1, no kexec; lockdown raised by stage 1"
}

# 12. A kernel that cannot boot the root: e2e-no-blk's initramfs lacks the
# virtio block driver. The loader kexecs it once per try; its stage 1 finds
# no disk and reboots; when the tries run out the previous slot, with the
# loader's kernel, boots by itself.
scenario_12() {
  local b log kexecs nodisk
  need_good_node
  b=$(boots)
  bad_image e2e-no-blk
  log=$(console_since_boot "$b")
  kexecs=$(kexecs_since_boot "$b")
  nodisk=$(grep -cE 'matic-init: no MaticOS disk after [0-9]+ s' <<<"$log" || true)
  say "   console: $kexecs kexecs, $nodisk times no disk"
  ((kexecs == BAD_TRIES)) || die "expected one kexec per try ($BAD_TRIES), saw $kexecs"
  ((nodisk == BAD_TRIES)) || die "expected the kexec'd stage 1 to find no disk once per try ($BAD_TRIES), saw $nodisk"
  # Each try boots twice (the loader, then the kexec'd kernel); then the good slot.
  ((RECOVERY_BOOTS == 2 * BAD_TRIES + 1)) ||
    die "expected $((2 * BAD_TRIES + 1)) boots (two per try and the good one), saw $RECOVERY_BOOTS"
}

# 13. Fleet upgrade across three nodes (issue 16): `osctl upgrade --nodes`
# against three QEMU nodes, each booted from its own copy of the base disk
# (e2e-1 in A). The images are the suite's: e2e-2 (good), e2e-agent-exits.
# a) e2e-2 rolls across the three, one at a time: each node rebooted once,
#    and on the host clock (fleet_watch over the consoles) no node's reboot
#    window (init's "shutdown for reboot" to the new boot's boot-ok)
#    overlaps another's; each runs e2e-2 from B, marked;
# b) e2e-agent-exits halts after the first node: that node's new slot runs
#    out of tries and the node comes back on B by itself (`rolled-back`),
#    the other two are `untouched`: no reboot, e2e-2 from B, slot A still
#    e2e-1 (nothing installed);
# c) the rerun of e2e-2 resumes: every node skipped (the first is back on
#    the release), no reboot, exit 0.
# Prints the three-node rollout's wall time beside the sum of the three
# nodes' own upgrade times (each node's elapsed_s in the summary: install,
# reboot, wait, --healthy-for).
#
# --healthy-for 5s (not the default 30 s): every look in the window (one a
# second) must see the new boot, its slot marked and every health check
# passing; in these images nothing starts later that could fail then (no
# kubelet), and the bad image is caught by its boot deadline, never by a
# flap. --timeout 600s: the bad node is unreachable for its tries × (boot +
# boot deadline), ~3 min (scenario 2), before osctl sees it back on B.
E2E_FLEET_HEALTHY_FOR=${E2E_FLEET_HEALTHY_FOR:-5s}
E2E_FLEET_TIMEOUT=${E2E_FLEET_TIMEOUT:-600s}
scenario_13() {
  local i events=$E2E_DIR/fleet/events t0 since w n start end
  local b0=()
  # The suite's node would take a core from the three.
  vm_stop "$E2E_VM"
  rm -rf "$E2E_DIR/fleet"
  mkdir -p "$E2E_DIR/fleet"
  # shellcheck disable=SC2034 # read by die
  E2E_CONSOLES=$(for i in "${FLEET[@]}"; do echo "$(fleet_vm "$i")/console.log"; done)
  # A failed check must never leave QEMU running.
  trap fleet_stop EXIT
  say "booting three nodes ($E2E_FLEET_MEMORY MiB each; APIs on $(fleet_nodes))"
  t0=$(date +%s.%N)
  fleet_start
  say "   all three run e2e-1 from A, marked, $(elapsed "$t0") s after the first QEMU started"
  fleet_watch "$events" &
  # shellcheck disable=SC2034 # read by fleet_stop
  FLEET_WATCH_PID=$!
  # Its first round is every node's baseline.
  for i in $(seq 50); do
    (($(cut -d' ' -f2 "$events" 2>/dev/null | sort -u | wc -l) == ${#FLEET[@]})) && break
    sleep 0.2
  done
  (($(cut -d' ' -f2 "$events" 2>/dev/null | sort -u | wc -l) == ${#FLEET[@]})) || die "the console watcher saw no console within 10 s"

  # a) The good release, one node at a time.
  for i in "${FLEET[@]}"; do b0[i]=$(fleet_boots "$i"); done
  since=$(date +%s.%N)
  say "a) osctl upgrade e2e-2 --nodes $(fleet_nodes) --healthy-for $E2E_FLEET_HEALTHY_FOR"
  fleet_upgrade e2e-2 "$E2E_DIR/fleet/upgrade-a.json"
  ((UPGRADE_RC == 0)) || die "osctl upgrade e2e-2 exited $UPGRADE_RC: $UPGRADE_SUMMARY $(tail -c 600 "$E2E_DIR/fleet/upgrade-a.json.err")"
  jq -e '(.halted | not) and (.nodes | length == 3)' <<<"$UPGRADE_SUMMARY" >/dev/null || die "upgrade a): summary $UPGRADE_SUMMARY"
  for i in "${FLEET[@]}"; do
    upgrade_node "$i" '.result == "done" and .slot == "B" and .version == "e2e-2"'
    fleet_is "$i" e2e-2 B >/dev/null || die "after the rollout: $(fleet_is "$i" e2e-2 B)"
    fleet_marked "$i" || die "node $i: slot B not marked successful after the rollout"
    (($(fleet_boots "$i") == b0[i] + 1)) || die "node $i: expected one reboot in the rollout, its console shows $(($(fleet_boots "$i") - b0[i])) boots"
  done
  sleep 1 # the watcher's last round
  w=$(fleet_windows "$events" "$since")
  say "   reboot windows (host s after the upgrade began: init's shutdown for reboot -> boot-ok):"
  while read -r n start end; do
    say "     node $n: $(awk -v a="$since" -v b="$start" 'BEGIN{printf "%.1f", b-a}') -> $(awk -v a="$since" -v b="$end" 'BEGIN{printf "%.1f", b-a}')"
  done <<<"$w"
  [ "$(cut -d' ' -f1 <<<"$w" | tr '\n' ' ')" = "1 2 3 " ] ||
    die "expected one reboot window per node, in the order given (1 2 3); the consoles show: $(tr '\n' ';' <<<"$w")"
  fleet_one_at_a_time "$w" >/dev/null || die "$(fleet_one_at_a_time "$w") (windows: $(tr '\n' ';' <<<"$w"))"
  local wall sum per
  wall=$(jq -r '.elapsed_s' <<<"$UPGRADE_SUMMARY")
  sum=$(jq -r '[.nodes[].elapsed_s] | add' <<<"$UPGRADE_SUMMARY")
  per=$(jq -r '[.nodes[].elapsed_s | . * 10 | round / 10 | tostring] | join(" + ")' <<<"$UPGRADE_SUMMARY")
  say "   three-node rollout: $(printf %.1f "$wall") s wall (host: $UPGRADE_SECS s); sum of the three single-node upgrades: $(printf %.1f "$sum") s ($per)"
  echo "three-node rollout ${wall} s wall; single-node upgrades $per = ${sum} s" >"$E2E_DIR/fleet/figures.txt"

  # b) The bad release halts after the first node, which rolls back alone.
  for i in "${FLEET[@]}"; do b0[i]=$(fleet_boots "$i"); done
  say "b) osctl upgrade e2e-agent-exits --timeout $E2E_FLEET_TIMEOUT"
  fleet_upgrade e2e-agent-exits "$E2E_DIR/fleet/upgrade-b.json"
  ((UPGRADE_RC == 1)) || die "osctl upgrade e2e-agent-exits exited $UPGRADE_RC, not 1 (halted): $UPGRADE_SUMMARY"
  jq -e '.halted' <<<"$UPGRADE_SUMMARY" >/dev/null || die "upgrade b) did not halt: $UPGRADE_SUMMARY"
  upgrade_node 1 '.result == "failed" and .failure.check == "rolled-back" and .rollback == null'
  upgrade_node 2 '.result == "untouched"'
  upgrade_node 3 '.result == "untouched"'
  fleet_is 1 e2e-2 B >/dev/null || die "node 1 after its rollback: $(fleet_is 1 e2e-2 B)"
  fleet_marked 1 || die "node 1: slot B not marked successful after its rollback"
  fleet_slot_is 1 A '(.bootable | not) and .priority == 0 and (.next_boot | not)'
  # By itself: each boot of the new slot (one per try) restarted the
  # crashing agent and ended at init's boot deadline (the agent never
  # marked it), then the old slot booted; osctl sent no rollback. These are
  # scenario 2's checks, which the default run makes here only.
  local bad
  bad=$(($(fleet_boots 1) - b0[1] - 1))
  agent_exits_rollback "$(console_since_boot "${b0[1]}" "$(fleet_vm 1)/console.log")" "$bad" "$E2E_TRIES"
  say "   node 1: failed (rolled-back) after $(jq -r '.nodes[0].elapsed_s | . * 10 | round / 10' <<<"$UPGRADE_SUMMARY") s: $bad boots of A, each ended by its boot deadline, then B; back on e2e-2 from B, A given up"
  for i in 2 3; do
    (($(fleet_boots "$i") == b0[i])) || die "node $i rebooted during the halted rollout ($(($(fleet_boots "$i") - b0[i])) boots)"
    fleet_is "$i" e2e-2 B >/dev/null || die "node $i after the halted rollout: $(fleet_is "$i" e2e-2 B)"
    # Nothing installed: A still holds e2e-1, bootable.
    fleet_slot_is "$i" A '.version == "e2e-1" and .bootable'
  done
  say "   nodes 2 and 3: untouched (no reboot, e2e-2 from B, A still e2e-1)"

  # c) The rerun with the good release resumes: nothing left to do.
  for i in "${FLEET[@]}"; do b0[i]=$(fleet_boots "$i"); done
  say "c) osctl upgrade e2e-2 again"
  fleet_upgrade e2e-2 "$E2E_DIR/fleet/upgrade-c.json"
  ((UPGRADE_RC == 0)) || die "the rerun of e2e-2 exited $UPGRADE_RC: $UPGRADE_SUMMARY"
  for i in "${FLEET[@]}"; do
    upgrade_node "$i" '.result == "skipped"'
    (($(fleet_boots "$i") == b0[i])) || die "node $i rebooted during the rerun"
  done
  say "   every node skipped, none rebooted ($UPGRADE_SECS s)"
  # E2E_FLEET_MEMORY was enough: no node's kernel ran out of memory.
  for i in "${FLEET[@]}"; do
    if grep -qE 'Out of memory|oom-kill' "$(fleet_vm "$i")/console.log"; then
      die "node $i ran out of memory with $E2E_FLEET_MEMORY MiB"
    fi
  done
}
