# SPDX-License-Identifier: BSD-3-Clause
# A test client (tests/test-cluster-cache.sh): reads small ranges of an
# NBD export and compares each with the expected raw file.
#   python3 nbd-readers.py URI EXPECTED SEED COUNT MAXLEN MODE
# MODE "random": random offsets; "sweep": front to back in MAXLEN steps
# (readers started together then collide on the same clusters).  Keeps
# 4 requests in flight.  Exits 1 at the first wrong byte.
import random
import sys

import nbd

uri, expected = sys.argv[1], sys.argv[2]
seed, count, maxlen, mode = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
data = open(expected, "rb").read()
h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
if size != len(data):
    sys.exit("size %d, expected %d" % (size, len(data)))
rnd = random.Random(seed)
pos = 0
inflight = []


def check(buf, off, ln):
    got = buf.to_bytearray()
    if got != data[off:off + ln]:
        bad = next(i for i in range(ln) if got[i] != data[off + i])
        sys.exit("seed %d: read %d bytes at %d: wrong byte at offset %d"
                 % (seed, ln, off, off + bad))


for i in range(count):
    if mode == "sweep":
        off, ln = pos, maxlen
        pos = (pos + maxlen) % size
    else:
        off, ln = rnd.randrange(size), rnd.randint(1, maxlen)
    ln = min(ln, size - off)
    buf = nbd.Buffer(ln)
    inflight.append((h.aio_pread(buf, off), buf, off, ln))
    while len(inflight) >= 4 or (i == count - 1 and inflight):
        cookie, b, o, l = inflight[0]
        while not h.aio_command_completed(cookie):
            h.poll(-1)
        check(b, o, l)
        inflight.pop(0)
h.shutdown()
