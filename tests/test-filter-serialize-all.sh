#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The qcow2map filter over a plugin whose thread model is
# serialize_all_requests (nbdkit's sh plugin without a thread_model
# method; Python plugins too): nbdkit lets one request of any
# connection reach it at a time, and the filter's prefetch threads
# (one per connection) must take turns with every connection's
# requests, not only their own connection's.  The script notes any
# pread that starts while another runs (a lock directory); a copy over
# two connections must see none, get qemu-img convert's bytes, and the
# prefetch threads must have taken part.
source "$(dirname "$0")/functions.sh"

# nbdcopy gives each connection 128 MiB of the guest in turn: data in
# two such pieces, so that both connections read at once.
mkimg img.qcow2 256M
head -c 12M /dev/urandom > data.raw
qio img.qcow2 'write -s data.raw 0 12M' 'write -s data.raw 128M 12M' \
    'write -c -P 0x55 250M 1M'
rm -f data.raw
qemu-img convert -f qcow2 -O raw img.qcow2 ref.raw

cat > plugin.sh <<'SH'
#!/bin/sh
# nbdkit sh plugin: img.qcow2 read with dd; overlapping preads noted.
# (--enable-sanitizers preloads libasan into nbdkit: not into dd.)
unset LD_PRELOAD
img=$TESTDIR/img.qcow2
case "$1" in
    get_size) stat -L -c %s "$img" ;;
    pread)
        mkdir "$TESTDIR/busy" 2> /dev/null || echo "$4 $3" >> "$TESTDIR/overlaps"
        sleep 0.05      # a slow source: overlaps get the time to show
        dd if="$img" iflag=skip_bytes,count_bytes skip="$4" count="$3" status=none
        rmdir "$TESTDIR/busy" 2> /dev/null || true ;;
    can_multi_conn) exit 0 ;;
    *) exit 2 ;;
esac
SH
chmod +x plugin.sh
export TESTDIR

[ "$(nbdkit sh ./plugin.sh --dump-plugin | sed -n 's/^thread_model=//p')" = serialize_all_requests ] ||
    hard_error "the sh plugin is not serialize_all_requests here"

nbdkit_v copy.err -U - -r -D qcow2map.io=1 sh ./plugin.sh --filter="$QCOW2MAP_FILTER" \
    --run 'nbdcopy --connections=2 "$uri" out.raw' ||
    { show_file "$NBDKIT_LAST_VLOG"; fail "the copy failed"; }
cmp -s out.raw ref.raw || fail "the copy's bytes differ from qemu-img convert's"
[ ! -e overlaps ] || fail "preads overlapped in the plugin: $(wc -l < overlaps) times, e.g. $(head -n 1 overlaps)"
conns=$(grep -c 'qcow2map: open readonly' "$NBDKIT_LAST_VLOG" || true)
prefetch=$(grep -c 'io: pread .*(prefetch)' "$NBDKIT_LAST_VLOG" || true)
[ "$conns" -ge 2 ] || fail "nbdcopy opened $conns connection(s), not 2"
[ "$prefetch" -gt 0 ] || fail "no request was made by a prefetch thread"
log "OK a copy over 2 connections of a serialize_all_requests plugin: qemu-img convert's bytes, $prefetch prefetch requests, no overlapping pread"
