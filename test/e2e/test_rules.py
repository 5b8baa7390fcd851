#!/usr/bin/env python3
"""End-to-end tests of scripts/nfq-apeeper-rules in the namespace lab (cases Q3, Q7, Q8, P1,
P2). The stand-in consumer is test/bench/nfq_accept_all. Exit 77 (skipped) without root,
network namespaces or NFQUEUE."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
import lab as L  # noqa: E402

LAB = None
PATH = "/latest/meta-data/"
TARGETS = [(ns, url) for ns in ("inst", "ctr") for url in (L.URL4, L.URL6)]


def ns_of(name):
    return getattr(LAB, name)


class RulesTest(unittest.TestCase):
    baseline = {}

    @classmethod
    def setUpClass(cls):
        LAB.rules("remove")
        for ns, url in TARGETS:
            cls.baseline[(ns, url)] = LAB.curl(ns_of(ns), url + PATH)
            assert cls.baseline[(ns, url)].startswith(b"HTTP/1.1 200 OK\r\n"), cls.baseline[(ns, url)]

    def setUp(self):
        LAB.rules("remove")
        self.consumer = None

    def tearDown(self):
        if self.consumer is not None:
            LAB.stop(self.consumer)
            LAB.wait_bound(LAB.inst, 0, bound=False)
        LAB.rules("remove")

    def assert_replies_identical(self):
        for ns, url in TARGETS:
            got = LAB.curl(ns_of(ns), url + PATH)
            self.assertEqual(got, self.baseline[(ns, url)], f"{ns} {url}")

    def counters(self, fam, chain):
        tool = "iptables" if fam == 4 else "ip6tables"
        out = LAB.run(LAB.inst, [tool, "-w", "-t", "mangle", "-L", chain, "-v", "-x", "-n"]).stdout
        for line in out.splitlines():
            if "NFQUEUE" in line:
                return int(line.split()[0])
        self.fail(f"no NFQUEUE rule in {chain} (IPv{fam})")

    def our_lines(self):
        dump = LAB.ruleset_dump()
        return [line for line in dump.splitlines()
                if "NFQ_APEEPER" in line or "nfq_apeeper" in line or "nfq-apeeper" in line or "queue" in line]

    # (a) no consumer bound: bypass, byte-identical replies, the rules did match (P1: FORWARD too)
    def test_a_bypass_without_consumer(self):
        LAB.rules("install")
        self.assertNotIn(0, LAB.queue_stats(LAB.inst))
        self.assert_replies_identical()
        for fam in (4, 6):
            self.assertGreater(self.counters(fam, "NFQ_APEEPER_OUT"), 0, f"IPv{fam} OUTPUT")
            self.assertGreater(self.counters(fam, "NFQ_APEEPER_FWD"), 0, f"IPv{fam} containers")
            self.assertGreater(self.counters(fam, "NFQ_APEEPER_IN"), 0, f"IPv{fam} SYN-ACKs to the instance")
            self.assertGreater(self.counters(fam, "NFQ_APEEPER_RPL"), 0, f"IPv{fam} SYN-ACKs to containers")

    # (b) consumer bound: packets really pass through the queue, nothing waits or drops
    def test_b_through_queue(self):
        LAB.rules("install")
        self.consumer = LAB.start_accept_all(0)
        before = LAB.queue_stats(LAB.inst)[0].id_sequence
        for ns, url in TARGETS:
            seq = LAB.queue_stats(LAB.inst)[0].id_sequence
            self.assertEqual(LAB.curl(ns_of(ns), url + PATH), self.baseline[(ns, url)], f"{ns} {url}")
            self.assertGreater(LAB.queue_stats(LAB.inst)[0].id_sequence, seq, f"{ns} {url} not queued")
        st = LAB.queue_stats(LAB.inst)[0]
        self.assertGreater(st.id_sequence, before)
        self.assertEqual((st.waiting, st.queue_dropped, st.user_dropped), (0, 0, 0))

    # (c) idempotent install, complete removal, option changes on reinstall
    def test_c_idempotent_and_remove(self):
        def count(pattern, fam):
            tool = "iptables-save" if fam == 4 else "ip6tables-save"
            out = LAB.run(LAB.inst, [tool, "-t", "mangle"]).stdout
            return sum(1 for line in out.splitlines() if pattern in line)

        # Queue rules per chain with --payload-only (the default): payload, unusual headers,
        # SYN, FIN, RST, and for IPv4 fragments (IPv6 fragments carry an extension header, which
        # the unusual-headers rule queues); 1 with --all-packets. Plus, always, the one rule
        # that queues the server's SYN-ACKs to the instance (NFQ_APEEPER_IN, from INPUT) and,
        # with forwarding, to containers (NFQ_APEEPER_RPL, from FORWARD).
        per_chain = {4: 6, 6: 5}
        for _ in range(2):
            LAB.rules("install")
        for fam in (4, 6):
            self.assertEqual(count("-j NFQUEUE", fam), 2 * per_chain[fam] + 2, f"IPv{fam} queue rules")
            self.assertEqual(count("-j NFQ_APEEPER_OUT", fam), 1, f"IPv{fam} OUTPUT jumps")
            self.assertEqual(count("-j NFQ_APEEPER_FWD", fam), 1, f"IPv{fam} PREROUTING jumps")
            self.assertEqual(count("-A INPUT ! -i lo -p tcp -m tcp --sport 80", fam), 1, f"IPv{fam} INPUT jumps")
            self.assertEqual(count("-A FORWARD ! -i lo -p tcp -m tcp --sport 80", fam), 1, f"IPv{fam} FORWARD jumps")
            self.assertEqual(count("--mark 0x4e46", fam), 1, f"IPv{fam} own-traffic rules (output only)")
        # A reinstall with another queue number replaces the rules in place.
        LAB.rules("install", "--queue-num", "7")
        for fam in (4, 6):
            self.assertEqual(count("--queue-num 7", fam), 2 * per_chain[fam] + 2)
            self.assertEqual(count("--queue-num 0", fam), 0)
        LAB.rules("install", "--no-forward", "--no-ipv6")
        self.assertEqual(count("NFQ_APEEPER_FWD", 4), 0)
        self.assertEqual(count("NFQ_APEEPER_RPL", 4), 0)
        self.assertEqual(count("-j NFQUEUE", 4), per_chain[4] + 1)
        self.assertEqual(count("NFQ_APEEPER", 6), 0)
        LAB.rules("install", "--all-packets")
        self.assertEqual(count("-j NFQUEUE", 4), 4)
        self.assertEqual(count("-m u32", 4), 0)
        LAB.rules("install")
        LAB.rules("remove")
        self.assertEqual(self.our_lines(), [])
        self.assertEqual(LAB.run(LAB.inst, ["nft", "list", "ruleset"]).stdout.strip(), "",
                         "remove left (empty) tables behind")
        LAB.rules("remove")  # removing nothing is fine

    # (d) the daemon's own traffic (SO_MARK 0x4e46) is not queued
    def test_d_marked_traffic_not_queued(self):
        LAB.rules("install")
        self.consumer = LAB.start_accept_all(0)
        req = b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        for host in (L.IMDS4, L.IMDS6):
            seq = LAB.queue_stats(LAB.inst)[0].id_sequence
            reply = LAB.client(LAB.inst, host, [req], mark=L.OWN_MARK)
            self.assertIn(b"i-0123456789abcdef0", reply)
            # Only the server's SYN-ACK (input cannot know the socket it is for; the daemon
            # ignores a SYN-ACK for no flow it follows).
            self.assertEqual(LAB.queue_stats(LAB.inst)[0].id_sequence, seq + 1, f"{host}: marked traffic queued")
            reply = LAB.client(LAB.inst, host, [req])  # control: unmarked is queued
            self.assertIn(b"i-0123456789abcdef0", reply)
            self.assertGreater(LAB.queue_stats(LAB.inst)[0].id_sequence, seq)
            # The mark from another uid is queued: since Linux 5.17 CAP_NET_RAW alone may set
            # SO_MARK, so the mark must not be a way around the sensor.
            seq = LAB.queue_stats(LAB.inst)[0].id_sequence
            payload = json.dumps({"pieces": [req.hex()]}).encode()
            r = LAB.run(LAB.inst, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw",
                                   "--bounding-set=-all,+net_raw", sys.executable,
                                   os.path.join(L.HERE, "client.py"), host, "--mark", hex(L.OWN_MARK)],
                        input=payload, text=False, check=False)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"i-0123456789abcdef0", r.stdout)
            self.assertGreater(LAB.queue_stats(LAB.inst)[0].id_sequence, seq, f"{host}: foreign mark skipped the queue")

    # (e) status shows the rules and whether the queue is bound
    def test_e_status(self):
        out = LAB.rules("status").stdout
        self.assertIn("not installed", out)
        self.assertIn("queue 0: not bound", out)
        LAB.rules("install")
        out = LAB.rules("status").stdout
        self.assertIn("NFQUEUE --queue-num 0 --queue-bypass", out)
        self.assertIn("queue 0: not bound", out)
        self.consumer = LAB.start_accept_all(0)
        out = LAB.rules("status").stdout
        self.assertRegex(out, r"queue 0: bound to portid \d+ \(pid \d+ \(nfq_accept_all")
        self.assertNotIn("warning:", out)
        # Q8: a foreign queue rule and a DNAT of the metadata address are reported.
        LAB.run(LAB.inst, ["iptables", "-w", "-t", "mangle", "-A", "OUTPUT", "-p", "tcp", "--dport", "80",
                           "-j", "NFQUEUE", "--queue-num", "3"])
        LAB.run(LAB.inst, ["iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-d", L.IMDS4, "-p", "tcp",
                           "--dport", "80", "-j", "DNAT", "--to-destination", "10.200.1.2:8080"])
        try:
            out = LAB.rules("status").stdout
            warnings = [line for line in out.splitlines() if line.startswith("warning:")]
            self.assertEqual(len(warnings), 2, out)
            self.assertTrue(any("queue num 3" in w for w in warnings), warnings)
            self.assertTrue(any("dnat" in w for w in warnings), warnings)
        finally:
            LAB.run(LAB.inst, ["iptables", "-w", "-t", "mangle", "-D", "OUTPUT", "-p", "tcp", "--dport", "80",
                               "-j", "NFQUEUE", "--queue-num", "3"])
            LAB.run(LAB.inst, ["iptables", "-w", "-t", "nat", "-F"])
            LAB.run(LAB.inst, ["nft", "delete", "table", "ip", "nat"], check=False)

    # (f) Q3: reinstalling while requests flow never fails a request
    def test_f_reinstall_under_load(self):
        # --all-packets: every packet reaching the service must have been queued (payload-only
        # leaves pure ACKs out by design; test_payload_only.py covers that mode).
        LAB.rules("install", "--all-packets")
        self.consumer = LAB.start_accept_all(0)
        # Every packet that reaches the service must have passed the queue: a reinstall that
        # left a moment without the queue rule would let some through unqueued.
        # The server's SYN-ACKs are queued too, on their way back.
        arrived = ("-p", "tcp", "--dport", "80")
        syn_acks = ("-p", "tcp", "--sport", "80", "--tcp-flags", "SYN,ACK,FIN,RST", "SYN,ACK")
        for tool in ("iptables", "ip6tables"):
            LAB.run(LAB.imds, [tool, "-w", "-A", "INPUT", *arrived])
            LAB.run(LAB.imds, [tool, "-w", "-A", "OUTPUT", *syn_acks])
            LAB.run(LAB.imds, [tool, "-w", "-Z", "INPUT"])
            LAB.run(LAB.imds, [tool, "-w", "-Z", "OUTPUT"])
        seq0 = LAB.queue_stats(LAB.inst)[0].id_sequence
        loops = []
        for ns, url in (("inst", L.URL4), ("ctr", L.URL6)):
            script = (f"ok=0; for i in $(seq 200); do curl -sS -g --max-time 5 -o /dev/null "
                      f"'{url}/latest/meta-data/instance-id' && ok=$((ok+1)); done; echo $ok")
            loops.append(LAB.popen(ns_of(ns), script, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        reinstalls = 0
        while any(p.poll() is None for p in loops):
            LAB.rules("install", "--all-packets")
            reinstalls += 1
        for p in loops:
            out, err = p.communicate()
            self.assertEqual(out.decode().strip(), "200", err.decode())
        self.assertGreater(reinstalls, 2)
        st = LAB.queue_stats(LAB.inst)[0]
        queued = st.id_sequence - seq0
        reached = 0
        for tool in ("iptables", "ip6tables"):
            for chain in ("INPUT", "OUTPUT"):
                out = LAB.run(LAB.imds, [tool, "-w", "-L", chain, "-v", "-x", "-n"]).stdout
                reached += sum(int(line.split()[0]) for line in out.splitlines()[2:] if line.strip())
                LAB.run(LAB.imds, [tool, "-w", "-F", chain])
        self.assertGreaterEqual(reached, 400 * 4)  # at least SYN, SYN-ACK, request, ACK each
        self.assertEqual(queued, reached, f"{reached - queued} packets bypassed the queue during {reinstalls} reinstalls")
        self.assertEqual((st.waiting, st.queue_dropped, st.user_dropped), (0, 0, 0))

    # (g) backends: nft fails cleanly without nft_queue; auto falls back to iptables
    def test_g_backends(self):
        probe = LAB.run(LAB.inst, "nft -c -f - <<'EOF'\nadd table inet p\nadd chain inet p c\n"
                                  "add rule inet p c queue num 0 bypass\nEOF", check=False)
        has_nft_queue = probe.returncode == 0
        r = LAB.rules("install", "--backend", "nft", check=False)
        if has_nft_queue:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("table inet nfq_apeeper", LAB.run(LAB.inst, ["nft", "list", "ruleset"]).stdout)
        else:
            self.assertEqual(r.returncode, 1)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn("nft_queue", r.stderr)
            self.assertEqual(self.our_lines(), [], "a failed nft install left rules")
            self.assertEqual(LAB.run(LAB.inst, ["nft", "list", "ruleset"]).stdout.strip(), "")
            r = LAB.rules("install")
            self.assertIn("iptables backend", r.stdout)
        LAB.rules("remove")
        self.assertEqual(self.our_lines(), [])

    def test_g_nft_rule_generation(self):
        """The generated nft batch parses and, with the queue statement swapped for accept,
        passes the kernel's check; the queue lines fail (if at all) only for lack of nft_queue."""
        for extra in ([], ["--no-forward"], ["--no-ipv6", "--queue-num", "9"]):
            batch = LAB.rules("install", "--backend", "nft", "--dry-run", *extra).stdout
            self.assertIn("priority -150", batch)
            self.assertIn("meta mark 0x4e46 meta skuid 0 return", batch)
            self.assertIn("queue num", batch)
            self.assertIn("input iifname != \"lo\" ip saddr 169.254.169.254 tcp sport 80", batch)  # always
            self.assertEqual("forward iifname" in batch, "--no-forward" not in extra)
            self.assertEqual("prerouting ip daddr" in batch, "--no-forward" not in extra)
            self.assertEqual("fd00:ec2::254" in batch, "--no-ipv6" not in extra)
            swapped = batch.replace("bypass", "").replace("queue num", "accept comment")
            swapped = "\n".join(line.split(" accept comment")[0] + " accept" if "accept comment" in line else line
                                for line in swapped.splitlines())
            r = LAB.run(LAB.inst, ["nft", "-c", "-f", "-"], input=swapped, check=False)
            self.assertEqual(r.returncode, 0, r.stderr + swapped)
            r = LAB.run(LAB.inst, ["nft", "-c", "-f", "-"], input=batch, check=False)
            if r.returncode != 0:
                self.assertIn("No such file or directory", r.stderr)
                self.assertNotIn("syntax error", r.stderr)
        self.assertEqual(LAB.run(LAB.inst, ["nft", "list", "ruleset"]).stdout.strip(), "")

    def test_h_usage_errors(self):
        bad = [[], ["bogus"], ["install", "remove"], ["install", "--queue-num"], ["install", "--queue-num", "70000"],
               ["install", "--queue-num", "-1"], ["install", "--backend", "pf"], ["status", "--frobnicate"]]
        for args in bad:
            r = LAB.rules(*args, check=False)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stderr}")
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, f"{args}: {r.stderr}")
            self.assertEqual(r.stdout, "")
        self.assertEqual(self.our_lines(), [])


def main():
    global LAB
    with L.Lab() as lab:
        LAB = lab
        lab.start_imds()
        result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
