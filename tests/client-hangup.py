# SPDX-License-Identifier: BSD-3-Clause
# A client that hangs up with requests in flight, right after one of its
# reads has failed: the pattern that aborts nbdkit 1.32's server
# ("raw_send_socket: Assertion 'sock >= 0' failed") when one connection
# has several requests in flight (thread model parallel).
#
#   python3 client-hangup.py URI SEED BAD_OFFSET
#
# Sends, on one connection and without waiting: one read that fails
# (at BAD_OFFSET if it is >= 0, where the export fails with EIO, else past
# the end of the export, which nbdkit refuses with EINVAL), then a burst of
# large reads of the whole export.  As soon as the failed read's reply
# arrives, it exits without NBD_CMD_DISC and without waiting for the others.
# Prints "failed-read-seen N-in-flight" on success.
import os
import random
import sys

import nbd

uri, seed, bad_offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)

h = nbd.NBD()
h.set_strict_mode(0)            # let past-EOF requests reach the server
h.connect_uri(uri)
size = h.get_size()

if bad_offset >= 0:
    first = h.aio_pread(nbd.Buffer(4096), bad_offset)
else:
    first = h.aio_pread(nbd.Buffer(4096), size + 4096 * rng.randrange(1, 16))

# A burst of big reads so that several server threads are busy on this
# connection when the failed reply has gone out and the client goes away.
chunk = 1 << 20
for _ in range(rng.randrange(8, 24)):
    n = min(size, chunk * rng.randrange(1, 4))
    off = rng.randrange(0, size - n + 1) & ~511
    h.aio_pread(nbd.Buffer(n), off)

while True:
    try:
        if h.aio_command_completed(first):
            sys.exit("the read that should fail succeeded")
    except nbd.Error:
        break                   # the failed read's reply: hang up now
    h.poll(-1)

print("failed-read-seen %d-in-flight" % h.aio_in_flight())
sys.stdout.flush()
os._exit(0)                     # close the socket, no disconnect, no wait
