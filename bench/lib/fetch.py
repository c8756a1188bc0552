#!/usr/bin/python3
"""Minimal HTTP/1.1 GET client for the blob benchmark: discards the body with
splice(2) (socket -> pipe -> /dev/null), so the client does no user-space copy.

usage: fetch.py URL COUNT   -- GETs URL COUNT times on one keep-alive connection,
prints "<status> <body bytes>" per request, exits 1 on any non-200/short body."""
import os
import socket
import sys
from urllib.parse import urlsplit

CHUNK = 1 << 20


def main():
    url, count = sys.argv[1], int(sys.argv[2])
    u = urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    s = socket.create_connection((u.hostname, u.port or 80))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sfd = s.fileno()
    null = os.open("/dev/null", os.O_WRONLY)
    pr, pw = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(pw, 1031, CHUNK)  # F_SETPIPE_SZ
    except OSError:
        pass
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: registry-bench-fetch\r\n"
           "Accept: */*\r\n\r\n" % (path, u.netloc)).encode()
    rc = 0
    for _ in range(count):
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                print("EOF in headers", file=sys.stderr)
                return 1
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        clen = None
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            if k.strip().lower() == "content-length":
                clen = int(v.strip())
            elif k.strip().lower() == "transfer-encoding":
                print("chunked responses not supported", file=sys.stderr)
                return 1
        if clen is None:
            print("no Content-Length", file=sys.stderr)
            return 1
        got = len(rest)
        left = clen - got
        while left > 0:
            n = os.splice(sfd, pw, min(left, CHUNK))
            if n == 0:
                break
            got += n
            left -= n
            while n > 0:
                n -= os.splice(pr, null, n)
        print(status, got, flush=True)
        if status != 200 or got != clen:
            rc = 1
            break
    s.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
