#!/usr/bin/env python3
"""A mock Canary console (and IMDS) for the alerting tests. Standard library only.

  mock_console.py --record-dir DIR [--port N] [--port-file FILE] [--mode MODE]
                  [--tls-cert PEM --tls-key PEM]

Serves on 127.0.0.1 only.
  POST /factory...                  mints a token: {"result":"success","canarytoken":{"url":...}}
  GET  /t/<n>/...?<query>           records a hit
  PUT  /latest/api/token            IMDSv2 token; GET /latest/meta-data/{instance-id,
                                    placement/availability-zone} need it
  POST /_mode?m=MODE                ok 500 hang reset redirect nonjson nourl huge slow badurl
Records (one JSON object a line, survive restarts): DIR/regs.jsonl, DIR/hits.jsonl,
DIR/imds.jsonl. Modes apply to the factory and token endpoints, not to IMDS or control.
"""
import argparse
import json
import os
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IMDS_TOKEN = "mock-imds-token-value"
lock = threading.Lock()
state = {"mode": "ok"}


def record(name, obj):
    with lock:
        with open(os.path.join(args.record_dir, name), "a") as f:
            f.write(json.dumps(obj) + "\n")


def count_lines(name):
    try:
        with open(os.path.join(args.record_dir, name)) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body=b"", ctype="text/plain", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def apply_mode(self):
        """True if the mode produced the reply (or no reply)."""
        mode = state["mode"]
        if mode == "ok" or mode == "nonjson" or mode == "nourl" or mode == "badurl":
            return False
        if mode == "500":
            self.reply(500, b"oops")
        elif mode == "hang":
            time.sleep(60)
        elif mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
        elif mode == "redirect":
            self.reply(302, b"", headers=[("Location", self.path)])
        elif mode == "huge":
            self.reply(200, b"x" * (1 << 20))
        elif mode == "slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(1)
        return True

    def do_PUT(self):
        if self.path == "/latest/api/token":
            self.body()
            record("imds.jsonl", {"method": "PUT", "path": self.path,
                                  "ua": self.headers.get("User-Agent"),
                                  "ttl": self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")})
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400)
            return self.reply(200, IMDS_TOKEN.encode())
        self.reply(404)

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/_mode":
            self.body()
            state["mode"] = urllib.parse.parse_qs(u.query)["m"][0]
            return self.reply(200, b"ok")
        if u.path.startswith("/factory"):
            data = self.body()
            if self.apply_mode():
                return
            form = urllib.parse.parse_qs(data.decode(), keep_blank_values=True)
            n = count_lines("regs.jsonl")
            record("regs.jsonl", {"path": u.path, "form": {k: v[0] for k, v in form.items()},
                                  "ua": self.headers.get("User-Agent"),
                                  "ctype": self.headers.get("Content-Type")})
            mode = state["mode"]
            scheme = "https" if args.tls_cert else "http"
            url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/t/{n}/post.jsp"
            if mode == "nonjson":
                return self.reply(200, b"<html>hello</html>", "text/html")
            if mode == "nourl":
                return self.reply(200, json.dumps({"result": "success", "canarytoken": {}}).encode(),
                                  "application/json")
            if mode == "badurl":
                url = "ftp://127.0.0.1/x"
            return self.reply(200, json.dumps({"result": "success", "canarytoken": {
                "url": url, "kind": "http"}}).encode(), "application/json")
        self.reply(404)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/latest/meta-data/instance-id" or \
                u.path == "/latest/meta-data/placement/availability-zone":
            record("imds.jsonl", {"method": "GET", "path": u.path,
                                  "ua": self.headers.get("User-Agent"),
                                  "token_ok": self.headers.get("X-aws-ec2-metadata-token") == IMDS_TOKEN})
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self.reply(401)
            return self.reply(200, b"i-0mock1234" if u.path.endswith("instance-id") else b"us-east-1a")
        if u.path.startswith("/t/"):
            if self.apply_mode():
                return
            q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
            record("hits.jsonl", {"path": u.path, "raw_query": u.query,
                                  "query": {k: v[0] for k, v in q.items()},
                                  "ua": self.headers.get("User-Agent"), "received": time.time()})
            return self.reply(200, b"GIF89a", "image/gif")
        self.reply(404)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # clients that reset or abort are part of the tests


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--record-dir", required=True)
    p.add_argument("--mode", default="ok")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args()
    state["mode"] = args.mode
    srv = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
