"""Case R7 on the real kernel path: 5000 stalled half-requests, twice, against a service that
never answers. The daemon's resident memory stays flat (bounded by the flow-table cap),
evictions are counted and reported, no packet is left waiting or dropped, and a normal request
afterwards is still seen at once."""
import os
import re
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from daemon_harness import Daemon, lablib, run_tests  # noqa: E402

LAB = None
FLOWS = int(os.environ.get("NFQ_FLOOD_FLOWS", "5000"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def daemon_pid(proc):
    # popen runs `ip netns exec`, which execs the daemon: same pid.
    return proc.pid


class FloodTest(unittest.TestCase):
    def test_stalled_half_requests_keep_memory_flat(self):
        sink = LAB.popen(LAB.imds, [sys.executable, os.path.join(lablib.HERE, "stall_server.py")], stdout=subprocess.PIPE)
        self.assertEqual(sink.stdout.readline().strip(), b"ready")
        LAB.rules("install")
        d = Daemon(LAB, "--flow-table-cap", "1024", "--no-stdout")
        pid = daemon_pid(d.proc)
        rss = [rss_kib(pid)]
        for round_ in range(2):
            r = LAB.run(LAB.inst, [sys.executable, os.path.join(lablib.HERE, "stall_clients.py"), lablib.IMDS4,
                                   "--count", str(FLOWS), "--hold", "1"], timeout=300)
            self.assertEqual(int(r.stdout.strip()), FLOWS)
            # The closes just queued a burst of FINs: the backlog must drain at once.
            start = time.monotonic()
            while LAB.queue_stats(LAB.inst)[0].waiting and time.monotonic() - start < 5:
                time.sleep(0.01)
            stats = LAB.queue_stats(LAB.inst)[0]
            print(f"round {round_}: queue backlog drained in {time.monotonic() - start:.3f} s", flush=True)
            self.assertEqual((stats.waiting, stats.queue_dropped, stats.user_dropped), (0, 0, 0))
            rss.append(rss_kib(pid))
        d.signal(signal.SIGUSR1)
        line = d.wait_stderr("counters:")
        self.assertIsNotNone(line)
        fields = dict(f.split("=", 1) for f in line.split("counters: ", 1)[1].split() if "=" in f)
        lablib.measure(f"RSS KiB: start={rss[0]} after {FLOWS} flows={rss[1]} after {2 * FLOWS}={rss[2]}; "
              f"flows_evicted={fields['flows_evicted']} flows_closed={fields['flows_closed']} "
              f"packets={fields['packets']}")
        self.assertGreater(int(fields["flows_evicted"]), 0)
        self.assertLessEqual(int(fields["flows"]), 1024)
        # Flat: the second flood adds no more than a small slack over the first.
        self.assertLess(rss[2] - rss[1], 2048, rss)
        self.assertEqual(d.stop(), 0)
        LAB.stop(sink)


if __name__ == "__main__":
    run_tests(globals())
