#!/usr/bin/env python3
"""nfq-apeeper benchmark in the namespace lab: nginx stands in for the metadata service (imds
namespace), wrk is the client (inst namespace). Interleaved rounds of

  baseline             no rule
  floor                queue rule for every packet (--all-packets) + nfq_accept_all
  floor-payload        payload-only rules + nfq_accept_all
  floor-batched        --all-packets rules + nfq_accept_all --batch: the daemon's system
                       calls (one recvmmsg of up to 16 datagrams, one batch verdict) and
                       nothing else, the yardstick for the daemon's own work
  floor-payload-batched  the same with the payload-only rules
  nfq-apeeper          --all-packets rules + the daemon (all paths, --fold-window 60,
                       alerts to test/bench/tiny_console.py on the inst loopback)
  nfq-apeeper-payload  payload-only rules + the daemon
  nfq-apeeper-every-line  --all-packets rules + the daemon with --log-every-request: an
                       event line per request instead of the folded log (what that costs)
  nfq-apeeper-nomatch  --all-packets rules + the daemon with a blacklist the requests do not
                       match (--blacklist /latest/meta-data/iam/): every request is parsed
                       and filtered, none is a hit. The production case: a blacklist of the
                       credential paths, and a service that reads its instance id
  nfq-apeeper-payload-nomatch  the same with the payload-only rules

over three workloads: keep-alive GETs (wrk -t2 -c8), a new connection per request (the same
with 'Connection: close'), single-connection latency (wrk -t1 -c1 --latency). Prints a markdown
table: req/s median and spread, ratios (of medians, and round by round), p50/p99, packets
queued per request, daemon CPU seconds per 100k requests (the floor's consumer's too), the
whole machine's busy CPU per request and its idle share (from /proc/stat), ratios of those
CPU costs (independent of how the scheduler placed the busy threads, which the rates are
not), daemon peak RSS, packets per queue read, kernel queue counters.

    run_bench.py [--rounds N] [--seconds S] [--quick] [--json FILE] [--configs A,B]
                 [--pin] [--event-log-dir DIR]

The daemon's event log (folded as the console folds: a line per caller and path a minute;
with --log-every-request, nfq-apeeper-every-line, a JSON line per request, tens of MB/s) goes
to /dev/shm when that is a tmpfs, as a pipe to a log shipper would take it; on a disk its
writeback runs in kernel threads and takes CPU from wrk and nginx (--event-log-dir to choose).

--quick (CI): one short round of everything; checks only that it works (requests answered,
no socket errors, nothing dropped or left waiting, the daemon saw every request). Exit 0 ok,
1 failed check, 77 skipped (no root / netns / NFQUEUE / wrk / nginx / daemon binary).
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402
from benchlib import lablib  # noqa: E402

CONFIGS = ["baseline", "floor", "floor-payload", "floor-batched", "floor-payload-batched",
           "nfq-apeeper", "nfq-apeeper-payload", "nfq-apeeper-every-line", "nfq-apeeper-nomatch",
           "nfq-apeeper-payload-nomatch"]
NOMATCH_BLACKLIST = "/latest/meta-data/iam/"  # B.PATH is /latest/meta-data/instance-id
WORKLOADS = {
    "keep-alive": dict(threads=2, conns=8),
    "conn-per-req": dict(threads=2, conns=8, close=True),
    "latency-1conn": dict(threads=1, conns=1, latency=True),
}
# /floor: the daemon against the plain floor of its rule set, and a batched floor against the
# plain one (what batching alone buys). /batched floor: the daemon against the batched one.
FLOOR_OF = {"nfq-apeeper": "floor", "nfq-apeeper-payload": "floor-payload", "nfq-apeeper-every-line": "floor",
            "nfq-apeeper-nomatch": "floor", "nfq-apeeper-payload-nomatch": "floor-payload",
            "floor-batched": "floor", "floor-payload-batched": "floor-payload"}
BATCHED_FLOOR_OF = {"nfq-apeeper": "floor-batched", "nfq-apeeper-payload": "floor-payload-batched",
                    "nfq-apeeper-every-line": "floor-batched",
                    "nfq-apeeper-nomatch": "floor-batched",
                    "nfq-apeeper-payload-nomatch": "floor-payload-batched"}


class Bench:
    def __init__(self, lab, seconds, console_url, events_dir=None):
        self.lab = lab
        self.events_dir = events_dir
        self.seconds = seconds
        self.console_url = console_url
        self.samples = []  # dicts: config, workload, round, rps, p50_ms, p99_ms, ...
        self.rss = {}  # config -> max VmHWM KiB
        self.per_read = {}  # config -> [packets per queue read, one per round (all workloads)]
        self.problems = []

    def _setup(self, config):
        lab = self.lab
        if config == "baseline":
            lab.rules("remove")
            return None
        lab.rules("install", "--payload-only" if "payload" in config else "--all-packets")
        if config.startswith("floor"):
            return lab.start_accept_all(0, batch=config.endswith("-batched"))
        paths = ["--blacklist", NOMATCH_BLACKLIST] if config.endswith("nomatch") else []
        if config.endswith("every-line"):
            paths.append("--log-every-request")
        return B.LightDaemon(lab, "--fold-window", "60", *paths, factory=self.console_url,
                             events_dir=self.events_dir)

    def run_config(self, config, rnd):
        lab = self.lab
        consumer = self._setup(config)
        daemon = consumer if isinstance(consumer, B.LightDaemon) else None
        consumer_pid = consumer.pid if consumer is not None else None
        served = 0
        try:
            for name, spec in WORKLOADS.items():
                st0 = lab.queue_stats(lab.inst).get(0)
                cpu0 = B.proc_cpu_seconds(consumer_pid) if consumer_pid else 0.0
                busy0, all0 = B.system_cpu_seconds()
                res = B.wrk(lab, seconds=self.seconds, **spec)
                busy1, all1 = B.system_cpu_seconds()
                cpu1 = B.proc_cpu_seconds(consumer_pid) if consumer_pid else 0.0
                st1 = B.settled_queue_stats(lab)
                queued = (st1.id_sequence - st0.id_sequence) if (st0 and st1) else 0
                sample = {
                    "config": config, "workload": name, "round": rnd, "rps": res["rps"],
                    "requests": res["requests"], "errors": res["errors"], "non2xx": res["non2xx"],
                    "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
                    "queued_packets": queued,
                    "consumer_cpu_s": (cpu1 - cpu0) if consumer_pid else None,
                    "machine_busy_s": busy1 - busy0, "machine_all_s": all1 - all0,
                    "queue_waiting": st1.waiting if st1 else 0,
                    "queue_dropped": st1.queue_dropped if st1 else 0,
                    "user_dropped": st1.user_dropped if st1 else 0,
                }
                served += res["requests"]
                self.samples.append(sample)
                self._check(sample)
                lat = "" if res["p99_ms"] is None else f"  p50 {res['p50_ms']:.3f} ms p99 {res['p99_ms']:.3f} ms"
                print(f"  round {rnd} {config:27s} {name:14s} {res['rps']:10.0f} req/s{lat}"
                      f"  queued/req {queued / max(res['requests'], 1):.2f}", flush=True)
            if daemon:
                self.rss[config] = max(self.rss.get(config, 0), daemon.peak_rss_kib())
        finally:
            if daemon:
                code = daemon.stop()
                if code != 0:
                    self.problems.append(f"{config}: daemon exited {code}: {daemon.stderr()[-400:]}")
                hits = daemon.hit_lines()
                last = [l for l in daemon.stderr().splitlines() if "counters:" in l][-1:]
                got = dict(re.findall(r"([\w.]+)=(\d+)", last[0])) if last else {}
                if int(got.get("reads", 0)):
                    self.per_read.setdefault(config, []).append(int(got["packets"]) / int(got["reads"]))
                keys = ("requests", "hits", "events_dropped", "holes", "flows_evicted", "enobufs",
                        "retransmitted_bytes", "published", "spooled", "spool_write_errors")
                detail = " ".join(f"{k}={got.get(k)}" for k in keys)
                # wrk counts completed replies; a request in flight when wrk stops is seen too.
                if config.endswith("nomatch"):
                    if hits != 0 or int(got.get("requests", 0)) < served:
                        self.problems.append(f"{config} round {rnd}: expected every one of {served} requests "
                                             f"parsed and none reported; {hits} hits; " + detail)
                elif hits < served:
                    self.problems.append(f"{config} round {rnd}: daemon reported {hits} hits for {served} requests; "
                                         + detail)
                m = re.findall(r"enobufs=(\d+)", daemon.stderr())
                if m and int(m[-1]):
                    self.problems.append(f"{config} round {rnd}: daemon saw ENOBUFS {m[-1]} times")
                daemon.remove_event_log()
            elif consumer is not None:
                lab.stop(consumer)
            if consumer is not None:
                lab.wait_bound(lab.inst, 0, bound=False)

    def _check(self, s):
        where = f"{s['config']} {s['workload']} round {s['round']}"
        if s["requests"] <= 0 or s["rps"] <= 0:
            self.problems.append(f"{where}: no requests answered")
        if s["errors"] or s["non2xx"]:
            self.problems.append(f"{where}: {s['errors']} socket errors, {s['non2xx']} non-2xx replies")
        if s["queue_waiting"] or s["queue_dropped"] or s["user_dropped"]:
            self.problems.append(f"{where}: queue waiting {s['queue_waiting']} queue_dropped "
                                 f"{s['queue_dropped']} user_dropped {s['user_dropped']}")
        if s["config"] != "baseline" and s["queued_packets"] <= 0:
            self.problems.append(f"{where}: nothing was queued")


def _med(values):
    return statistics.median(values) if values else 0.0


# The targets' ratios, each also taken round by round: a round runs every configuration
# within a few minutes, so a ratio of the same round leaves out the VM's slower drift that
# the ratio of medians keeps (this VM's rounds of one configuration spread +-10-20 %).
TARGET_RATIOS = [("nfq-apeeper", "floor"), ("nfq-apeeper-payload", "floor-payload"),
                 ("nfq-apeeper-every-line", "floor"), ("nfq-apeeper-nomatch", "floor"),
                 ("nfq-apeeper-payload-nomatch", "floor-payload"),
                 ("nfq-apeeper", "floor-batched"), ("nfq-apeeper-payload", "floor-payload-batched"),
                 ("nfq-apeeper-payload", "baseline"), ("floor", "baseline")]


def paired_ratios(by):
    out = ["", "Ratios round by round (median of the rounds' ratios, min–max; 'payload/baseline "
           "against floor/baseline' is the beat-the-floor target):", "",
           "| ratio | " + " | ".join(WORKLOADS) + " |", "|---|" + "---:|" * len(WORKLOADS)]
    for a, b in TARGET_RATIOS:
        cells = []
        for w in WORKLOADS:
            ra = {x["round"]: x["rps"] for x in by.get((w, a), [])}
            rb = {x["round"]: x["rps"] for x in by.get((w, b), [])}
            rs = [ra[r] / rb[r] for r in sorted(ra) if r in rb and rb[r] > 0]
            cells.append(f"{_med(rs):.3f} ({min(rs):.2f}–{max(rs):.2f})" if rs else "")
        if any(cells):
            out.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
    return out + [""]


def machine_cost(by, w, c):
    """Busy CPU seconds of the whole machine per request, over every round of a cell."""
    v = by.get((w, c), [])
    reqs = sum(x["requests"] for x in v)
    return sum(x["machine_busy_s"] for x in v) / reqs if reqs else 0.0


def cost_ratios(by):
    """The targets' ratios from CPU cost instead of rate: the machine's busy CPU time per request
    of b over a's. In a run that keeps every CPU busy the two estimate the same thing; this one
    does not depend on where the scheduler put four busy threads on two CPUs, the main source
    of the rate's spread on this VM."""
    out = ["Ratios of CPU cost (the machine's busy CPU per request, b over a: the rate ratio a "
           "run would show if every CPU cycle went to the requests):", "",
           "| ratio | " + " | ".join(WORKLOADS) + " |", "|---|" + "---:|" * len(WORKLOADS)]
    for a, b in TARGET_RATIOS:
        cells = []
        for w in WORKLOADS:
            ca, cb = machine_cost(by, w, a), machine_cost(by, w, b)
            cells.append(f"{cb / ca:.3f}" if ca and cb else "")
        if any(cells):
            out.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
    return out + [""]


