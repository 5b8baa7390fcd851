"""A tiny stand-in for the Canary console, for benchmarks and fault tests (stdlib only).

    tiny_console.py --port P [--mode ok|slow|reset|hang] [--log FILE]

ok:    POST (registration) -> {"result":"success","canarytoken":{"url":"http://127.0.0.1:P/t"}};
       GET (a hit) -> 200. One line per request to --log.
slow:  the same replies, each after 10 s.
reset: accepts, reads, then closes with a TCP RST (SO_LINGER 0).
hang:  accepts and never answers.
Prints "ready" on stdout once listening.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="ok", choices=["ok", "slow", "reset", "hang"])
    ap.add_argument("--log")
    args = ap.parse_args()
    log_lock = threading.Lock()

    def log(line):
        if args.log:
            with log_lock, open(args.log, "a") as f:
                f.write(line + "\n")

    if args.mode in ("reset", "hang"):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", args.port))
        srv.listen(128)
        print("ready", flush=True)
        held = []
        while True:
            conn, _ = srv.accept()
            log(f"{args.mode} {time.time():.3f}")
            if args.mode == "hang":
                held.append(conn)
                continue
            conn.settimeout(0.5)
            try:
                conn.recv(65536)
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    delay = 10.0 if args.mode == "slow" else 0.0
    token_url = f"http://127.0.0.1:{args.port}/t"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _reply(self, body):
            if delay:
                time.sleep(delay)
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            log(f"register {time.time():.3f}")
            self._reply(json.dumps({"result": "success", "canarytoken": {"url": token_url}}))

        def do_GET(self):
            log(f"hit {time.time():.3f} {self.path[:200]}")
            self._reply("{}")

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
