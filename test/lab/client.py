#!/usr/bin/env python3
"""Raw TCP client for the lab: shapes how a request leaves the socket.

Reads a JSON object on stdin: {"pieces": [hex, ...]} and sends each piece with its own
send() call, sleeping --delay seconds between pieces. Then (unless --keep-open) shuts down
the write side and reads until the peer closes or --timeout seconds pass without data.
Writes the raw reply bytes to stdout. Exit 0 on success, 1 on a socket error (message on
stderr).

  --nodelay       TCP_NODELAY (each piece its own segment)
  --maxseg N      TCP_MAXSEG before connect (small segments)
  --mark M        SO_MARK before connect (needs CAP_NET_ADMIN), e.g. 0x4e46
"""
import argparse
import json
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--nodelay", action="store_true")
    ap.add_argument("--maxseg", type=int)
    ap.add_argument("--mark", type=lambda s: int(s, 0))
    ap.add_argument("--keep-open", action="store_true")
    a = ap.parse_args()
    pieces = [bytes.fromhex(p) for p in json.load(sys.stdin)["pieces"]]
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        if a.mark is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, a.mark)
        if a.maxseg:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, a.maxseg)
        if a.nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(a.timeout)
        s.connect((a.host, a.port))
        for i, p in enumerate(pieces):
            if i and a.delay:
                time.sleep(a.delay)
            s.sendall(p)
        if not a.keep_open:
            s.shutdown(socket.SHUT_WR)
        out = bytearray()
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        sys.stdout.buffer.write(bytes(out))
        return 0
    except OSError as e:
        print(f"client: {e}", file=sys.stderr)
        return 1
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
