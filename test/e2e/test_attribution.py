"""End to end: who sent each request (issue 6). The real daemon in the lab's instance
namespace; clients are real processes: short-lived curls, a keep-alive Python client, a
curl under another uid, a curl in a Docker-style cgroup, and a forwarded request from the
container namespace. Prints the attributed share of short-lived and keep-alive requests."""
import os
import subprocess
import sys
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from daemon_harness import Daemon, lablib, run_tests  # noqa: E402

LAB = None
URL4 = lablib.URL4
N = int(os.environ.get("NFQ_ATTRIBUTION_N", "200"))
DOCKER_ID = "3f2a9c1e5b7d4f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"


def setUpModule():
    LAB.start_imds()
    LAB.rules("install")


def attributed(hits, exe_suffix):
    return [h for h in hits if h.get("pid", -1) > 0 and h.get("exe", "").endswith(exe_suffix)]


class AttributionTest(unittest.TestCase):
    def setUp(self):
        # No folding: every request is its own hit, so shares can be counted.
        self.daemon = Daemon(LAB, "--fold-window", "0")

    def tearDown(self):
        self.assertEqual(self.daemon.stop(), 0, self.daemon.all_output())
        counters = [l for l in self.daemon.stderr_lines if "counters:" in l]
        if counters:
            print("  " + " ".join(f for f in counters[-1].split() if f.startswith("attribution.")),
                  flush=True)

    def test_short_lived_curls(self):
        script = f'for i in $(seq {N}); do curl -s -o /dev/null --noproxy "*" {URL4}/latest/meta-data/short; done'
        LAB.run(LAB.inst, script, timeout=300)
        hits = self.daemon.take_hits(N, timeout=30)
        self.assertEqual(len(hits), N)
        good = attributed(hits, "/curl")
        lablib.measure(f"short-lived curl: {len(good)}/{N} attributed ({100.0 * len(good) / N:.1f}%)")
        for h in good:
            self.assertEqual(h["owner"], "root")
            self.assertTrue(h["cmdline"].startswith("curl -s -o /dev/null"), h)
            self.assertIn("sh(", h["ancestors"])
            self.assertNotIn("container", h)
        # The share races the process's exit and depends on how busy the CPUs are: it is a
        # measurement (printed above), not something a test can hold steady. What must hold:
        # some are attributed, and every attributed hit is right.
        self.assertGreater(len(good), 0)

    def test_keep_alive_python_client(self):
        script = textwrap.dedent(f"""
            import http.client, os, sys
            print(os.getpid(), flush=True)
            c = http.client.HTTPConnection("169.254.169.254", 80, timeout=5)
            for i in range({N}):
                c.request("GET", "/latest/meta-data/keepalive", headers={{"Connection": "keep-alive"}})
                c.getresponse().read()
            """)
        path = os.path.join(LAB.tmpdir, "keepalive_client.py")
        with open(path, "w") as f:
            f.write(script)
        r = LAB.run(LAB.inst, [sys.executable, path], timeout=120)
        pid = int(r.stdout.split()[0])
        hits = self.daemon.take_hits(N, timeout=30)
        self.assertEqual(len(hits), N)
        srcs = {h["src"] for h in hits}
        self.assertEqual(len(srcs), 1, "one connection expected")
        good = [h for h in hits if h["pid"] == pid]
        lablib.measure(f"keep-alive python: {len(good)}/{N} attributed ({100.0 * len(good) / N:.1f}%)")
        self.assertEqual(len(good), N)
        self.assertIn("keepalive_client.py", good[0]["cmdline"])
        self.assertIn("python3", good[0]["exe"])

    def test_another_user(self):
        LAB.run(LAB.inst, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "curl", "-s", "-o", "/dev/null", "--noproxy", "*", f"{URL4}/latest/meta-data/nobody"])
        hits = self.daemon.take_hits(1)
        self.assertEqual(len(hits), 1)
        h = hits[0]
        self.assertEqual(h["uid"], 65534)
        if h["pid"] < 0:
            self.skipTest("the curl exited before it was found (race; see the short-lived share)")
        self.assertEqual(h["owner"], "nobody")
        self.assertTrue(h["exe"].endswith("/curl"), h)

    def test_docker_style_cgroup(self):
        # Where Docker would put it: a v2 scope (unified or hybrid hierarchy), else a v1
        # hierarchy's /docker/<id>.
        candidates = []
        for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            if os.path.exists(os.path.join(root, "cgroup.controllers")):
                parent = os.path.join(root, "system.slice")
                candidates.append(os.path.join(parent if os.path.isdir(parent) else root,
                                               f"docker-{DOCKER_ID}.scope"))
        if os.path.isdir("/sys/fs/cgroup/pids") and not candidates:
            candidates.append(f"/sys/fs/cgroup/pids/docker/{DOCKER_ID}")
        if not candidates:
            self.skipTest("no writable cgroup hierarchy found")
        scope, reasons = None, []
        for candidate in candidates:
            try:
                os.makedirs(candidate, exist_ok=True)
                scope = candidate
                break
            except OSError as e:
                reasons.append(f"{candidate}: {e}")
        if scope is None:
            self.skipTest("cannot create a cgroup: " + "; ".join(reasons))
        try:
            # `ip netns exec` gives the shell its own /sys without the cgroup mounts, so the
            # test moves it (ip execs sh: same pid) before the shell starts curl; the sleep
            # after keeps the parent alive so this checks the cgroup reading, not the exit
            # race the short-lived test measures.
            proc = LAB.popen(LAB.inst, f"sleep 0.5; curl -s -o /dev/null --noproxy '*' "
                                       f"{URL4}/latest/meta-data/docker; sleep 0.5")
            try:
                with open(os.path.join(scope, "cgroup.procs"), "w") as f:
                    f.write(str(proc.pid))
            except OSError as e:
                LAB.stop(proc)
                self.skipTest(f"cannot move a process into {scope}: {e}")
            proc.wait(timeout=20)
            hits = self.daemon.take_hits(1)
        finally:
            for _ in range(50):
                try:
                    os.rmdir(scope)
                    break
                except OSError:
                    time.sleep(0.1)
            if scope.startswith("/sys/fs/cgroup/pids/docker/"):
                try:
                    os.rmdir("/sys/fs/cgroup/pids/docker")
                except OSError:
                    pass
        self.assertEqual(len(hits), 1)
        h = hits[0]
        if h["pid"] < 0:
            self.skipTest("the curl exited before it was found (race; see the short-lived share)")
        self.assertEqual(h.get("container"), f"docker://{DOCKER_ID}", h)

    def test_forwarded_from_the_container_namespace(self):
        # The runtime's state (CNI host-local IPAM) names the container behind the address.
        root = os.path.join(LAB.tmpdir, "runtime-root")
        net = os.path.join(root, "var", "lib", "cni", "networks", "lab")
        os.makedirs(net)
        with open(os.path.join(net, LAB.ADDR["ctr4"]), "w") as f:
            f.write(f"{DOCKER_ID}\neth0\n")
        self.daemon.stop()
        self.daemon = Daemon(LAB, "--fold-window", "0", "--container-state-root", root)
        LAB.curl(LAB.ctr, f"{URL4}/latest/meta-data/forwarded")
        hits = self.daemon.take_hits(1)
        self.assertEqual(len(hits), 1)
        h = hits[0]
        self.assertEqual(h["hook"], "prerouting")
        self.assertEqual(h["pid"], -1)
        self.assertTrue(h["src"].startswith(LAB.ADDR["ctr4"] + ":"), h)
        self.assertTrue(h.get("iface"), h)
        self.assertNotIn("exe", h)
        self.assertEqual(h.get("container"), f"cni://{DOCKER_ID}", h)


if __name__ == "__main__":
    run_tests(globals())