def report(bench, args, started, elapsed):
    s = bench.samples
    by = {}
    for x in s:
        by.setdefault((x["workload"], x["config"]), []).append(x)
    med = {k: _med([x["rps"] for x in v]) for k, v in by.items()}
    out = []
    rounds = max((x["round"] for x in s), default=0)
    out.append(f"nfq-apeeper benchmark, {rounds} round(s) x {bench.seconds} s per workload, interleaved; "
               f"{started}, {elapsed:.0f} s total; kernel {os.uname().release}, {os.cpu_count()} CPUs; "
               f"daemon event log in {bench.events_dir}; "
               + ("wrk pinned to CPU 0, nginx to CPU 1 (NFQ_BENCH_PIN=1)" if B.pin_prefix(0) else "nothing pinned"))
    out.append("")
    out.append("| workload | config | req/s median | min–max | /floor | /batched floor | /baseline | p50 ms "
               "| p99 ms | queued pkts/req | consumer CPU s/100k req | machine CPU µs/req | idle % | dropped / waiting |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in WORKLOADS:
        base = med.get((w, "baseline"), 0)
        for c in CONFIGS:
            v = by.get((w, c))
            if not v:
                continue
            rps = [x["rps"] for x in v]
            m = med[(w, c)]
            floor = FLOOR_OF.get(c)
            vs_floor = f"{m / med[(w, floor)]:.3f}" if floor and med.get((w, floor)) else ""
            batched = BATCHED_FLOOR_OF.get(c)
            vs_batched = f"{m / med[(w, batched)]:.3f}" if batched and med.get((w, batched)) else ""
            vs_base = f"{m / base:.3f}" if base and c != "baseline" else ""
            p50 = [x["p50_ms"] for x in v if x["p50_ms"] is not None]
            p99 = [x["p99_ms"] for x in v if x["p99_ms"] is not None]
            reqs = sum(x["requests"] for x in v)
            qpr = f"{sum(x['queued_packets'] for x in v) / max(reqs, 1):.2f}" if c != "baseline" else "–"
            cpu = [x["consumer_cpu_s"] for x in v if x["consumer_cpu_s"] is not None]
            cpu_s = f"{sum(cpu) / max(reqs, 1) * 1e5:.2f}" if cpu else "–"
            drops = (f"{sum(x['queue_dropped'] + x['user_dropped'] for x in v)} / "
                     f"{max(x['queue_waiting'] for x in v)}") if c != "baseline" else "–"
            lat = f"{_med(p50):.3f} | {_med(p99):.3f}" if p50 else "– | –"
            machine_all = sum(x["machine_all_s"] for x in v)
            idle = f"{100 * (1 - sum(x['machine_busy_s'] for x in v) / machine_all):.0f}" if machine_all else "–"
            out.append(f"| {w} | {c} | {m:.0f} | {min(rps):.0f}–{max(rps):.0f} | {vs_floor} | {vs_batched} | "
                       f"{vs_base} | {lat} | {qpr} | {cpu_s} | {machine_cost(by, w, c) * 1e6:.1f} | {idle} | "
                       f"{drops} |")
    out.append("")
    out.append("/floor: against the floor with the same rule set (all packets: floor; payload only: "
               "floor-payload; for a batched floor: its plain sibling, what batching alone buys); "
               "/batched floor: against the same rules' --batch floor. consumer CPU: the daemon's, or nfq_accept_all's for the floor. "
               "machine CPU: busy CPU time of the whole machine (wrk, nginx, consumer, kernel) per "
               "request; idle %: the machine's idle share during the runs (0: CPU-bound). "
               "dropped = queue_dropped + user_dropped summed over the runs; waiting = the most packets "
               "left waiting after a run.")
    out.extend(paired_ratios(by))
    out.extend(cost_ratios(by))
    for c, kib in sorted(bench.rss.items()):
        out.append(f"Daemon peak RSS (VmHWM, max over rounds), {c}: {kib / 1024:.1f} MiB")
    for c, values in sorted(bench.per_read.items()):
        out.append(f"Daemon packets per queue read (its counters; median over rounds, all workloads), {c}: "
                   f"{_med(values):.2f}")
    if args.quick:
        out.append("")
        out.append("QUICK MODE: one 1-second sample per cell. The checks (below) are what it is for; "
                   "its rates and ratios are not measurements.")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="CI: 1 round of 1 s each, no timing claims")
    ap.add_argument("--json", help="write the raw samples here")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    ap.add_argument("--pin", action="store_true",
                    help="wrk on CPU 0 and nginx on CPU 1, the consumer free (= NFQ_BENCH_PIN=1)")
    ap.add_argument("--event-log-dir", default=None,
                    help="where the daemon's event log goes (default: /dev/shm when it is a tmpfs, "
                         "else the lab's scratch directory on disk)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1
    if args.pin:
        os.environ["NFQ_BENCH_PIN"] = "1"
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        if c not in CONFIGS:
            ap.error(f"unknown config {c}")
    B.require_tools("wrk", "nginx")
    if any(c.startswith("nfq-apeeper") for c in configs):
        B.daemon_binary()

    lab = lablib.Lab()
    lab.start()
    events_dir = None
    try:
        console_url = B.prepare_lab(lab)
        events_dir = args.event_log_dir or B.memory_event_dir() or lab.tmpdir
        print(f"daemon event log in {events_dir}", flush=True)
        bench = Bench(lab, args.seconds, console_url, events_dir)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        t0 = time.time()
        for rnd in range(1, args.rounds + 1):
            # Rotate the order each round so slow drift (thermal, noisy neighbours) spreads evenly.
            order = configs[(rnd - 1) % len(configs):] + configs[:(rnd - 1) % len(configs)]
            for config in order:
                bench.run_config(config, rnd)
        text = report(bench, args, started, time.time() - t0)
        print()
        print(text)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"samples": bench.samples, "rss_kib": bench.rss}, f, indent=1)
        if bench.problems:
            print("\nPROBLEMS:\n  " + "\n  ".join(bench.problems))
            return 1
        print("\nchecks: every request answered, no socket errors, no queue drops, nothing left "
              "waiting, the daemon reported every request (nomatch: parsed every request, reported none)")
        return 0
    finally:
        for leftover in glob.glob(os.path.join(events_dir, f"events-{lab.tag}-*")) if events_dir else []:
            os.unlink(leftover)
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
