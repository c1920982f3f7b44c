#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Client faults never take the server down.  ONE long-running nbdkit (the
# plugin under the depth filter) serves a compressed chain base <- top; 45
# client faults are thrown at it, and after each one the server must still
# be running and serve the guest disk with the bytes of qemu-img convert
# (and it advertises multi-conn whatever the thread model).
# Faults, in an order and at moments drawn from a fixed seed:
#  - kill -9 of an nbdcopy of the guest disk at a random moment;
#  - nbdcopy of layer/2, which fails with EIO (corrupt compressed cluster
#    of base.qcow2, hidden in the guest disk by top.qcow2) and so exits at
#    its first read error with requests in flight;
#  - a libnbd client (client-hangup.py) that sends a read that fails (past
#    the end of the export: EINVAL; or in layer/2's corrupt cluster: EIO)
#    and a burst of large reads, and hangs up as soon as the failed reply
#    arrives.
# nbdkit 1.32.5 aborts on the last two under the parallel thread model
# ("raw_send_socket: Assertion `sock >= 0' failed"); to see this test catch
# it:  QCOW2MAP_TEST_THREAD_MODEL=parallel make check TESTS=test-client-kill.sh
testsdir=$(cd "$(dirname "$0")" && pwd)
source "$testsdir/functions.sh"
source "$testsdir/depth-functions.sh"

thread_model=${QCOW2MAP_TEST_THREAD_MODEL:-auto}
RANDOM=20261123                  # fixed seed: same faults, same order

py=$(nbd_python)

# --- the chain: 8 MiB of half random, half compressible bytes, compressed.
head -c 4M /dev/urandom > src.raw
awk 'BEGIN { for (i = 0; i < 80000; i++) printf "block %08d of the compressible half\n", i }' |
    head -c 4M >> src.raw
qemu-img convert -q -c -f raw -O qcow2 src.raw base.qcow2
bad=$((5 << 20))                  # guest offset of a corrupted (compressed) cluster
read -r host nbytes <<< "$(compressed_cluster base.qcow2 $bad)"
head -c 16 /dev/zero | tr '\0' '\377' | dd of=base.qcow2 bs=1 seek="$host" conv=notrunc status=none
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 8M
qio top.qcow2 "write -P 0x5a $bad 64k" 'write -P 0x6b 6M 128k'
qemu-img convert -f qcow2 -O raw top.qcow2 expected.raw
want=$(md5sum < expected.raw)
if qemu-io -r -f qcow2 -c "read $bad 4k" base.qcow2 > /dev/null 2>&1; then
    hard_error "qemu can still read the corrupted cluster of base.qcow2"
fi

# --- the thread model nbdkit will use
model=$(nbdkit --filter="$FILTER" --dump-plugin "$PLUGIN" file=top.qcow2 thread-model="$thread_model" |
        sed -n 's/^thread_model=//p')
log "thread-model=$thread_model: nbdkit $(nbdkit --version | cut -d' ' -f2) uses $model"
if [ "$thread_model" = auto ] &&
   printf '%s\n1.33.10\n' "$(nbdkit --version | cut -d' ' -f2)" | sort -V -C; then
    [ "$model" = serialize_requests ] ||
        fail "nbdkit < 1.33.10 must get the serialize_requests thread model, got $model"
fi

# --- the server
sock=$_SOCKDIR/nbdkit.sock pidf=$_SOCKDIR/nbdkit.pid errf=$TESTDIR/nbdkit.stderr
nbdkit -f -U "$sock" -P "$pidf" --filter="$FILTER" "$PLUGIN" file=top.qcow2 \
       thread-model="$thread_model" 2> "$errf" &
for ((i = 0; i < 500; i++)); do [ -s "$pidf" ] && [ -S "$sock" ] && break; sleep 0.02; done
[ -s "$pidf" ] || { show_file "$errf"; fail "nbdkit did not start"; }
server=$(cat "$pidf")
guest="nbd+unix:///?socket=$sock"
layer2="nbd+unix:///layer/2?socket=$sock"

# Serialized or not, multi-conn stays advertised: nbdcopy keeps its
# parallelism over several connections.
[ "$(nbdinfo --json "$guest" | jq '.exports[0].can_multi_conn')" = true ] ||
    fail "the server does not advertise multi-conn"

# server_ok N WHAT : the server survived fault N and serves the right bytes.
server_ok() {
    if ! _alive "$server" || grep -Eqi 'assertion|abort|segmentation|sanitizer' "$errf"; then
        show_file "$errf" 40
        fail "fault #$1 ($2): nbdkit died"
    fi
    local got
    got=$(nbdcopy "$guest" - | md5sum) || { show_file "$errf" 40; fail "fault #$1 ($2): copy failed afterwards"; }
    [ "$got" = "$want" ] || fail "fault #$1 ($2): guest bytes differ from qemu-img convert afterwards"
}

faults=45 kills=0 eio_copies=0 hangups=0
for ((n = 1; n <= faults; n++)); do
    case $((RANDOM % 3)) in
    0)  ms=$((RANDOM % 150))
        nbdcopy --requests=64 "$guest" null: 2>/dev/null & pid=$!
        sleep "$(printf '0.%03d' "$ms")"
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        what="nbdcopy killed after ${ms} ms"; kills=$((kills + 1)) ;;
    1)  if nbdcopy "$layer2" null: 2> nbdcopy.err; then
            fail "fault #$n: nbdcopy of layer/2 succeeded, it must fail with EIO"
        fi
        grep -q 'Input/output error' nbdcopy.err || { show_file nbdcopy.err; fail "fault #$n: nbdcopy did not fail with EIO"; }
        what="nbdcopy of layer/2 failed (EIO)"; eio_copies=$((eio_copies + 1)) ;;
    2)  if ((RANDOM % 2)); then uri=$layer2 at=$bad kind=EIO; else uri=$guest at=-1 kind="past EOF"; fi
        out=$("$py" "$testsdir/client-hangup.py" "$uri" "$RANDOM" "$at") ||
            fail "fault #$n: hang-up client failed: $out"
        what="client hung up after a failed read ($kind), $out"; hangups=$((hangups + 1)) ;;
    esac
    server_ok "$n" "$what"
    log "fault #$n: $what: server alive, guest bytes identical"
done

log "OK $faults faults ($kills nbdcopy killed, $eio_copies nbdcopy failing on EIO, $hangups clients hanging up after a failed read); one server ($model, multi-conn) survived them all"
