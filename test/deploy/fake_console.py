#!/usr/bin/env python3
"""Fake Canary console for deployment tests (stdlib only): a token factory and a token.

  POST /factory  -> {"result":"success","canarytoken":{"url":"http://HOST:PORT/token/abc"}}
  GET  /token/*  -> 200 (a hit)
Every request is appended to --log as one JSON line (method, path, query, body). Prints
"ready" once listening on 127.0.0.1:PORT (run it inside the lab's inst namespace)."""
import argparse
import json
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def _record(self, body=b""):
            url = urllib.parse.urlsplit(self.path)
            with open(args.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"method": self.command, "path": url.path,
                                    "query": dict(urllib.parse.parse_qsl(url.query)),
                                    "body": body.decode("utf-8", "replace"),
                                    "user_agent": self.headers.get("User-Agent", "")}) + "\n")

        def _reply(self, code, payload):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._record(body)
            if self.path.startswith("/factory"):
                token = f"http://127.0.0.1:{args.port}/token/abc"
                self._reply(200, {"result": "success", "canarytoken": {"url": token}})
            else:
                self._reply(404, {"result": "error"})

        def do_GET(self):
            self._record()
            self._reply(200 if self.path.startswith("/token/") else 404, {})

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
