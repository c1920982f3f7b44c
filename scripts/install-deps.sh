#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install what qcow2map needs to build and test, as root, on Debian 12
# (bookworm) or 13 (trixie); the release is read from /etc/os-release.
# On any other system, say in one line what is needed and fail.
set -euo pipefail

# Needed on every release, under the same names.
common=(
    build-essential autoconf automake libtool pkg-config perl
    nbdkit nbdkit-plugin-dev libnbd-bin libnbd-dev python3-libnbd
    qemu-utils zlib1g-dev libzstd-dev libdeflate-dev nettle-dev jq
    util-linux-extra            # fincore (test-open-cold-cache)
    procps                      # pgrep (not in a minimal root)
    nginx-light curl            # an HTTP server for nbdkit's curl plugin
    clang                       # the fuzzer (libFuzzer)
)

id='' version=''
if [ -r /etc/os-release ]; then
    id=$(. /etc/os-release; echo "${ID:-}")
    version=$(. /etc/os-release; echo "${VERSION_ID:-}")
fi
case "$id $version" in
    "debian 12")
        # libFuzzer and the sanitizer runtimes of clang 14; debootstrap
        # makes the Debian 13 root of .ci/run (scripts/debian13-root.sh).
        release=(libclang-rt-14-dev debootstrap) ;;
    "debian 13")
        release=(libclang-rt-19-dev) ;;
    *)
        echo "install-deps.sh: only Debian 12 and 13 are known (this is '$id $version'); install by hand: a C compiler, autoconf, automake, libtool, pkg-config, nbdkit >= 1.32 and its plugin headers, libnbd and its tools and Python bindings, qemu-img, zlib, libzstd, libdeflate, nettle, jq, fincore, pgrep, nginx, curl, clang with libFuzzer" >&2
        exit 1 ;;
esac

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${common[@]}" "${release[@]}"
