"""TCP forwarder from 127.0.0.1 in this network namespace into another one.

    nsfwd.py NETNS TARGET_HOST:PORT [TARGET_HOST:PORT ...]

For each target it listens on an ephemeral 127.0.0.1 port of the namespace it
was started in (the tests' own), then enters /run/netns/NETNS with setns(2);
every connection it accepts is relayed to the target from inside NETNS. It
prints one JSON line, {"TARGET": local_port, ...}, once it is listening, and
runs until killed. Listening sockets keep the namespace they were made in;
threads started after setns live in NETNS, so outgoing connections do too.
Cutting a node's veth link does not cut this path (it ends on the node's own
addresses), so the tests can watch both sides of a partition.
"""

import ctypes
import json
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(client, target):
    host, port = target.rsplit(":", 1)
    try:
        upstream = socket.create_connection((host, int(port)), timeout=5)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    t.start()
    pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def serve(listener, target):
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, target), daemon=True).start()


def main():
    netns, targets = sys.argv[1], sys.argv[2:]
    listeners = {}
    for t in targets:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        listeners[t] = s
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + netns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        sys.exit("nsfwd: setns(%s): %s" % (netns, os.strerror(err)))
    os.close(fd)
    threads = [threading.Thread(target=serve, args=(s, t), daemon=True) for t, s in listeners.items()]
    for th in threads:
        th.start()
    print(json.dumps({t: s.getsockname()[1] for t, s in listeners.items()}), flush=True)
    for th in threads:
        th.join()


if __name__ == "__main__":
    main()
