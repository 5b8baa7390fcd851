"""Docker-style hosts and established connections, with the real daemon and rules script.

Bridge: the lab's container link is enslaved to a bridge `docker0` in inst (the container
reaches the metadata service through it, routed and masqueraded like Docker does), and the
filter FORWARD chain gets Docker's shape: policy DROP, `-j DOCKER-USER` first, then ACCEPT
only for the bridge. Whatever DOCKER-USER decides, the request is already queued: our rule is
in mangle PREROUTING (priority -150), which runs before filter FORWARD (0). So a DOCKER-USER
DROP-everything policy blocks the request but cannot hide it from the sensor.

Established connections: the rules match on address and port only, never on conntrack state,
so a keep-alive connection opened before the rules were installed has its next request queued
and seen (nothing to flush from conntrack on install; docs/rules.md)."""
import json
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from daemon_harness import Daemon, lablib, run_tests  # noqa: E402

LAB = None
URL4, URL6 = lablib.URL4, lablib.URL6
FACTORY = ["--factory", "http://127.0.0.1:9/f"]  # unreachable console: hits are read from stdout


def ipt(*args, fam=4):
    LAB.run(LAB.inst, ["iptables" if fam == 4 else "ip6tables", "-w", *args])


def setUpModule():
    a = LAB.ADDR
    LAB.start_imds()
    run = lambda *c: LAB.run(LAB.inst, list(c))  # noqa: E731
    run("ip", "link", "add", "docker0", "type", "bridge")
    run("ip", "addr", "flush", "dev", "to-ctr")
    run("ip", "link", "set", "to-ctr", "master", "docker0")
    run("ip", "addr", "add", f"{a['inst_ctr4']}/24", "dev", "docker0")
    run("ip", "addr", "add", f"{a['inst_ctr6']}/64", "dev", "docker0", "nodad")
    run("ip", "link", "set", "docker0", "up")
    for fam, net in ((4, "10.200.2.0/24"), (6, "fd42:2::/64")):
        ipt("-P", "FORWARD", "DROP", fam=fam)
        ipt("-N", "DOCKER-USER", fam=fam)
        ipt("-A", "FORWARD", "-j", "DOCKER-USER", fam=fam)
        ipt("-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT", fam=fam)
        ipt("-A", "FORWARD", "-i", "docker0", "-j", "ACCEPT", fam=fam)
        ipt("-t", "nat", "-A", "POSTROUTING", "-s", net, "!", "-o", "docker0", "-j", "MASQUERADE", fam=fam)
    # The container must still reach the metadata service through docker0.
    deadline = time.time() + 5
    while time.time() < deadline:
        if LAB.run(LAB.ctr, ["curl", "-s", "--max-time", "1", f"{URL4}/latest/meta-data/"], check=False).returncode == 0:
            break
        time.sleep(0.1)
    LAB.rules("install")


class BridgeTest(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(LAB, *FACTORY)

    def tearDown(self):
        for fam in (4, 6):
            ipt("-F", "DOCKER-USER", fam=fam)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.all_output())
        st = LAB.queue_stats(LAB.inst).get(0)
        self.assertTrue(st is None or (st.waiting, st.queue_dropped, st.user_dropped) == (0, 0, 0), st)

    def test_container_behind_docker0_is_seen_with_its_own_address(self):
        self.assertIn(b"200 OK", LAB.curl(LAB.ctr, f"{URL4}/latest/meta-data/iam/security-credentials/"))
        self.assertIn(b"200 OK", LAB.curl(LAB.ctr, f"{URL6}/latest/meta-data/instance-id"))
        hits = self.daemon.take_hits(2)
        self.assertEqual(len(hits), 2, hits)
        by_url = {h["url"]: h for h in hits}
        h4 = by_url["/latest/meta-data/iam/security-credentials/"]
        self.assertEqual(h4["hook"], "prerouting")
        self.assertTrue(h4["src"].startswith(LAB.ADDR["ctr4"] + ":"), h4)  # before MASQUERADE
        h6 = by_url["/latest/meta-data/instance-id"]
        self.assertTrue(h6["src"].startswith(f"[{LAB.ADDR['ctr6']}]:"), h6)
        # The service saw the masqueraded source: the container really was routed and NATed.
        peers = [r["peer"] for r in LAB.imds_requests() if r["path"] == "/latest/meta-data/iam/security-credentials/"]
        self.assertTrue(any(LAB.ADDR["inst_imds4"] in str(p) for p in peers), peers)

    def test_docker_user_drop_blocks_the_request_but_does_not_hide_it(self):
        for fam in (4, 6):
            ipt("-A", "DOCKER-USER", "-i", "docker0", "-j", "DROP", fam=fam)
        r = LAB.run(LAB.ctr, ["curl", "-s", "--max-time", "2", f"{URL4}/latest/meta-data/iam/security-credentials/x"],
                    check=False)
        self.assertNotEqual(r.returncode, 0)  # blocked by DOCKER-USER
        self.assertFalse([q for q in LAB.imds_requests() if q["path"].endswith("/x")])
        # curl retransmits the SYN; the request itself is never sent (no handshake). What the
        # sensor sees is the attempt: a SYN is not a request, so no hit, and no lost verdict.
        # With the handshake allowed and the request dropped, the request is seen:
        for fam in (4, 6):
            ipt("-F", "DOCKER-USER", fam=fam)
            ipt("-A", "DOCKER-USER", "-i", "docker0", "-p", "tcp", "--tcp-flags", "PSH", "PSH", "-j", "DROP", fam=fam)
        r = LAB.run(LAB.ctr, ["curl", "-s", "--max-time", "2", f"{URL4}/latest/meta-data/iam/security-credentials/y"],
                    check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse([q for q in LAB.imds_requests() if q["path"].endswith("/y")])
        hits = self.daemon.take_hits(1)
        self.assertTrue(any(h["url"] == "/latest/meta-data/iam/security-credentials/y" for h in hits), hits)
        self.assertTrue(all(h["hook"] == "prerouting" for h in hits), hits)


class EstablishedConnectionTest(unittest.TestCase):
    def test_keepalive_connection_opened_before_install_is_seen_after(self):
        LAB.rules("remove")
        daemon = Daemon(LAB, *FACTORY)
        try:
            req = lambda p: f"GET {p} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode()  # noqa: E731
            pieces = [req("/latest/meta-data/before-rules"), req("/latest/meta-data/after-rules")]
            client = LAB.popen(LAB.inst, [sys.executable, os.path.join(lablib.HERE, "client.py"), lablib.IMDS4,
                                          "--delay", "3", "--timeout", "8"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
            client.stdin.write(json.dumps({"pieces": [p.hex() for p in pieces]}).encode())
            client.stdin.close()
            time.sleep(1)  # first request answered on the connection, unqueued (no rules)
            LAB.rules("install")  # no conntrack flush
            client.wait(timeout=20)
            reply = client.stdout.read()
            self.assertEqual(reply.count(b"HTTP/1.1 "), 2, reply)
            hits = daemon.take_hits(1)
            self.assertEqual([h["url"] for h in hits], ["/latest/meta-data/after-rules"], hits)
        finally:
            self.assertEqual(daemon.stop(), 0, daemon.all_output())


if __name__ == "__main__":
    run_tests(globals())
