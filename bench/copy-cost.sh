#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What a full copy costs under each server configuration, in numbers
# that a loaded machine changes little: nbdcopy of IMAGE to null:,
# ROUNDS times, the configurations taking turns; per configuration the
# median of
#   wall     seconds of the copy (load-dependent);
#   srv-cpu  CPU seconds of the server (all its threads, perf stat
#            task-clock);
#   cli-cpu  CPU seconds of nbdcopy;
#   ctxsw    context switches of the server;
#   futex    futex system calls of the server: a lock that a thread had
#            to wait for, or wake a waiter of (uncontended pthread
#            mutexes make none).
# With the machine shared, the server and nbdcopy share one scheduling
# group (autogroup), so the wall time of a copy is about their CPU time
# divided by the group's share: the CPU columns predict which
# configuration is faster when the load changes between rounds.
# Not part of `make check`; needs perf (Debian: linux-perf), nbdcopy.
#
#   bench/copy-cost.sh IMAGE [ROUNDS] [CONFIG...]
#     CONFIG: NAME=NBDKIT-OPTIONS:PLUGIN-PARAMETERS, or qemu-nbd;
#     default: auto=: parallel=:thread-model=parallel
#              serialize=:thread-model=serialize_requests qemu-nbd
#   bench/copy-cost.sh zlib.qcow2 5 t1=--threads=1: t16=--threads=16: qemu-nbd
#   NBDCOPY="--connections=1" bench/copy-cost.sh ...     nbdcopy options
#   SITES=1 bench/copy-cost.sh ...    also the server's futex call sites
#     (one more copy per configuration, under perf record)
set -euo pipefail
image=$(realpath "$1")
rounds=${2:-5}
shift $(($# < 2 ? $# : 2))
[ $# -gt 0 ] || set -- auto=: parallel=:thread-model=parallel \
                       serialize=:thread-model=serialize_requests qemu-nbd
source "$(dirname "$0")/common.sh"
bench_workdir qcow2map-copy-cost
sock=$work/sock pidf=$work/pid
# The futex tracepoint needs tracefs (absent in a bare chroot).
[ -d /sys/kernel/tracing/events ] ||
    mount -t tracefs nodev /sys/kernel/tracing 2> /dev/null || true
events=task-clock,context-switches,syscalls:sys_enter_futex
cat "$image" > /dev/null             # page cache warm

# serve CONFIG PERF-COMMAND... : the server in the foreground under perf
serve() {
    local name=${1%%=*} rest=${1#*=} opts params
    shift
    if [ "$name" = qemu-nbd ]; then
        "$@" qemu-nbd -r -t -f qcow2 -e 16 --pid-file="$pidf" --socket="$sock" "$image"
    else
        opts=${rest%%:*} params=${rest#*:}
        # shellcheck disable=SC2086
        "$@" nbdkit -f -U "$sock" -P "$pidf" $opts "$plugin" file="$image" $params
    fi
}
wait_socket() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ -S "$sock" ] && [ -s "$pidf" ] && return 0
        sleep 0.05
    done
    echo "server did not start" >&2; exit 1
}
stop() { kill "$(cat "$pidf")"; wait "$1" || true; rm -f "$sock" "$pidf"; }
stat_of() { awk -F, -v e="$2" '$3 == e { print $1 }' "$1"; }

declare -A rows
for ((r = 0; r < rounds; r++)); do
    for c in "$@"; do
        serve "$c" perf stat -x, -o "$work/srv" -e "$events" -- & pp=$!
        wait_socket
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        perf stat -x, -o "$work/cli" -e task-clock -- \
            nbdcopy ${NBDCOPY:-} "nbd+unix:///?socket=$sock" null:
        t1=$(date +%s.%N)
        stop $pp
        rows[$c]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $(
            stat_of "$work/srv" task-clock) $(stat_of "$work/cli" task-clock) $(
            stat_of "$work/srv" context-switches) $(
            stat_of "$work/srv" syscalls:sys_enter_futex)"$'\n'
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk -v k="$2" 'NF { print $k }' <<< "$1" | median; }
echo "# $(basename "$image"), nbdcopy ${NBDCOPY:-(defaults)}, $rounds rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nbdkit --version)"
printf '%-12s %8s %8s %8s %8s %8s\n' config wall srv-cpu cli-cpu ctxsw futex
for c in "$@"; do
    printf '%-12s %8.2f %8.3f %8.3f %8d %8d\n' "${c%%=*}" "$(col "${rows[$c]}" 1)" \
           "$(awk -v x="$(col "${rows[$c]}" 2)" 'BEGIN { print x / 1000 }')" \
           "$(awk -v x="$(col "${rows[$c]}" 3)" 'BEGIN { print x / 1000 }')" \
           "$(col "${rows[$c]}" 4)" "$(col "${rows[$c]}" 5)"
done

[ "${SITES:-0}" = 1 ] || exit 0
# Where the futex calls come from: the first 2 frames above the pthread
# lock or condition call (with their library), counted.  nbdkit's own frames have no symbols.
for c in "$@"; do
    serve "$c" perf record -q -e syscalls:sys_enter_futex --call-graph dwarf \
          -o "$work/perf.data" -- & pp=$!
    wait_socket
    # shellcheck disable=SC2086
    nbdcopy ${NBDCOPY:-} "nbd+unix:///?socket=$sock" null:
    stop $pp
    echo "# futex call sites of the server, ${c%%=*}"
    perf script -i "$work/perf.data" -F ip,sym,dso 2> /dev/null |
        awk 'NF == 0 { if (s != "") n[s]++; s = ""; d = 0; next }
             d == 0 && $2 ~ /futex|lll_|syscall_cancel|_optimized|pthread_(mutex|cond)|usercnt/ { next }
             { d++; if (d <= 2) { sub(/.*\//, "", $3); gsub(/[()]/, "", $3); s = s (d > 1 ? " < " : "") $2 " " $3 } }
             END { for (k in n) print n[k], k }' | sort -rn | head -6
done
