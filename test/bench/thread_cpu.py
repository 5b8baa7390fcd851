#!/usr/bin/env python3
"""CPU per request of each daemon thread under keep-alive load, in the namespace lab.

nginx stands in for the metadata service; default payload-only rules; the daemon with
--fold-window 60 (all paths unless options say otherwise), alerts to
test/bench/tiny_console.py, its event log in /dev/shm (tmpfs) when there is one, as in
run_bench.py; `wrk -t2 -c8` for 6 s. Prints each thread's CPU seconds (utime + stime from
/proc/<pid>/task/*/stat) and microseconds per request served. Threads: nfq-apeeper (the
packet thread: queue reads, parsing, verdicts), nfq-alerts (event lines, folding),
nfq-attribute (process lookup), nfq-console (delivery), nfq-spool (the spool's keeper). Needs root. Extra arguments go to the daemon. NFQ_BENCH_CLOSE=1: a new
connection per request (wrk -H 'Connection: close') instead of keep-alive. NFQ_BENCH_ONE_CONN=1:
one connection, one request in flight (wrk -t1 -c1, run_bench.py's latency workload).

  [NFQ_BENCH_CLOSE=1] [NFQ_BENCH_ONE_CONN=1] python3 test/bench/thread_cpu.py [daemon options]
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402
from benchlib import lablib  # noqa: E402


def thread_ticks(pid):
    return {tid: B.stat_ticks(f"/proc/{pid}/task/{tid}/stat")[1] for tid in os.listdir(f"/proc/{pid}/task")}


def process_ticks():
    """{pid: (command name, utime + stime ticks)} of every process. By pid: a kernel worker
    renames itself with its work, and a process that exits before the second reading (wrk)
    is not counted."""
    ticks = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                ticks[pid] = B.stat_ticks(f"/proc/{pid}/stat")
            except (OSError, ValueError):
                continue
    return ticks


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__.strip())
        return
    lab = lablib.Lab()
    lab.start()
    try:
        console_url = B.prepare_lab(lab)
        lab.rules("install")
        daemon = B.LightDaemon(lab, "--fold-window", "60", *sys.argv[1:], factory=console_url,
                               events_dir=B.memory_event_dir())
        time.sleep(1)
        before, served0 = thread_ticks(daemon.pid), B.nginx_requests(lab)
        machine0, processes0 = B.system_cpu_seconds(), process_ticks()
        one_conn = bool(os.environ.get("NFQ_BENCH_ONE_CONN"))
        r = B.wrk(lab, 1 if one_conn else 2, 1 if one_conn else 8, 6,
                  close=bool(os.environ.get("NFQ_BENCH_CLOSE")))
        after, served = thread_ticks(daemon.pid), B.nginx_requests(lab) - served0
        machine1, processes1 = B.system_cpu_seconds(), process_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        for tid in sorted(after):
            cpu = (after[tid] - before.get(tid, 0)) / hz
            try:
                with open(f"/proc/{daemon.pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                name = "?"
            print(f"thread {tid} {name}: {cpu:.2f} s CPU, {cpu / max(served, 1) * 1e6:.1f} us per request")
        print(f"requests served: {served}; {r['rps']:.0f} req/s")
        busy, total = machine1[0] - machine0[0], machine1[1] - machine0[1]
        print(f"machine: {busy / max(served, 1) * 1e6:.1f} us busy CPU per request, idle {100 * (1 - busy / total):.0f} %")
        by_name = {}
        for pid, (name, ticks) in processes1.items():
            by_name[name] = by_name.get(name, 0) + ticks - processes0.get(pid, (name, 0))[1]
        spent = sorted((ticks / hz, name) for name, ticks in by_name.items())
        print("processes (CPU s, us per request): " + ", ".join(
            f"{name} {cpu:.2f} {cpu / max(served, 1) * 1e6:.1f}" for cpu, name in reversed(spent[-6:]) if cpu > 0))
        daemon.stop()
        daemon.remove_event_log()
    finally:
        lab.close()


if __name__ == "__main__":
    main()
