"""Runs the real nfq-apeeper daemon inside a lab namespace and collects its events."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import lab as lablib  # noqa: E402

# Totals over every daemon this process ran, from their last counters lines.
TOTALS = {"daemons": 0, "packets": 0, "verdicts": 0, "verdict_errors": 0, "enobufs": 0,
          "kernel.queue_dropped": 0, "kernel.user_dropped": 0, "kernel.waiting": 0}


def _counters(line):
    out = {}
    for field in line.split():
        key, sep, value = field.partition("=")
        if sep and value.isdigit():
            out[key] = int(value)
    return out


def print_totals():
    lablib.measure("queue totals over this run: " + " ".join(f"{k}={v}" for k, v in TOTALS.items()))


def daemon_binary():
    path = os.environ.get("NFQ_APEEPER_BIN") or os.path.join(lablib.BINARY_DIR, "nfq-apeeper")
    if not os.access(path, os.X_OK):
        lablib.skip(f"daemon binary {path} not built")
    return path


class Daemon:
    """nfq-apeeper in lab.inst with --log-format json; .hits collects the event lines,
    .stderr_lines the diagnostics."""

    def __init__(self, lab, *args, queue_num=0, state_dir=None, wait=True, env=None):
        self.lab = lab
        self.queue_num = queue_num
        self.state_dir = state_dir or os.path.join(lab.tmpdir, f"state-{time.monotonic_ns()}")
        argv = [daemon_binary(), "--queue-num", str(queue_num), "--state-dir", self.state_dir,
                "--log-format", "json", *args]
        self.proc = lab.popen(lab.inst, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.hits = []
        self.stderr_lines = []
        self.stdout_raw = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()
        if wait:
            lab.wait_bound(lab.inst, queue_num, proc=self.proc)

    def _read(self, stream, is_stdout):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                if is_stdout:
                    self.stdout_raw.append(line)
                    try:
                        self.hits.append(json.loads(line))
                    except ValueError:
                        pass
                else:
                    self.stderr_lines.append(line)

    def wait_hits(self, n, timeout=5.0):
        """Waits until at least n hits arrived; returns a copy of all hits."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                if len(self.hits) >= n:
                    return list(self.hits)
            time.sleep(0.02)
        with self._lock:
            return list(self.hits)

    def take_hits(self, n, timeout=5.0, settle=0.3):
        """Waits for n hits, waits `settle` more for any extra, returns them and clears."""
        self.wait_hits(n, timeout)
        time.sleep(settle)
        with self._lock:
            hits, self.hits = self.hits, []
            return hits

    def wait_stderr(self, needle, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                for line in self.stderr_lines:
                    if needle in line:
                        return line
            time.sleep(0.02)
        return None

    def signal(self, sig):
        os.killpg(self.proc.pid, sig)

    def stop(self, timeout=10):
        code = self.lab.stop(self.proc, signal.SIGTERM, timeout)
        for t in self._threads:
            t.join(timeout=2)
        with self._lock:
            counters = [_counters(l) for l in self.stderr_lines if "counters:" in l]
            stopped = [_counters(l) for l in self.stderr_lines if "stopped:" in l]
        if stopped:
            TOTALS["daemons"] += 1
            for key in ("packets", "verdicts", "verdict_errors", "enobufs"):
                TOTALS[key] += stopped[-1].get(key, 0)
        if counters:
            for key in ("kernel.queue_dropped", "kernel.user_dropped", "kernel.waiting"):
                TOTALS[key] += counters[-1].get(key, 0)
        return code

    def all_output(self):
        with self._lock:
            return "\n".join(self.stdout_raw + self.stderr_lines)


def run_tests(module_globals):
    """The __main__ of an end-to-end test module: builds the lab (exit 77 where it cannot),
    sets the module's LAB, runs its unittest cases, prints the queue totals, tears down."""
    import unittest
    lab = lablib.Lab()
    module_globals["LAB"] = lab
    lab.start()
    try:
        result = unittest.main(exit=False, verbosity=2).result
        print_totals()
    finally:
        lab.close()
    sys.exit(0 if result.wasSuccessful() else 1)
