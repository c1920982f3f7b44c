#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lock-bytes.sh [-c] FILE...: for each FILE, one line with the bytes that
# some process holds an OFD lock on (from /proc/locks), e.g. "100 201 203":
# qemu's image locks (see lib/image_lock.h).  With -c, each byte is followed
# by the number of holders ("100:2 201:2 203:2").
count=0
if [ "${1:-}" = -c ]; then count=1; shift; fi
for f in "$@"; do
    id=$(stat -c '%Hd %Ld %i' "$f" |
         { read -r ma mi ino; printf '%02x:%02x:%s' "$ma" "$mi" "$ino"; }) || exit 1
    awk -v id="$id" '$2 == "OFDLCK" && $6 == id { for (b = $7; b <= $8; b++) print b }' /proc/locks |
        sort -n | uniq -c |
        awk -v count="$count" '{ printf "%s%s", (NR > 1 ? " " : ""), (count ? $2 ":" $1 : $2) }'
    echo
done
