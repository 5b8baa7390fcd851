"""End to end with the console: the real daemon in the lab's instance namespace reports to the
mock Canary console (test/alerting/mock_console.py) on the instance's loopback. Registration
once, a hit with the contract's fields, hit latency from request to console (median and worst
over 100 requests), an outage during which hits wait in the spool and are each delivered once
afterwards, and a kill -9 during the outage."""
import os
import signal
import statistics
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from daemon_harness import Daemon, lablib, run_tests  # noqa: E402

LAB = None
CONSOLE = {}
FIELDS = {"url", "norm", "method", "imds", "src", "uid", "pid", "owner", "cmdline", "count", "first", "last", "flags"}


def console_records(name):
    try:
        return lablib.read_jsonl(os.path.join(CONSOLE["dir"], name))
    except FileNotFoundError:
        return []


def set_mode(mode):
    LAB.run(LAB.inst, ["curl", "-sS", "-X", "POST", f"http://127.0.0.1:{CONSOLE['port']}/_mode?m={mode}"])


def wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    return predicate()


def setUpModule():
    LAB.start_imds()
    LAB.rules("install")
    CONSOLE["dir"] = os.path.join(LAB.tmpdir, "console")
    os.makedirs(CONSOLE["dir"])
    port_file = os.path.join(CONSOLE["dir"], "port")
    LAB.popen(LAB.inst, [sys.executable, os.path.join(lablib.SOURCE_DIR, "test", "alerting", "mock_console.py"),
                         "--record-dir", CONSOLE["dir"], "--port-file", port_file])
    CONSOLE["port"] = wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10)
    CONSOLE["factory"] = f"http://127.0.0.1:{CONSOLE['port']}/factory/e2e-secret-factory"
    CONSOLE["state"] = os.path.join(LAB.tmpdir, "state")


