"""Overload and fault tests in the lab (nginx as the metadata service, wrk / curl as clients,
the real daemon behind the default payload-only rules):

  sustained   load at ~80% of the floor's rate (floor = nfq_accept_all, measured first):
              no request fails, the kernel drops nothing, hits add up to requests served
  stop_cont   kill -STOP for 5 s under load (queue-maxlen 64), then CONT: overflow is
              answered (fail-open), held requests complete after CONT; held count/duration
  kill9       kill -9 and restart every second under a loop of curl: no request fails
  console     console hanging / slow (10 s) / resetting / down: packet path unaffected
  disk_full   state dir on a full 64 KiB tmpfs: the daemon keeps verdicting, says so, and
              spools again once space returns

Durations are short by default (CI, the whole file < 4 min); NFQ_OVERLOAD_FULL=1 gives the
issue's 60 s sustained load and 30 s of kill -9. Measurements are printed as MEASURE lines
(docs/performance.md quotes them)."""
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
import benchlib as B  # noqa: E402
from benchlib import lablib  # noqa: E402

FULL = os.environ.get("NFQ_OVERLOAD_FULL") == "1"
SUSTAIN_S = 60 if FULL else 10
KILL_LOOP_S = 30 if FULL else 10
LAB = None
CONSOLE_URL = None


measure = lablib.measure


