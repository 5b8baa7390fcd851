#!/usr/bin/env python3
"""Keep-alive GETs (wrk -t2 -c8) against the floor consumer (nfq_accept_all: one read and one
verdict per packet; --batched-floor: its --batch mode, the daemon's reads and verdicts) and
daemon variants, interleaved,
in the namespace lab: a quick A/B of daemon builds or options without the whole table of
run_bench.py. Default payload-only rules; every daemon gets --fold-window 60, alerts to
test/bench/tiny_console.py, its event log in /dev/shm (tmpfs) when there is one.

    keepalive_variants.py [--rounds N] [--seconds S] NAME=[BINARY]|[DAEMON ARGS] ...

e.g.  keepalive_variants.py "daemon=|" "nomatch=|--blacklist /x" "old=/tmp/old/nfq-apeeper|"
An empty BINARY is the daemon scripts/bench would run (NFQ_APEEPER_BIN or build/nfq-apeeper);
BINARY @floor is the floor consumer with the ARGS as its options, e.g.
"floor-flags=@floor|--batch --daemon-flags".
Prints each run, then per variant the median req/s, the runs, and the median's ratio to the
floor's. NFQ_BENCH_PIN=1 pins wrk to CPU 0 and nginx to CPU 1 (see benchlib.py). Needs root.
"""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402
from benchlib import lablib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--batched-floor", action="store_true",
                    help="the floor reads and verdicts in batches, as the daemon does")
    ap.add_argument("variants", nargs="+", help="NAME=[BINARY]|[DAEMON ARGS]")
    args = ap.parse_args()
    variants = []
    for spec in args.variants:
        name, sep, rest = spec.partition("=")
        binary, _, daemon_args = rest.partition("|")
        if not sep or not name:
            ap.error(f"bad variant {spec!r}: NAME=[BINARY]|[ARGS]")
        variants.append((name, binary or B.daemon_binary(), daemon_args.split()))
    B.require_tools("wrk", "nginx")
    lab = lablib.Lab()
    lab.start()
    rates = {}
    try:
        console_url = B.prepare_lab(lab)
        lab.rules("install")
        events_dir = B.memory_event_dir() or lab.tmpdir
        for rnd in range(1, args.rounds + 1):
            for name, binary, daemon_args in [("floor", None, None)] + variants:
                if binary is None or binary == "@floor":
                    consumer = lab.start_accept_all(0, batch=args.batched_floor and binary is None,
                                                    options=daemon_args or ())
                else:
                    os.environ["NFQ_APEEPER_BIN"] = binary
                    consumer = B.LightDaemon(lab, "--fold-window", "60", *daemon_args, factory=console_url,
                                             events_dir=events_dir)
                try:
                    r = B.wrk(lab, threads=2, conns=8, seconds=args.seconds)
                finally:
                    if binary is None or binary == "@floor":
                        lab.stop(consumer)
                    else:
                        consumer.stop()
                        consumer.remove_event_log()
                    lab.wait_bound(lab.inst, 0, bound=False)
                if r["errors"] or r["non2xx"] or r["requests"] <= 0:
                    print(f"round {rnd} {name}: {r['errors']} socket errors, {r['non2xx']} non-2xx", flush=True)
                    return 1
                rates.setdefault(name, []).append(r["rps"])
                print(f"round {rnd} {name:12s} {r['rps']:10.0f} req/s", flush=True)
    finally:
        lab.close()
    floor = statistics.median(rates["floor"])
    print()
    for name, values in rates.items():
        med = statistics.median(values)
        runs = " ".join(f"{v:.0f}" for v in values)
        print(f"{name:12s} median {med:8.0f} req/s  /floor {med / floor:.3f}  runs {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
