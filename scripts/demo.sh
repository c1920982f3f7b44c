#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install dependencies, build, install, then serve a small demo backing
# chain with nbdkit (no qemu process) and show what clients see.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
{ autoreconf -fi && ./configure && make -j2 && make install; } > /tmp/qcow2map-build.log 2>&1 ||
  { tail -n 30 /tmp/qcow2map-build.log; exit 1; }

srcdir=$(pwd)
demo=$(mktemp -d /tmp/qcow2map-demo.XXXXXX)
cd "$demo"
echo "== demo chain in $demo: base.qcow2 <- top.qcow2 (64 MiB guest)"
"$srcdir/scripts/demo-chain.sh"

set -x
nbdkit -U - qcow2map top.qcow2 --run 'nbdinfo --map "$uri"'
nbdkit -U - qcow2map top.qcow2 --run 'nbdcopy "$uri" guest.raw'
qemu-img compare -q -f raw guest.raw top.qcow2 && echo "guest.raw is identical to top.qcow2"
nbdkit -U - qcow2map top.qcow2 --filter=depth \
       --run 'nbdinfo --map "nbd+unix:///depth/1?socket=$unixsocket"'
nbdkit -U - qcow2map top.qcow2 --filter=depth \
       --run 'nbdcopy "nbd+unix:///depth.json?socket=$unixsocket" -'
