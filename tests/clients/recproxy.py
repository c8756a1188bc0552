#!/usr/bin/python3
"""Recording HTTP proxy: see exactly what a registry client sends and gets.

    recproxy.py LISTEN_PORT UPSTREAM_PORT LOG.jsonl

Listens on 127.0.0.1:LISTEN_PORT and forwards every request to
127.0.0.1:UPSTREAM_PORT, appending one JSON line per exchange to LOG.jsonl
(method, path, request headers in order incl. repeated ones, body length,
whether the body was chunked, status, response headers).  Point a client at
LISTEN_PORT instead of the registry.  The Host header is passed through, so
absolute Location headers the registry builds from it point back at the proxy.
Bodies are buffered (use small images) and request bodies are de-chunked before
forwarding, so this is a debugging aid, not part of the test suite.

    python3 recproxy.py 5066 5000 /tmp/log.jsonl &
    ctr images pull --plain-http 127.0.0.1:5066/test/img:latest
    python3 recproxy.py --show /tmp/log.jsonl
"""

import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"transfer-encoding", "content-length", "connection", "host", "keep-alive"}
_lock = threading.Lock()


def make_handler(upstream_port, log_path):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts = []
                while True:
                    n = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if n == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts), True
                    parts.append(self.rfile.read(n))
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return (self.rfile.read(n) if n else b""), False

        def _any(self):
            body, chunked = self._read_body()
            c = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=300)
            c.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            c.putheader("Host", self.headers.get("Host", "127.0.0.1"))
            for k, v in self.headers.items():
                if k.lower() not in HOP:
                    c.putheader(k, v)
            if body or self.command in ("PUT", "POST", "PATCH"):
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            data = r.read()
            rec = {"req": "%s %s" % (self.command, self.path),
                   "reqh": list(self.headers.items()), "bodylen": len(body),
                   "chunked": chunked, "status": r.status, "resph": r.getheaders()}
            with _lock, open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            if self.command == "HEAD":
                self.send_header("Content-Length", r.getheader("Content-Length", "0"))
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

    return Handler


def show(log_path):
    skip = {"user-agent", "host", "accept-encoding"}
    for line in open(log_path):
        d = json.loads(line)
        print(d["req"], "->", d["status"], "body=%d%s" % (d["bodylen"], " (chunked)" if d.get("chunked") else ""))
        print("    >", [(k, v) for k, v in d["reqh"] if k.lower() not in skip])
        print("    <", [(k, v) for k, v in d["resph"]])


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--show":
        show(sys.argv[2])
        return
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    listen, upstream, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    ThreadingHTTPServer(("127.0.0.1", listen), make_handler(upstream, log_path)).serve_forever()


if __name__ == "__main__":
    main()
