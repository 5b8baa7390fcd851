"""Evasions on the real kernel path: a client shapes its bytes so that the metadata service
reads a blacklisted path while the bytes the sensor reads say otherwise. Each must end in a
hit: the real path, or a flag saying the sensor could not vouch for the flow (always
reported, whatever the lists say). The lab's IMDS records what it really served."""
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from daemon_harness import Daemon, _counters, lablib, run_tests  # noqa: E402

LAB = None
DEAD_FACTORY = "http://127.0.0.1:1/factory"
CREDS = "/latest/meta-data/iam/security-credentials/nfq-lab-role"
EVIL = f"GET {CREDS} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode()
# A harmless request whose body is exactly the credentials request.
COVER = b"GET /latest/meta-data/ami-id HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(EVIL)


class EvasionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        LAB.start_imds()
        LAB.rules("install")

    def served_since(self, n):
        return [r["path"] for r in LAB.imds_requests()[n:]]

    def run_case(self, daemon_args, send, flag):
        d = Daemon(LAB, "--factory", DEAD_FACTORY, "--fold-window", "0", "-b", "/latest/meta-data/iam",
                   *daemon_args)
        try:
            n = len(LAB.imds_requests())
            send()
            time.sleep(0.5)
            served = self.served_since(n)
            hits = d.take_hits(1, timeout=5, settle=0.5)
            st = LAB.queue_stats(LAB.inst).get(0)
            self.assertEqual((st.waiting, st.queue_dropped, st.user_dropped), (0, 0, 0))
        finally:
            self.assertEqual(d.stop(), 0, d.all_output())
        print(f"served {served}; hits {[(h['url'], h.get('flags', '')) for h in hits]}", flush=True)
        self.assertIn(CREDS, served, "the case no longer reaches the credentials")
        self.assertTrue(any(h["norm"] == CREDS or flag in h.get("flags", "").split(",") for h in hits),
                        f"credentials served, no hit for them and no {flag!r} flag: {hits}")

    def test_urgent_byte_in_the_path(self):
        def send():
            r = LAB.run(LAB.inst, [sys.executable, os.path.join(lablib.HERE, "oob_client.py"), lablib.IMDS4,
                                   "/latest/meta-data/i", CREDS[len("/latest/meta-data/i"):]])
            self.assertIn("200", r.stdout)
        self.run_case([], send, "urgent")

    def test_content_length_longer_than_the_sensor_keeps(self):
        head = (b"GET /latest/meta-data/ami-id HTTP/1.1\r\nContent-Length: " + b"0" * 600 +
                b"%d\r\n\r\n" % len(COVER))
        self.run_case([], lambda: LAB.client(LAB.inst, lablib.IMDS4, [head + COVER + EVIL], check=False),
                      "unframed")

    def test_flow_taken_up_again_inside_a_body_after_the_idle_timeout(self):
        head = b"POST /latest/meta-data/ami-id HTTP/1.1\r\nContent-Length: %d\r\n\r\nabcd" % (4 + len(COVER))
        # --flow-idle 1: the daemon forgets the flow in the 3 s pause, inside the body.
        self.run_case(["--flow-idle", "1"],
                      lambda: LAB.client(LAB.inst, lablib.IMDS4, [head, COVER + EVIL], delay=3.0, nodelay=True,
                                         timeout=8, check=False),
                      "midstream")

    # Segments the server drops but a sensor could take as the start of its stream. The
    # sensor sees the SYN (payload-only rules queue it), so it knows where the stream begins.
    def desync(self, mode, flag, daemon_args=()):
        def send():
            r = LAB.run(LAB.inst, [sys.executable, os.path.join(lablib.HERE, "desync_client.py"),
                                   LAB.ADDR["inst_imds4"], lablib.IMDS4, mode], check=False)
            self.assertIn("HTTP/1.1", r.stdout, r.stderr)  # served: checked by run_case
        self.run_case(list(daemon_args), send, flag)

    def test_desync_control(self):
        self.desync("plain", "-")

    def test_desync_old_duplicate_before_the_first_byte(self):
        self.desync("dup", "late_data")

    def test_desync_second_syn_with_data(self):
        self.desync("syn", "midstream")

    def test_desync_fin_without_ack_then_a_forged_syn(self):
        self.desync("finsyn", "midstream")

    def test_desync_rst_carrying_old_bytes(self):
        self.desync("rst", "-")

    # A close the server drops, the tuple pushed out of what the daemon remembers, then a
    # forged SYN: the server never answers that SYN with a SYN-ACK, so the flow is midstream.
    def test_desync_forged_syn_on_a_forgotten_live_connection(self):
        self.desync("forget", "midstream", ["--flow-table-cap", "16"])

    # The daemon (re)starts while the connection is up: it knows nothing of it, and no
    # SYN-ACK answers the forged SYN.
    def test_desync_forged_syn_after_a_daemon_restart(self):
        client = LAB.popen(LAB.inst, [sys.executable, os.path.join(lablib.HERE, "desync_client.py"),
                                      LAB.ADDR["inst_imds4"], lablib.IMDS4, "restart"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self.assertEqual(client.stdout.readline().strip(), b"connected")

            def send():
                out, _ = client.communicate(b"go\n", timeout=15)
                self.assertIn(b"HTTP/1.1", out)
            self.run_case([], send, "midstream")
        finally:
            if client.poll() is None:
                client.kill()

    # Docker's default bridge masquerades containers: the server's SYN-ACK comes back to the
    # host's address and port; conntrack's tuples tie it to the container's flow.
    def masquerade(self):
        for tool, net in (("iptables", "10.200.2.0/24"), ("ip6tables", "fd42:2::/64")):
            LAB.run(LAB.inst, [tool, "-w", "-t", "nat", "-A", "POSTROUTING", "-s", net, "-o", "to-imds",
                               "-j", "MASQUERADE"])
        self.addCleanup(lambda: [LAB.run(LAB.inst, [tool, "-w", "-t", "nat", "-F", "POSTROUTING"])
                                 for tool in ("iptables", "ip6tables")])

    def masqueraded_container_desync(self, mode):
        self.masquerade()
        def send():
            r = LAB.run(LAB.ctr, [sys.executable, os.path.join(lablib.HERE, "desync_client.py"),
                                  LAB.ADDR["ctr4"], lablib.IMDS4, mode], check=False)
            self.assertIn("HTTP/1.1", r.stdout, r.stderr)
        self.run_case(["--flow-table-cap", "16"], send, "midstream")

    def test_masqueraded_container_forged_syn(self):
        self.masqueraded_container_desync("forget")

    # The same from a container that also forges the server's SYN-ACK for its forged SYN: it
    # comes in on the container's own link, where no real reply to it comes in.
    def test_masqueraded_container_forged_syn_and_syn_ack(self):
        self.masqueraded_container_desync("forgesynack")

    def counters_at_stop(self, d):
        return _counters([line for line in d.stderr_lines if "counters:" in line][-1])

    def ordinary_container_requests(self, *daemon_args):
        d = Daemon(LAB, "--factory", DEAD_FACTORY, "--fold-window", "0", "-b", "/latest/meta-data/iam",
                   *daemon_args)
        try:
            LAB.curl(LAB.inst, lablib.URL4 + "/latest/meta-data/ami-id")  # the host's own, first
            for url in (lablib.URL4, lablib.URL6):
                LAB.curl(LAB.ctr, url + CREDS)
            hits = d.take_hits(2, timeout=5, settle=0.5)
        finally:
            self.assertEqual(d.stop(), 0, d.all_output())
        self.assertEqual([h["norm"] for h in hits], [CREDS, CREDS])
        self.assertEqual([h.get("flags", "") for h in hits], ["", ""], "ordinary requests flagged")
        return self.counters_at_stop(d)

    def test_masqueraded_container_ordinary_requests_are_not_flagged(self):
        self.masquerade()
        c = self.ordinary_container_requests()
        self.assertGreaterEqual(c["handshake_replies"], 3, c)
        self.assertEqual(c["flows_unconfirmed"], 0, c)

    # A second ENI with source-based policy routing (how Amazon Linux sets up secondary ENIs):
    # the instance's connection from the second address leaves, and its SYN-ACK comes back,
    # on the second link; the handshake check follows the connection's own interface.
    def test_policy_routed_second_interface_is_not_flagged(self):
        run = LAB.run
        run(LAB.inst, ["ip", "link", "add", "to-imds2", "type", "veth", "peer", "name", "eni2", "netns", LAB.imds])
        self.addCleanup(lambda: run(LAB.inst, ["ip", "link", "del", "to-imds2"], check=False))
        run(LAB.inst, ["ip", "addr", "add", "10.200.5.1/24", "dev", "to-imds2"])
        run(LAB.inst, ["ip", "link", "set", "to-imds2", "up"])
        run(LAB.imds, ["ip", "addr", "add", "10.200.5.2/24", "dev", "eni2"])
        run(LAB.imds, ["ip", "link", "set", "eni2", "up"])
        run(LAB.inst, ["ip", "route", "add", lablib.IMDS4, "via", "10.200.5.2", "dev", "to-imds2", "table", "100"])
        run(LAB.inst, ["ip", "rule", "add", "from", "10.200.5.1", "lookup", "100"])
        self.addCleanup(lambda: run(LAB.inst, ["ip", "rule", "del", "from", "10.200.5.1", "lookup", "100"], check=False))
        d = Daemon(LAB, "--factory", DEAD_FACTORY, "--fold-window", "0", "-b", "/latest/meta-data/iam")
        try:
            LAB.curl(LAB.inst, lablib.URL4 + CREDS, "--interface", "10.200.5.1")
            LAB.curl(LAB.inst, lablib.URL4 + CREDS)  # and the main interface
            hits = d.take_hits(2, timeout=5, settle=0.5)
        finally:
            self.assertEqual(d.stop(), 0, d.all_output())
        c = self.counters_at_stop(d)
        self.assertEqual([h.get("flags", "") for h in hits], ["", ""], f"{hits} {c}")
        self.assertTrue(hits[0]["src"].startswith("10.200.5.1:"), hits[0])
        self.assertEqual((c["handshake_foreign"], c["flows_unconfirmed"]), (0, 0), c)

    # kube2iam/kiam style: the container's metadata requests are DNATed to a local agent,
    # whose SYN-ACK never passes input or forward. With conntrack's tuples (kernels with
    # CONFIG_NETFILTER_NETLINK_GLUE_CT) the daemon sees the redirection; without them (this
    # VM's kernel) --no-handshake-check is the documented remedy.
    def test_container_dnated_to_a_local_agent_is_not_flagged(self):
        agent = LAB.popen(LAB.inst, [sys.executable, os.path.join(lablib.HERE, "imds_server.py"), "--port", "8181",
                                     "--addr4", LAB.ADDR["inst_ctr4"], "--addr6", LAB.ADDR["inst_ctr6"]],
                          stdout=subprocess.PIPE)
        self.addCleanup(agent.kill)
        self.assertEqual(agent.stdout.readline().strip(), b"ready")
        for tool, imds, to in (("iptables", lablib.IMDS4, LAB.ADDR["inst_ctr4"] + ":8181"),
                               ("ip6tables", lablib.IMDS6, f"[{LAB.ADDR['inst_ctr6']}]:8181")):
            LAB.run(LAB.inst, [tool, "-w", "-t", "nat", "-A", "PREROUTING", "-i", "to-ctr", "-d", imds, "-p", "tcp",
                               "--dport", "80", "-j", "DNAT", "--to-destination", to])
        self.addCleanup(lambda: [LAB.run(LAB.inst, [tool, "-w", "-t", "nat", "-F", "PREROUTING"])
                                 for tool in ("iptables", "ip6tables")])
        c = self.ordinary_container_requests("--no-handshake-check")
        self.assertEqual(c["flows_unconfirmed"], 0, c)
        # Without the option on this kernel (no conntrack tuples), the daemon says why its hits
        # are flagged, once, after 20 such connections.
        d = Daemon(LAB, "--factory", DEAD_FACTORY, "--fold-window", "0")
        try:
            for _ in range(21):
                LAB.curl(LAB.ctr, lablib.URL4 + "/latest/meta-data/ami-id")
            d.take_hits(21, timeout=5, settle=1.5)
        finally:
            self.assertEqual(d.stop(), 0, d.all_output())
        warnings = [line for line in d.stderr_lines if "connections went unconfirmed" in line]
        if "conntrack tuples: no" in d.all_output():
            self.assertEqual(len(warnings), 1, d.all_output())
            self.assertIn("--no-handshake-check", warnings[0])


if __name__ == "__main__":
    run_tests(globals())