def wait_registered(d, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "registered" in d.stderr():
            return True
        time.sleep(0.05)
    return False


def usr1_counters(d):
    """SIGUSR1, then the last counters line as a dict."""
    n = d.stderr().count("counters:")
    d.proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + 3
    while time.time() < deadline and d.stderr().count("counters:") == n:
        time.sleep(0.05)
    line = [l for l in d.stderr().splitlines() if "counters:" in l][-1]
    return {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", line)}


class OverloadTest(unittest.TestCase):
    def setUp(self):
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            if d.proc.poll() is None:
                os.kill(d.pid, signal.SIGCONT)
                d.stop()
        LAB.wait_bound(LAB.inst, 0, bound=False)

    def daemon(self, *args, factory=None, **kw):
        d = B.LightDaemon(LAB, *args, factory=factory or CONSOLE_URL, **kw)
        self.daemons.append(d)
        return d

    def assertQueueClean(self, where):
        st = B.settled_queue_stats(LAB)
        if st is not None:
            self.assertEqual((st.waiting, st.queue_dropped, st.user_dropped), (0, 0, 0), where)

    def test_1_sustained_load_at_80pct_of_floor(self):
        floor = LAB.start_accept_all(0)
        f = B.wrk(LAB, 2, 8, 3)
        LAB.stop(floor)
        LAB.wait_bound(LAB.inst, 0, bound=False)
        target = 0.8 * f["rps"]
        # wrk has no rate limit: each connection waits 1 ms before each request (Lua delay()),
        # so a connection makes at most 1000 requests/s (~450/s measured here with the client,
        # nginx and the daemon on 2 shared CPUs); pick the connection count from that.
        script = os.path.join(LAB.tmpdir, "delay.lua")
        with open(script, "w") as fh:
            fh.write("function delay()\n  return 1\nend\n")
        conns = max(2, math.ceil(target / 450))
        d = self.daemon("--fold-window", "0")
        self.assertTrue(wait_registered(d), d.stderr())
        time.sleep(1)  # the daemon's own (marked, unqueued) metadata look-ups around registration
        n0 = B.nginx_requests(LAB)
        r = LAB.run(LAB.inst, ["wrk", "-t2", f"-c{conns}", f"-d{SUSTAIN_S}s", "--timeout", "5s", "-s", script,
                               f"{lablib.URL4}{B.PATH}"], timeout=SUSTAIN_S + 30)
        res = B.parse_wrk(r.stdout)
        self.assertQueueClean("sustained")
        time.sleep(0.5)
        served = B.served_since(LAB, n0)
        c = usr1_counters(d)
        self.assertEqual(d.stop(), 0)
        hits = d.hit_lines()
        measure(f"sustained: floor {f['rps']:.0f} req/s, target {target:.0f}, achieved {res['rps']:.0f} req/s "
                f"({conns} connections, {SUSTAIN_S} s); served {served}, hits {hits}, errors {res['errors']}, "
                f"non2xx {res['non2xx']}, enobufs {c.get('enobufs')}, events_dropped {c.get('events_dropped')}, "
                f"overflow_summaries {c.get('overflow_summaries')}, holes {c.get('holes')}")
        self.assertEqual((res["errors"], res["non2xx"]), (0, 0), r.stdout)
        self.assertGreater(res["requests"], 0)  # the rate reached is measured, not asserted (shared CPUs)
        self.assertEqual(hits, served, "hits do not add up to requests served")
        self.assertEqual((c.get("enobufs"), c.get("holes")), (0, 0))
        # With --fold-window 0 every request is its own hit; on a loaded machine the alert
        # thread can fall behind and the event ring fill. That is a cap, not a loss: the
        # requests it could not carry one by one travel in queue_overflow summaries, which
        # the count sum above already includes.
        if c.get("events_dropped"):
            self.assertGreater(c.get("overflow_summaries", 0), 0, "events dropped without a summary")

    def test_2_stop_and_cont_under_load(self):
        maxlen, stop_s = 64, 5
        d = self.daemon("--fold-window", "60", "--queue-maxlen", str(maxlen))
        total = 1 + stop_s + 3
        wrk = LAB.popen(LAB.inst, ["wrk", "-t2", "-c150", f"-d{total}s", "--timeout", "15s", "--latency",
                                   "-H", "Connection: close", f"{lablib.URL4}{B.PATH}"], stdout=subprocess.PIPE)
        time.sleep(1)
        os.kill(d.pid, signal.SIGSTOP)
        t_stop = time.time()
        time.sleep(0.5)
        n_a = B.nginx_requests(LAB)
        peak = 0
        while time.time() - t_stop < stop_s:
            st = LAB.queue_stats(LAB.inst).get(0)
            peak = max(peak, st.waiting if st else 0)
            time.sleep(0.2)
        n_b = B.served_since(LAB, n_a) + n_a
        st_stopped = LAB.queue_stats(LAB.inst).get(0)
        os.kill(d.pid, signal.SIGCONT)
        out, _ = wrk.communicate(timeout=total + 30)
        out = out.decode()
        res = B.parse_wrk(out)
        m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
        max_latency_ms = B._ms(m.group(3)) if m else None
        self.assertQueueClean("after CONT")
        self.assertIsNone(d.proc.poll(), "daemon died")
        c = usr1_counters(d)
        passed_rate = (n_b - n_a) / (stop_s - 0.5)
        measure(f"stop_cont: queue-maxlen {maxlen}, STOP {stop_s} s under wrk -c150 conn-per-request: "
                f"peak waiting {peak} (= held requests), answered while stopped {n_b - n_a} "
                f"({passed_rate:.0f} req/s, fail-open), kernel queue_dropped {st_stopped.queue_dropped}, "
                f"max latency {max_latency_ms} ms, wrk errors {res['errors']}, total {res['requests']} requests, "
                f"daemon holes {c.get('holes')} enobufs {c.get('enobufs')}")
        lost = [l for l in d.stderr().splitlines() if re.search(r"full|fail.open|lost|overflow", l, re.I)]
        measure(f"stop_cont: daemon lines about lost visibility: {lost[:3] or 'none'}")
        self.assertEqual(res["errors"], 0, out)
        self.assertEqual(peak, maxlen, "the queue should have filled while the daemon was stopped")
        self.assertGreater(n_b - n_a, 0, "nothing answered while the daemon was stopped (fail-open)")
        # How long the held requests waited is measured, not asserted: their packets wait for
        # CONT, but TCP retransmits a held SYN after 1 s (and held data after its RTO), and the
        # copy passes by fail-open while the queue is full, so many finish long before CONT.
        self.assertTrue(any("stalled" in l for l in lost), "the daemon must report the lost visibility")
        self.assertGreaterEqual(c.get("loop_stalls", 0), 1)
        # The 64 held packets were waiting at CONT: a read takes several at once, and one
        # verdict each read accepts them all. Every packet read is accepted, exactly once.
        measure(f"stop_cont: packets {c.get('packets')} in {c.get('reads')} reads, "
                f"{c.get('verdict_messages')} verdict messages, verdicts {c.get('verdicts')}")
        self.assertEqual(c.get("verdicts"), c.get("packets"))
        self.assertLess(c.get("reads"), c.get("packets"), "no read found more than one packet waiting")
        self.assertGreaterEqual(c.get("verdict_messages"), c.get("reads"))

    def test_3_kill9_and_restart_every_second(self):
        state = os.path.join(LAB.tmpdir, "state-kill9")
        d = self.daemon("--fold-window", "60", state_dir=state)
        loop = LAB.popen(LAB.inst, f"ok=0; fail=0; end=$(( $(date +%s) + {KILL_LOOP_S} )); "
                                   f"while [ $(date +%s) -lt $end ]; do "
                                   f"if curl -sS -o /dev/null --retry 0 --max-time 5 '{lablib.URL4}{B.PATH}'; "
                                   f"then ok=$((ok+1)); else fail=$((fail+1)); fi; done; echo $ok $fail",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        restarts = 0
        while loop.poll() is None:
            time.sleep(1)
            if loop.poll() is not None:
                break
            os.kill(d.pid, signal.SIGKILL)
            d.proc.wait()
            d = self.daemon("--fold-window", "60", state_dir=state)
            restarts += 1
        out, err = loop.communicate()
        ok, fail = (int(x) for x in out.decode().split())
        measure(f"kill9: {restarts} kill -9 + restarts in {KILL_LOOP_S} s, {ok} requests ok, {fail} failed")
        self.assertEqual(fail, 0, err.decode()[-500:])
        self.assertGreater(ok, 10)
        self.assertGreater(restarts, KILL_LOOP_S // 2)
        self.assertQueueClean("kill9")

    def test_4_console_faults_leave_packet_path_alone(self):
        results = {}
        for i, mode in enumerate(("ok", "hang", "slow", "reset", "down")):
            if mode == "down":
                con, url = None, B.DEAD_FACTORY
            else:
                con, url = B.start_console(LAB, mode, port=B.CONSOLE_PORT + 1 + i)
            d = self.daemon("--fold-window", "0", "--backoff-max-ms", "2000", factory=url)
            if mode == "ok":
                self.assertTrue(wait_registered(d), d.stderr())
            time.sleep(1)  # the daemon's own (marked, unqueued) metadata look-ups at start
            n0 = B.nginx_requests(LAB)
            res = B.wrk(LAB, 2, 8, 3)
            self.assertQueueClean(f"console {mode}")
            time.sleep(0.3)
            served = B.served_since(LAB, n0)
            c = usr1_counters(d)
            self.assertEqual(d.stop(timeout=20), 0, f"console {mode}: {d.stderr()[-300:]}")
            hits = d.hit_lines()
            measure(f"console {mode}: {res['rps']:.0f} req/s, completed {res['requests']}, served {served}, "
                    f"hits {hits}, requests {c.get('requests')}, events_dropped {c.get('events_dropped')}, "
                    f"holes {c.get('holes')}, stdout.write_errors {c.get('stdout.write_errors')}")
            results[mode] = res["rps"]
            self.assertEqual((res["errors"], res["non2xx"]), (0, 0), f"console {mode}")
            # While registration keeps failing, the daemon retries it, and each attempt makes its
            # own metadata look-ups (marked, never queued, but served by nginx): a few extra.
            self.assertGreaterEqual(hits, res["requests"], f"console {mode}: hits vs completed requests")
            self.assertLessEqual(hits, served, f"console {mode}")
            self.assertGreaterEqual(hits, served - 30, f"console {mode}: hits vs served")
            if con is not None:
                LAB.stop(con)
        measure("console: keep-alive req/s by console state: " + ", ".join(f"{k} {v:.0f}" for k, v in results.items()))

    def test_5_disk_full_state_dir(self):
        mnt = os.path.join(LAB.tmpdir, "smallfs")
        os.makedirs(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt], check=True)
        try:
            state = os.path.join(mnt, "state")
            d = self.daemon("--fold-window", "0", state_dir=state, factory=B.DEAD_FACTORY)
            filler = os.path.join(mnt, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
            n0 = B.nginx_requests(LAB)
            res = B.wrk(LAB, 2, 8, 2)
            self.assertEqual((res["errors"], res["non2xx"]), (0, 0))
            self.assertQueueClean("disk full")
            time.sleep(0.5)
            served = B.served_since(LAB, n0)
            c_full = usr1_counters(d)
            said = [l for l in d.stderr().splitlines() if re.search(r"spool|space|ENOSPC|disk", l, re.I)
                    and "counters:" not in l]
            os.unlink(filler)
            for _ in range(20):
                LAB.curl(LAB.inst, f"{lablib.URL4}/latest/meta-data/after-space-returns")
            time.sleep(2)
            c_after = usr1_counters(d)
            self.assertEqual(d.stop(), 0)
            hits = d.hit_lines()
            measure(f"disk_full: {served} requests served while full, hits {hits}; spool_write_errors "
                    f"{c_full.get('spool_write_errors')} spool_memory_only {c_full.get('spool_memory_only')}; "
                    f"after freeing: spool_records {c_after.get('spool_records')} spool_bytes "
                    f"{c_after.get('spool_bytes')} write_errors {c_after.get('spool_write_errors')}; "
                    f"daemon said: {said[:2]}")
            self.assertGreaterEqual(hits, served)
            self.assertTrue(said, "the daemon should say the spool cannot be written")
        finally:
            subprocess.run(["umount", "-l", mnt], check=False)


if __name__ == "__main__":
    B.require_tools("wrk", "nginx")
    B.daemon_binary()
    LAB = lablib.Lab()
    LAB.start()
    try:
        CONSOLE_URL = B.prepare_lab(LAB)
        LAB.rules("install")
        result = unittest.main(exit=False, verbosity=2).result
    finally:
        LAB.close()
    sys.exit(0 if result.wasSuccessful() else 1)
