#!/usr/bin/python3
"""HEAD load generator for registry-bench (stand-in for wrk, whose HTTP parser waits
for a body after a HEAD response that carries Content-Length: wg/wrk issue #198).

usage: headload.py URL ACCEPT CONNECTIONS SECONDS
Keeps CONNECTIONS keep-alive HTTP/1.1 connections busy with one outstanding HEAD each
(no pipelining) for SECONDS, in one process (epoll).  Prints one line:
  requests=N non200=N errors=N seconds=S
A response is complete at the blank line after its headers; any byte after it that is
not the start of the next status line (i.e. a body sent for HEAD) counts as an error."""
import select
import socket
import sys
import time
from urllib.parse import urlsplit


def main():
    url, accept, conns, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    u = urlsplit(url)
    addr = (u.hostname, u.port or 80)
    req = ("HEAD %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: registry-bench-headload\r\n"
           "Accept: %s\r\n\r\n" % (u.path, u.netloc, accept)).encode()
    ep = select.epoll()
    socks, bufs = {}, {}

    def connect():
        s = socket.create_connection(addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        fd = s.fileno()
        socks[fd], bufs[fd] = s, b""
        ep.register(fd, select.EPOLLIN)
        s.send(req)

    def drop(fd):
        ep.unregister(fd)
        socks.pop(fd).close()
        bufs.pop(fd)

    for _ in range(conns):
        connect()
    n = non200 = errors = 0
    t0 = time.monotonic()
    deadline = t0 + secs
    ok_prefix = b"HTTP/1.1 200 "
    while True:
        events = ep.poll(0.05)
        if time.monotonic() >= deadline:
            break
        for fd, ev in events:
            s = socks[fd]
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if not d:
                errors += 1
                drop(fd)
                connect()
                continue
            buf = bufs[fd] + d
            while True:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    break
                n += 1
                if not buf.startswith(ok_prefix):
                    non200 += 1
                buf = buf[i + 4:]
                if buf and not buf.startswith(b"HTTP/"[:len(buf)]):
                    errors += 1     # body bytes after a HEAD response
                    buf = b""
                s.send(req)
            if fd in bufs:
                bufs[fd] = buf
    elapsed = time.monotonic() - t0
    print("requests=%d non200=%d errors=%d seconds=%.3f" % (n, non200, errors, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
