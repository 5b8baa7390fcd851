#!/usr/bin/env python3
"""Mock EC2 instance metadata service for the namespace lab (stdlib only).

Binds 169.254.169.254:PORT and [fd00:ec2::254]:PORT (run it inside the lab's imds namespace).
Replies are deterministic (fixed Date and Server headers, fixed token) so that a reply seen
through the queue can be compared byte for byte with one seen without it.

  PUT /latest/api/token  with X-aws-ec2-metadata-token-ttl-seconds -> the token (400 without)
  GET with a wrong X-aws-ec2-metadata-token -> 401; without the header -> served (IMDSv1)
  known paths -> 200; anything else -> 404. HTTP/1.1 keep-alive; request bodies are read and
  discarded by Content-Length. Prints "ready" on stdout once listening.
  --log FILE appends one JSON line per request (method, path, headers, peer) for tests.
"""
import argparse
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "AQAEAmockIMDSv2tokenForTheNfqApeeperLab0000000000=="
INSTANCE_ID = "i-0123456789abcdef0"
AZ = "eu-west-1a"
ROLE = "nfq-lab-role"
CREDS = {
    "Code": "Success",
    "LastUpdated": "2024-01-01T00:00:00Z",
    "Type": "AWS-HMAC",
    "AccessKeyId": "ASIAMOCKMOCKMOCKMOCK",
    "SecretAccessKey": "mockSecretAccessKey/mockmockmockmockmockmock",
    "Token": "mockSessionToken",
    "Expiration": "2099-01-01T00:00:00Z",
}
IDENTITY = {
    "accountId": "123456789012",
    "architecture": "x86_64",
    "availabilityZone": AZ,
    "imageId": "ami-0123456789abcdef0",
    "instanceId": INSTANCE_ID,
    "instanceType": "t3.micro",
    "privateIp": "10.0.0.10",
    "region": "eu-west-1",
    "version": "2017-09-30",
}
PATHS = {
    "/": "latest\n",
    "/latest/": "api/\ndynamic/\nmeta-data/\n",
    "/latest/meta-data/": "ami-id\nhostname\niam/\ninstance-id\nlocal-ipv4\nplacement/\n",
    "/latest/meta-data/ami-id": "ami-0123456789abcdef0",
    "/latest/meta-data/hostname": "ip-10-0-0-10.eu-west-1.compute.internal",
    "/latest/meta-data/local-ipv4": "10.0.0.10",
    "/latest/meta-data/instance-id": INSTANCE_ID,
    "/latest/meta-data/placement/": "availability-zone\nregion\n",
    "/latest/meta-data/placement/availability-zone": AZ,
    "/latest/meta-data/placement/region": "eu-west-1",
    "/latest/meta-data/iam/": "info\nsecurity-credentials/\n",
    "/latest/meta-data/iam/security-credentials/": ROLE,
    "/latest/meta-data/iam/security-credentials/" + ROLE: json.dumps(CREDS, indent=2),
    "/latest/dynamic/": "instance-identity/\n",
    "/latest/dynamic/instance-identity/": "document\n",
    "/latest/dynamic/instance-identity/document": json.dumps(IDENTITY, indent=2),
}
FIXED_DATE = "Mon, 01 Jan 2024 00:00:00 GMT"

_log_lock = threading.Lock()
_log_file = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"
    sys_version = ""

    def date_time_string(self, timestamp=None):  # deterministic replies
        return FIXED_DATE

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # quiet; --log records requests instead
        pass

    def _record(self):
        if _log_file is None:
            return
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "peer": self.client_address[0],
        }
        with _log_lock:
            _log_file.write(json.dumps(entry) + "\n")
            _log_file.flush()

    def _discard_body(self):
        try:
            n = int(self.headers.get("Content-Length", "0") or "0")
        except ValueError:
            n = 0
        while n > 0:
            chunk = self.rfile.read(min(n, 65536))
            if not chunk:
                break
            n -= len(chunk)

    def _reply(self, code, body, ctype="text/plain", extra=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self):
        self._discard_body()
        self._record()
        path = self.path.split("?", 1)[0]
        if self.command == "PUT":
            if path != "/latest/api/token":
                return self._reply(405, "Method Not Allowed")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if ttl is None or not ttl.strip().isdigit():
                return self._reply(400, "Bad Request")
            return self._reply(200, TOKEN, extra=[("X-aws-ec2-metadata-token-ttl-seconds", ttl.strip())])
        if self.command not in ("GET", "HEAD"):
            return self._reply(405, "Method Not Allowed")
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token is not None and token != TOKEN:
            return self._reply(401, "Unauthorized")
        body = PATHS.get(path)
        if body is None:
            return self._reply(404, "Not Found")
        ctype = "application/json" if body.startswith("{") else "text/plain"
        return self._reply(200, body, ctype)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = do_OPTIONS = do_PATCH = _handle


class Server4(ThreadingHTTPServer):
    request_queue_size = 1024  # the default backlog of 5 stalls parallel clients
    daemon_threads = True


class Server6(Server4):
    address_family = socket.AF_INET6


def main():
    global _log_file
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--addr4", default="169.254.169.254")
    ap.add_argument("--addr6", default="fd00:ec2::254")
    ap.add_argument("--log")
    a = ap.parse_args()
    if a.log:
        _log_file = open(a.log, "a", encoding="utf-8")
    servers = [Server4((a.addr4, a.port), Handler)]
    if a.addr6:
        servers.append(Server6((a.addr6, a.port), Handler))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
