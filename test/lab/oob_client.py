#!/usr/bin/env python3
"""Sends a request with one TCP urgent byte (MSG_OOB) in the middle of its path.

A Linux receiver without SO_OOBINLINE takes the urgent byte out of the stream, so the server
reads PATH whole while the bytes on the wire carry an extra byte: what a sensor reading the
wire must not be fooled by. Prints the reply's status line.

  oob_client.py HOST PATH_BEFORE PATH_AFTER
"""
import socket
import sys
import time


def main():
    host, before, after = sys.argv[1:4]
    s = socket.create_connection((host, 80), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.send(f"GET {before}".encode())
    time.sleep(0.1)
    s.send(b"X", socket.MSG_OOB)
    time.sleep(0.1)
    s.send(f"{after} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n".encode())
    reply = b""
    try:
        while chunk := s.recv(65536):
            reply += chunk
    except socket.timeout:
        pass
    print(reply.split(b"\r\n", 1)[0].decode(errors="replace") if reply else "no reply")
    return 0


if __name__ == "__main__":
    sys.exit(main())
