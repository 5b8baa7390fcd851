#!/usr/bin/env python3
"""System-wide perf profiles of keep-alive load (wrk -t2 -c8) in the namespace lab, one per
consumer, to see where the CPU goes with the daemon against the floor.

    python3 test/bench/perf_profile.py [--seconds S] [--close] [--rules payload|all] CONSUMER...

CONSUMER: floor (nfq_accept_all), floor-batched (its --batch mode), daemon (all paths,
--fold-window 60, alerts to test/bench/tiny_console.py, event log on tmpfs). For each: a
2 s warm-up, then `perf record -a -g -F 1999` for S seconds (default 8) while wrk runs; the
data goes to /tmp/nfq-profile-CONSUMER.data, and the per-command share of the samples, the
request rate and the machine's busy CPU per request are printed. Read further with e.g.
  perf report -i /tmp/nfq-profile-daemon.data --no-children --sort comm,dso -g none
--close: a new connection per request. Needs root and perf (linux-perf).
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402
from benchlib import lablib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--close", action="store_true", help="a new connection per request")
    ap.add_argument("--rules", choices=("payload", "all"), default="payload")
    ap.add_argument("consumers", nargs="+", choices=("floor", "floor-batched", "daemon"))
    args = ap.parse_args()
    B.require_tools("wrk", "nginx")
    import shutil
    if shutil.which("perf") is None:
        lablib.skip("perf not installed (apt-get install linux-perf)")
    lab = lablib.Lab()
    lab.start()
    try:
        console_url = B.prepare_lab(lab)
        lab.rules("install", "--payload-only" if args.rules == "payload" else "--all-packets")
        events_dir = B.memory_event_dir() or lab.tmpdir
        for name in args.consumers:
            if name.startswith("floor"):
                consumer = lab.start_accept_all(0, batch=name == "floor-batched")
            else:
                consumer = B.LightDaemon(lab, "--fold-window", "60", factory=console_url, events_dir=events_dir)
            try:
                B.wrk(lab, threads=2, conns=8, seconds=2, close=args.close)
                data = f"/tmp/nfq-profile-{name}.data"
                perf = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "1999", "-o", data, "--",
                                         "sleep", str(args.seconds)], stderr=subprocess.DEVNULL)
                busy0, _ = B.system_cpu_seconds()
                r = B.wrk(lab, threads=2, conns=8, seconds=args.seconds, close=args.close)
                busy1, _ = B.system_cpu_seconds()
                perf.wait()
            finally:
                if name.startswith("floor"):
                    lab.stop(consumer)
                else:
                    consumer.stop()
                    consumer.remove_event_log()
                lab.wait_bound(lab.inst, 0, bound=False)
            print(f"== {name}: {r['rps']:.0f} req/s, machine busy CPU {1e6 * (busy1 - busy0) / max(r['requests'], 1):.1f} "
                  f"us/request; {data}", flush=True)
            report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "comm", "-q",
                                     "-g", "none"], capture_output=True, text=True)
            print("\n".join(report.stdout.splitlines()[:8]), flush=True)
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
