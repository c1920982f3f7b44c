#!/usr/bin/env bash
# Install dependencies, build, install, then serve a small demo backing
# chain with nbdkit (no qemu process) and show what clients see.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
{ autoreconf -fi && ./configure && make -j2 && make install; } > /tmp/qcow2map-build.log 2>&1 ||
  { tail -n 30 /tmp/qcow2map-build.log; exit 1; }

demo=$(mktemp -d /tmp/qcow2map-demo.XXXXXX)
cd "$demo"
echo "== demo chain in $demo: base.qcow2 <- top.qcow2 (64 MiB guest)"
qemu-img create -q -f qcow2 base.qcow2 64M
qemu-io -c 'write -P 0xaa 0 8M' -c 'write -P 0xbb 32M 4M' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 64M
qemu-io -c 'write -P 0xcc 1M 1M' -c 'write -z 32M 1M' top.qcow2 >/dev/null

set -x
nbdkit -U - qcow2map top.qcow2 --run 'nbdinfo --map "$uri"'
nbdkit -U - qcow2map top.qcow2 --run 'nbdcopy "$uri" guest.raw'
qemu-img compare -q -f raw guest.raw top.qcow2 && echo "guest.raw is identical to top.qcow2"
nbdkit -U - qcow2map top.qcow2 --filter=depth \
       --run 'nbdinfo --map "nbd+unix:///depth/1?socket=$unixsocket"'
nbdkit -U - qcow2map top.qcow2 --filter=depth \
       --run 'nbdcopy "nbd+unix:///depth.json?socket=$unixsocket" -'
