"""--payload-only rules (the default) miss no request bytes: the real daemon behind the
payload-only rules reports exactly the expected requests for split writes (1-byte pieces with
TCP_NODELAY), tiny segments (TCP_MAXSEG 88, a 300-byte path), pipelined requests, a 30 KB
path and a 30 KB pipelined write, over IPv4 and IPv6, from the host and from a container.
Also checks that pure ACKs are really left out of the queue."""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from daemon_harness import Daemon, lablib, run_tests  # noqa: E402

LAB = None
DEAD_FACTORY = "http://127.0.0.1:1/factory"  # no console: hits go to the spool (and stdout)
TARGETS = [("inst", lablib.IMDS4), ("inst", lablib.IMDS6), ("ctr", lablib.IMDS4), ("ctr", lablib.IMDS6)]


def req(path, close=False):
    return (f"GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n" + ("Connection: close\r\n" if close else "")
            + "\r\n").encode()


class PayloadOnlyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        LAB.start_imds()
        out = LAB.rules("install", "--payload-only").stdout
        assert "payload only" in out, out
        cls.d = Daemon(LAB, "--factory", DEAD_FACTORY, "--fold-window", "0")

    @classmethod
    def tearDownClass(cls):
        assert cls.d.stop() == 0, cls.d.all_output()

    def tearDown(self):
        st = LAB.queue_stats(LAB.inst).get(0)
        self.assertEqual((st.waiting, st.queue_dropped, st.user_dropped), (0, 0, 0))

    def each_target(self, pieces, expected, **client_kw):
        for ns_name, host in TARGETS:
            with self.subTest(ns=ns_name, host=host):
                ns = getattr(LAB, ns_name)
                LAB.client(ns, host, pieces, check=False, **client_kw)
                hits = self.d.take_hits(len(expected), timeout=5, settle=0.3)
                self.assertEqual([(h["url"], h.get("flags", "")) for h in hits], expected, f"{ns_name} {host}")
                src = hits[0]["src"] if hits else ""
                want = LAB.ADDR["ctr4" if ns_name == "ctr" else "inst_imds4"] if ":" not in host else \
                    LAB.ADDR["ctr6" if ns_name == "ctr" else "inst_imds6"]
                self.assertIn(want, src)

    def test_split_into_tiny_nodelay_pieces(self):
        pieces = [b"G", b"ET /latest/me", b"t", b"a-data/iam/security-credentials/role HTTP/1.1\r\nHo", b"s",
                  b"t: 169.254.169.254\r\n", b"\r", b"\n"]
        self.each_target(pieces, [("/latest/meta-data/iam/security-credentials/role", "")], nodelay=True, delay=0.03)

    def test_maxseg_88_with_a_300_byte_path(self):
        path = "/latest/meta-data/" + "p" * 282
        self.assertEqual(len(path), 300)
        self.each_target([req(path, close=True)], [(path, "")], maxseg=88)

    def test_pipelined_requests_in_one_write(self):
        paths = ["/latest/meta-data/", "/latest/meta-data/instance-id", "/latest/user-data"]
        data = req(paths[0]) + req(paths[1]) + req(paths[2], close=True)
        self.each_target([data], [(p, "") for p in paths])

    def test_ip_fragments_are_never_missed(self):
        # A raw-socket sender splits a segment into IP fragments: only the first has a TCP
        # header. Either conntrack reassembled it before the hook (the whole request is seen)
        # or the first fragment is queued by its own rule and reported flagged ip_fragment.
        path = "/latest/meta-data/iam/security-credentials/role"
        data = f"GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode()
        sender = os.path.join(lablib.HERE, "frag_sender.py")
        for ns_name, src, sport in (("inst", LAB.ADDR["inst_imds4"], 40401), ("ctr", LAB.ADDR["ctr4"], 40402)):
            with self.subTest(ns=ns_name):
                LAB.run(getattr(LAB, ns_name), [sys.executable, sender, src, lablib.IMDS4, str(sport)],
                        input=data, text=False)
                hits = self.d.take_hits(1, timeout=5, settle=0.3)
                self.assertEqual(len(hits), 1, hits)
                hit = hits[0]
                print(f"fragmented request from {ns_name}: url {hit['url']!r} flags {hit.get('flags', '')!r}",
                      flush=True)
                self.assertIn(str(sport), hit["src"])
                if hit["url"] != path:
                    self.assertIn("ip_fragment", hit.get("flags", ""), hit)
                    self.assertTrue(path.startswith(hit["url"]) or hit["url"] == "", hit)

    def test_30k_path_is_reported_once_as_oversized(self):
        data = b"GET /latest/meta-data/" + b"x" * 30000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        for ns_name, host in TARGETS:
            with self.subTest(ns=ns_name, host=host):
                LAB.client(getattr(LAB, ns_name), host, [data], check=False)
                hits = self.d.take_hits(1, timeout=5, settle=0.3)
                self.assertEqual(len(hits), 1, hits)
                self.assertIn("oversized", hits[0].get("flags", ""))

    def test_30k_pipelined_write_every_request_seen(self):
        paths = [f"/latest/meta-data/item-{i:04d}/" + "q" * 60 for i in range(300)]
        data = b"".join(req(p, close=(i == len(paths) - 1)) for i, p in enumerate(paths))
        self.assertGreater(len(data), 30000)
        self.each_target([data], [(p, "") for p in paths], timeout=10)

    def test_pure_acks_are_not_queued(self):
        seq0 = LAB.queue_stats(LAB.inst)[0].id_sequence
        for _ in range(5):
            LAB.curl(LAB.inst, f"{lablib.URL4}/latest/meta-data/")
        queued = LAB.queue_stats(LAB.inst)[0].id_sequence - seq0
        hits = self.d.take_hits(5)
        self.assertEqual(len(hits), 5)
        # Per connection: the SYN, the server's SYN-ACK, the request and the client's FIN (the
        # ACKs stay in the kernel); SYN and SYN-ACK let the sensor vouch for the stream, so
        # no hit is midstream.
        self.assertEqual(queued, 20)
        self.assertEqual([h.get("flags", "") for h in hits], [""] * 5)


if __name__ == "__main__":
    run_tests(globals())