class ConsoleTest(unittest.TestCase):
    def start(self):
        env = dict(os.environ, NFQ_APEEPER_FACTORY=CONSOLE["factory"])
        d = Daemon(LAB, "--fold-window", "0", "--backoff-initial-ms", "100", "--backoff-max-ms", "500",
                   state_dir=CONSOLE["state"], env=env)
        self.addCleanup(lambda: d.proc.poll() is None and d.stop())
        return d

    def delivered(self, url):
        return [h for h in console_records("hits.jsonl") if h["query"].get("url") == url]

    def test_1_registration_fields_and_latency(self):
        d = self.start()
        self.assertTrue(wait_for(lambda: console_records("regs.jsonl"), 10), d.all_output())
        reg = console_records("regs.jsonl")[0]
        self.assertEqual(reg["form"]["instanceid"], "i-0123456789abcdef0")  # from the lab's IMDS
        self.assertEqual(reg["form"]["region"], "eu-west-1a")
        self.assertTrue(reg["ua"].startswith("nfq-apeeper/"), reg)

        LAB.curl(LAB.inst, f"{lablib.URL4}/latest/meta-data/iam/security-credentials/nfq-lab-role",
                 "-H", "X-aws-ec2-metadata-token: SECRET-TOKEN-VALUE")
        hit = wait_for(lambda: self.delivered("/latest/meta-data/iam/security-credentials/nfq-lab-role"), 5)
        self.assertEqual(len(hit), 1)
        q = hit[0]["query"]
        self.assertTrue(FIELDS <= set(q), sorted(FIELDS - set(q)))
        self.assertEqual((q["method"], q["imds"], q["count"], q["uid"]), ("GET", "v2", "1", "0"))
        self.assertTrue(q["src"].startswith(LAB.ADDR["inst_imds4"] + ":"), q)
        if q["pid"] not in ("", "-1"):  # attribution races a short-lived curl (docs/attribution.md)
            self.assertIn("curl", q["cmdline"])
        self.assertTrue(hit[0]["ua"].startswith("nfq-apeeper/"))

        latencies = []
        for i in range(100):
            url = f"/latest/meta-data/latency-{i}"
            sent = time.time()
            LAB.curl(LAB.inst, f"{lablib.URL4}{url}", check=False)
            got = wait_for(lambda: self.delivered(url), 5)
            self.assertTrue(got, url)
            latencies.append(got[0]["received"] - sent)
        latencies.sort()
        lablib.measure(f"hit latency request->console over 100 requests: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"worst {latencies[-1] * 1000:.1f} ms")
        self.assertLess(latencies[-1], 1.0)  # "within a second"
        self.assertEqual(d.stop(), 0)
        out = d.all_output()
        for secret in ("SECRET-TOKEN-VALUE", "e2e-secret-factory", "/t/0/"):
            self.assertNotIn(secret, out)

    def test_2_outage_then_each_hit_delivered_once(self):
        d = self.start()
        set_mode("500")
        urls = [f"/latest/meta-data/outage-{i}" for i in range(20)]
        for url in urls:
            LAB.curl(LAB.inst, f"{lablib.URL4}{url}", check=False)
        time.sleep(1.5)
        self.assertEqual([u for u in urls if self.delivered(u)], [])
        set_mode("ok")
        self.assertTrue(wait_for(lambda: all(self.delivered(u) for u in urls), 10))
        time.sleep(1)
        self.assertEqual({u: len(self.delivered(u)) for u in urls}, {u: 1 for u in urls})
        lablib.measure(f"outage: {len(urls)} hits made during a console outage, each delivered once after it")
        self.assertEqual(d.stop(), 0)

    def test_3_kill9_during_outage_then_restart(self):
        d = self.start()
        set_mode("reset")
        urls = [f"/latest/meta-data/killed-{i}" for i in range(10)]
        for url in urls:
            LAB.curl(LAB.inst, f"{lablib.URL4}{url}", check=False)
        time.sleep(0.5)  # the spool is fsynced in batches of at most ~50 ms
        d.signal(signal.SIGKILL)
        d.proc.wait(timeout=5)
        set_mode("ok")
        d2 = self.start()
        self.assertTrue(wait_for(lambda: all(self.delivered(u) for u in urls), 10), d2.all_output())
        time.sleep(1)
        self.assertEqual({u: len(self.delivered(u)) for u in urls}, {u: 1 for u in urls})
        self.assertEqual(len(console_records("regs.jsonl")), 1, "registered once across restarts")
        lablib.measure(f"kill -9 during outage: {len(urls)} spooled hits each delivered once after restart")
        self.assertEqual(d2.stop(), 0)

    def test_4_event_log_folds_as_the_console_does(self):
        env = dict(os.environ, NFQ_APEEPER_FACTORY=CONSOLE["factory"])
        d = Daemon(LAB, state_dir=CONSOLE["state"], env=env)  # the default --fold-window 60
        self.addCleanup(lambda: d.proc.poll() is None and d.stop())
        url = "/latest/meta-data/folded-in-the-event-log"
        # One keep-alive connection: one caller (attributed once per flow), one key, so the
        # second and third requests wait in the first one's window.
        script = ("import http.client\n"
                  "c = http.client.HTTPConnection('169.254.169.254', 80, timeout=5)\n"
                  "for i in range(3):\n"
                  f"    c.request('GET', '{url}')\n"
                  "    c.getresponse().read()\n")
        LAB.run(LAB.inst, [sys.executable, "-c", script], timeout=30)
        first = d.take_hits(1)
        self.assertEqual([h["count"] for h in first], [1], first)
        self.assertTrue(wait_for(lambda: self.delivered(url), 10))
        self.assertEqual(d.stop(), 0)  # closes the window early: its follow-up line goes out
        follow = d.take_hits(0, settle=0)
        self.assertEqual([(h["url"], h["count"]) for h in follow], [(url, 2)], follow)
        self.assertIn("stdout.folded=2", d.all_output())


if __name__ == "__main__":
    run_tests(globals())
