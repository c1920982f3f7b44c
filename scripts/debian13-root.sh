#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A Debian 13 (trixie) root in a directory, to build and test qcow2map on
# Debian 13 from a Debian 12 machine (as root).
#
#   scripts/debian13-root.sh create DIR      make DIR (or keep it, if this
#                                            same recipe made it)
#   scripts/debian13-root.sh run DIR [CMD...]  run CMD (default: a shell)
#                                            in DIR, in this checkout
#   scripts/debian13-root.sh recipe          print the recipe's stamp
#
# create: debootstrap --variant=minbase from the mirror this machine's apt
# uses, then this checkout's scripts/install-deps.sh run inside.  DIR ends
# with a stamp, DIR/.qcow2map-root, naming the recipe (hashes of this
# script and of install-deps.sh, the suite, the mirror): create reuses DIR
# only if the stamp is this recipe's, and otherwise makes it again.
#
# run: the command runs chrooted in DIR, in new mount and PID namespaces:
# /proc (fresh), /sys, /dev (with /dev/pts, /dev/shm), a tmpfs /tmp, and
# this checkout at its own path are mounted only there.  When the command
# ends, or this script is killed, every process left inside is killed and
# the kernel drops the mounts with the namespace: nothing stays mounted
# on the machine, whatever happens.  The working directory inside is the
# current one if it is in the checkout, else the checkout's top.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
suite=trixie
stamp_name=.qcow2map-root

die() { echo "debian13-root.sh: $*" >&2; exit 1; }

# The Debian mirror of this machine's apt sources (deb822 .sources files,
# then one-line sources.list), security archives skipped.
apt_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        # deb [options] URI suite components
        uri=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "$f" |
                  grep -v security | head -n1)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    die "no Debian mirror found in /etc/apt/sources.list{,.d/*}"
}

recipe() {
    echo "suite=$suite mirror=$(apt_mirror)" \
         "debian13-root.sh=$(sha256sum < "$top/scripts/debian13-root.sh" | cut -c1-16)" \
         "install-deps.sh=$(sha256sum < "$top/scripts/install-deps.sh" | cut -c1-16)"
}

# Fail if anything is mounted at or under $1 in this mount namespace.
check_unmounted() {
    local dir
    dir=$(realpath -m "$1")
    if awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' \
           /proc/self/mountinfo; then
        die "$dir has mounts under it: unmount them first"
    fi
}

create() {
    local dir=$1 want
    want=$(recipe)
    if [ -f "$dir/$stamp_name" ] && [ "$(cat "$dir/$stamp_name")" = "$want" ]; then
        echo "debian13-root.sh: $dir is up to date ($want)"
        return
    fi
    # Only a directory this script made (stamped, even half made) is
    # removed; anything else is the user's.
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/$stamp_name" ]; then
        die "$dir exists and was not made by this script: give another directory"
    fi
    check_unmounted "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "incomplete" > "$dir/$stamp_name"
    debootstrap --variant=minbase "$suite" "$dir" "$(apt_mirror)"
    # run binds the machine's resolv.conf over this file, for apt.
    rm -f "$dir/etc/resolv.conf" && : > "$dir/etc/resolv.conf"
    # Packages must not start their daemons (nginx) in the root.
    printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
    chmod +x "$dir/usr/sbin/policy-rc.d"
    run "$dir" scripts/install-deps.sh
    echo "$want" > "$dir/$stamp_name"
    echo "debian13-root.sh: $dir is ready ($want)"
}

run() {
    local dir cwd
    dir=$(realpath "$1"); shift
    [ -x "$dir/usr/bin/env" ] && [ -f "$dir/$stamp_name" ] ||
        die "$dir is not a root made by 'debian13-root.sh create'"
    case "$PWD/" in "$top"/*) cwd=$PWD ;; *) cwd=$top ;; esac
    [ $# -gt 0 ] || set -- bash -l
    # PID 1 of the new PID namespace is the inner bash: it mounts, runs the
    # command chrooted as its child (reaping orphans meanwhile) and exits
    # with its status; the kernel then kills whatever is left inside.
    # unshare ignores SIGTERM and SIGINT, so this script runs it in the
    # background and waits for it and, if it is itself stopped by a
    # signal, kills unshare, whose --kill-child then kills that PID 1 and
    # so all of the namespace.  (env: a background job of a script starts
    # with SIGINT and SIGQUIT ignored; the command inside must not, or
    # Ctrl-C would not reach it.)
    env --default-signal=INT,QUIT unshare --mount --propagation private --pid --kill-child bash -c '
        set -e
        r=$1 top=$2 cwd=$3; shift 3
        mount -t proc proc "$r/proc"
        mount --rbind /sys "$r/sys"
        mount --rbind /dev "$r/dev"
        mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
        mkdir -p "$r$top"
        mount --bind "$top" "$r$top"
        if [ -f /etc/resolv.conf ] && [ -f "$r/etc/resolv.conf" ]; then
            mount --bind -o ro /etc/resolv.conf "$r/etc/resolv.conf"
        fi
        set +e
        chroot "$r" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$cwd" "$@"
        exit $?
    ' root13 "$dir" "$top" "$cwd" "$@" <&0 &
    local ns=$! rc=0
    trap 'kill -KILL "$ns" 2> /dev/null; exit 143' TERM
    trap 'kill -KILL "$ns" 2> /dev/null; exit 130' INT
    trap 'kill -KILL "$ns" 2> /dev/null; exit 129' HUP
    wait "$ns" || rc=$?
    trap - TERM INT HUP
    return "$rc"
}

case "${1:-}" in
    create) [ $# -eq 2 ] || die "usage: $0 create DIR"; create "$2" ;;
    run)    [ $# -ge 2 ] || die "usage: $0 run DIR [CMD...]"; shift; run "$@" ;;
    recipe) recipe ;;
    *)      die "usage: $0 create DIR | run DIR [CMD...] | recipe" ;;
esac
