"""The nfq-apeeper demo: a namespace lab with the real daemon, the real rules and a mock
Canary console; real requests from the host and from a container; hits shown as they arrive.
Run through scripts/demo (which builds first). Ctrl-C tears everything down."""
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lab as lablib  # noqa: E402

BOLD, DIM, GREEN, CYAN, RESET = ("\033[1m", "\033[2m", "\033[32m", "\033[36m", "\033[0m") if sys.stdout.isatty() else ("",) * 5


def say(text):
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


QUIET = {"on": False, "skipped": 0}


def stream(pipe, prefix, colour):
    for raw in iter(pipe.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if QUIET["on"] and prefix == "HIT  ":
            QUIET["skipped"] += 1
            continue
        print(f"{colour}{prefix}{line}{RESET}", flush=True)


def main():
    daemon_bin = os.path.join(lablib.BINARY_DIR, "nfq-apeeper")
    if not os.access(daemon_bin, os.X_OK):
        sys.exit(f"demo: {daemon_bin} is not built (run scripts/demo)")
    with lablib.Lab() as lab:
        say(f"lab up: instance {lab.inst}, metadata service {lab.imds}, container {lab.ctr}")
        lab.start_imds()
        print(lab.rules("install").stdout.strip())

        record_dir = os.path.join(lab.tmpdir, "console")
        os.makedirs(record_dir)
        port_file = os.path.join(record_dir, "port")
        console = lab.popen(lab.inst, [sys.executable, os.path.join(lablib.SOURCE_DIR, "test", "alerting", "mock_console.py"),
                                       "--record-dir", record_dir, "--port-file", port_file])
        deadline = time.time() + 10
        while not (os.path.exists(port_file) and open(port_file).read().strip()) and time.time() < deadline:
            time.sleep(0.05)
        port = open(port_file).read().strip()
        factory = f"http://127.0.0.1:{port}/factory/demo"
        say(f"mock Canary console on 127.0.0.1:{port} inside the instance")

        state_dir = os.path.join(lab.tmpdir, "state")
        argv = [daemon_bin, "--state-dir", state_dir, "--fold-window", "5", "--instance-name", "demo-instance"]
        say("starting: nfq-apeeper " + " ".join(argv[1:]) + " (factory URL from NFQ_APEEPER_FACTORY)")
        env = dict(os.environ, NFQ_APEEPER_FACTORY=factory)
        daemon = lab.popen(lab.inst, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        threading.Thread(target=stream, args=(daemon.stdout, "HIT  ", GREEN), daemon=True).start()
        threading.Thread(target=stream, args=(daemon.stderr, "log  ", DIM), daemon=True).start()
        lab.wait_bound(lab.inst, 0, proc=daemon)
        status = lab.rules("status").stdout.strip().splitlines()
        rules = [line for line in status if line.strip().startswith(("IPv4:", "IPv6:"))]
        for line in status:
            if line not in rules:
                print(line)
        queue_rules = [r for r in rules if "NFQUEUE" in r or "queue num" in r]
        own = [r for r in rules if "own traffic" in r]
        jumps = len(rules) - len(queue_rules) - len(own)
        print(f"  (IPv4 and IPv6: {len(queue_rules)} queue rules, {jumps} jumps from the base chains, "
              f"{len(own)} rules letting the daemon's own traffic pass; "
              "'scripts/nfq-apeeper-rules status' lists them)")

        requests = [
            ("host, IPv4, IMDSv1", lab.inst, [f"{lablib.URL4}/latest/meta-data/instance-id"]),
            ("host, IPv6", lab.inst, [f"{lablib.URL6}/latest/meta-data/iam/security-credentials/"]),
            ("host, IMDSv2 token", lab.inst, [f"{lablib.URL4}/latest/api/token", "-X", "PUT",
                                              "-H", "X-aws-ec2-metadata-token-ttl-seconds: 21600"]),
            ("host, IMDSv2 read with that token", lab.inst, [f"{lablib.URL4}/latest/meta-data/iam/security-credentials/nfq-lab-role",
                                                             "-H", "X-aws-ec2-metadata-token: {token}"]),
            ("container, IPv4", lab.ctr, [f"{lablib.URL4}/latest/meta-data/placement/availability-zone"]),
            ("container, IPv6, dot-dot evasion", lab.ctr, [f"{lablib.URL6}/latest/meta-data/ami-id/../iam/security-credentials/",
                                                           "--path-as-is"]),
        ]
        print("(each hit names who asked: uid, pid, owner, cmdline of the local process; a curl that exits\n"
              " at once is sometimes gone before it is found (pid=-). Container traffic is forwarded: it has\n"
              " no local process, the hit names its source address and hook prerouting. docs/attribution.md)")
        token = ""
        for label, ns, args in requests:
            shown = " ".join(args).replace("{token}", "$TOKEN")
            args = [a.replace("{token}", token) for a in args]
            say(f"request from {label}: curl {shown}")
            reply = lab.curl(ns, args[0], *args[1:], check=False, include_headers=False)
            if "PUT" in args:
                token = reply.decode(errors="replace").strip()
            print(f"{CYAN}reply: {reply[:100]!r}{RESET}", flush=True)
            time.sleep(0.4)

        say("an SDK-style burst: one process, one kept-alive connection, 50 identical requests; the "
            "console gets the first at once and the other 49 as one follow-up hit with count=49 when "
            "the window closes (--fold-window 5)")
        QUIET["on"] = True
        role_url = f"{lablib.URL4}/latest/meta-data/iam/security-credentials/nfq-lab-role"
        lab.curl(lab.inst, role_url, *([role_url] * 49), check=False, include_headers=False)
        time.sleep(1)
        QUIET["on"] = False
        print(f"(the event log folds as the console does: {QUIET['skipped']} line(s) at once, not shown; "
              "the follow-up line with the rest of the count comes when the window closes)", flush=True)
        time.sleep(5)

        say("what the console received (mock console records)")
        try:
            for reg in lablib.read_jsonl(os.path.join(record_dir, "regs.jsonl")):
                print(f"registration: {reg.get('form', reg)}")
            for hit in lablib.read_jsonl(os.path.join(record_dir, "hits.jsonl")):
                q = hit.get("query", hit)
                shown = ("method", "url", "norm", "imds", "src", "uid", "pid", "owner", "cmdline", "count",
                         "flags")
                print("console hit: " + " ".join(f"{k}={v}" for k, v in q.items() if k in shown))
        except FileNotFoundError as e:
            print(f"(no console records: {e})")

        say("counters (SIGUSR1) and the kernel's queue table")
        os.killpg(daemon.pid, signal.SIGUSR1)
        time.sleep(0.5)
        stats = lab.queue_stats(lab.inst).get(0)
        print(f"queue 0: {stats}")
        say("stopping (SIGTERM), removing the rules, tearing the lab down")
        lab.stop(daemon)
        lab.stop(console)
        print(lab.rules("remove").stdout.strip())
    print("demo done", flush=True)


if __name__ == "__main__":
    main()
