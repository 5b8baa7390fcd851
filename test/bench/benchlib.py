"""Shared pieces of the benchmark and the overload tests (stdlib only): nginx standing in for
the metadata service, a tiny Canary console, wrk runs, the daemon started with its event log
in a file, and /proc readings (CPU time, peak RSS)."""
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import lab as lablib  # noqa: E402

BODY = "i-0123456789abcdef0"
PATH = "/latest/meta-data/instance-id"
STATUS_PORT = 8081  # nginx stub_status on imds 127.0.0.1 (never queued: not the metadata address)
CONSOLE_PORT = 8099  # tiny console on inst 127.0.0.1
CLK_TCK = os.sysconf("SC_CLK_TCK")


def daemon_binary():
    path = os.environ.get("NFQ_APEEPER_BIN") or os.path.join(lablib.BINARY_DIR, "nfq-apeeper")
    if not os.access(path, os.X_OK):
        lablib.skip(f"daemon binary {path} not built")
    return path


def require_tools(*tools):
    import shutil
    for tool in tools:
        if shutil.which(tool) is None:
            lablib.skip(f"{tool} not installed (apt-get install {tool.replace('nginx', 'nginx-light')})")


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  keepalive_requests 1000;  # nginx's default
  keepalive_timeout 120s;
  server {{
    listen 169.254.169.254:80 backlog=4096;
    listen [fd00:ec2::254]:80 backlog=4096;
    location / {{ default_type text/plain; return 200 "{body}"; }}
  }}
  server {{
    listen 127.0.0.1:{status};
    location / {{ stub_status; }}
  }}
}}
"""


# NFQ_BENCH_PIN=1: the load generator (wrk) on CPU 0 and nginx on CPU 1; the queue consumer
# (daemon or floor) is never pinned. On 2 vCPUs the scheduler's placement of four busy
# threads otherwise decides much of a run's rate.
CLIENT_CPU, SERVER_CPU = 0, 1


def pin_prefix(cpu):
    if os.environ.get("NFQ_BENCH_PIN") != "1" or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def start_nginx(lab):
    """nginx (1 worker) in lab.imds answering every path with a fixed body; returns Popen."""
    d = os.path.join(lab.tmpdir, "nginx")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=d, body=BODY, status=STATUS_PORT))
    p = lab.popen(lab.imds, [*pin_prefix(SERVER_CPU), "nginx", "-e", os.path.join(d, "nginx-error.log"),
                             "-p", d, "-c", conf])
    deadline = time.time() + 10
    while time.time() < deadline:
        r = lab.run(lab.imds, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               f"http://127.0.0.1:{STATUS_PORT}/"], check=False)
        if r.stdout.strip() == "200":
            return p
        if p.poll() is not None:
            break
        time.sleep(0.05)
    log = open(os.path.join(d, "nginx-error.log")).read() if os.path.exists(os.path.join(d, "nginx-error.log")) else ""
    raise RuntimeError(f"nginx did not start: {log.strip()[-500:]}")


def nginx_requests(lab):
    """nginx's request counter (stub_status). It includes earlier status queries but not this
    one; use served_since() for the requests between two readings."""
    out = lab.run(lab.imds, ["curl", "-s", f"http://127.0.0.1:{STATUS_PORT}/"]).stdout
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", out, re.M)
    return int(m.group(3))


def served_since(lab, n0):
    """Metadata requests nginx served since the reading n0 (the status query of n0 excluded)."""
    return nginx_requests(lab) - n0 - 1


def start_console(lab, mode="ok", port=CONSOLE_PORT):
    """test/bench/tiny_console.py on inst 127.0.0.1:port; mode ok|slow|reset|hang.
    Returns (Popen, factory URL)."""
    p = lab.popen(lab.inst, [sys.executable, os.path.join(HERE, "tiny_console.py"), "--port", str(port),
                             "--mode", mode, "--log", os.path.join(lab.tmpdir, f"console-{mode}-{port}.log")],
                  stdout=subprocess.PIPE)
    if p.stdout.readline().strip() != b"ready":
        raise RuntimeError("tiny_console did not start")
    return p, f"http://127.0.0.1:{port}/factory"


def prepare_lab(lab):
    """What every load run needs in a started lab: room for short-lived connections (a wide
    port range in inst; TIME_WAIT piles up in imds, whose server closes first, so it reuses),
    nginx as the metadata service, tiny_console.py answering "ok". Returns the factory URL."""
    lab.run(lab.inst, ["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"])
    lab.run(lab.imds, ["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])
    start_nginx(lab)
    _, factory_url = start_console(lab, "ok")
    return factory_url


DEAD_FACTORY = "http://127.0.0.1:1/factory"  # nothing listens: hits go to the spool


class LightDaemon:
    """The daemon in lab.inst with its event log (JSON lines) going to a file, not through
    Python, so reading it costs the benchmark nothing. hit_lines() counts them afterwards."""

    def __init__(self, lab, *args, factory=DEAD_FACTORY, state_dir=None, queue_num=0, wait=True,
                 events_dir=None):
        self.lab = lab
        n = time.monotonic_ns()
        self.state_dir = state_dir or os.path.join(lab.tmpdir, f"state-{n}")
        self.out_path = os.path.join(events_dir or lab.tmpdir, f"events-{lab.tag}-{n}.jsonl")
        self.err_path = os.path.join(lab.tmpdir, f"daemon-{n}.err")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        argv = [daemon_binary(), "--queue-num", str(queue_num), "--state-dir", self.state_dir,
                "--log-format", "json", "--factory", factory, *args]
        self.proc = lab.popen(lab.inst, argv, stdout=self._out, stderr=self._err)
        if wait:
            lab.wait_bound(lab.inst, queue_num, proc=self.proc)

    @property
    def pid(self):
        return self.proc.pid  # `ip netns exec` execs the daemon: same pid

    def cpu_seconds(self):
        return proc_cpu_seconds(self.pid)

    def peak_rss_kib(self):
        return proc_status_kib(self.pid, "VmHWM")

    def hit_lines(self):
        """Requests reported on the event log: the sum of the hits' counts (a summary hit
        flagged queue_overflow stands for the requests whose details the full queue lost)."""
        total = 0
        with open(self.out_path, "rb") as f:
            for line in f:
                m = re.search(rb'"count":(\d+)', line)
                total += int(m.group(1)) if m else 1
        return total

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        code = self.lab.stop(self.proc, sig, timeout)
        self._out.close()
        self._err.close()
        return code

    def remove_event_log(self):
        """For an event log outside lab.tmpdir (which the lab removes itself)."""
        try:
            os.unlink(self.out_path)
        except FileNotFoundError:
            pass


def memory_event_dir():
    """A tmpfs directory for event logs (/dev/shm), or None. At tens of thousands of hits a
    second the event log is tens of MB/s: on a disk its writeback (kernel threads, not the
    daemon) takes CPU from the client and server the benchmark measures."""
    d = "/dev/shm"
    try:
        with open("/proc/mounts") as f:
            tmpfs = any(line.split()[1] == d and line.split()[2] == "tmpfs" for line in f)
    except OSError:
        return None
    return d if tmpfs and os.access(d, os.W_OK) else None


def stat_ticks(path):
    """(command name, utime + stime in clock ticks) from a /proc/<pid>[/task/<tid>]/stat file."""
    with open(path) as f:
        text = f.read()
    fields = text.rsplit(")", 1)[1].split()
    return text[text.index("(") + 1:text.rindex(")")], int(fields[11]) + int(fields[12])


def proc_cpu_seconds(pid):
    """utime + stime of pid (all threads) in seconds."""
    return stat_ticks(f"/proc/{pid}/stat")[1] / CLK_TCK


def system_cpu_seconds():
    """(busy, all) CPU seconds of the whole machine since boot, summed over CPUs (/proc/stat):
    busy is everything but idle and iowait: wrk, nginx, the consumer and the kernel's network
    work wherever it runs. The lab's VM runs nothing else during a benchmark."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLK_TCK, sum(ticks) / CLK_TCK


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def parse_wrk(out):
    """{'rps', 'requests', 'errors', 'non2xx', 'p50_ms', 'p99_ms'} from wrk's report."""
    res = {"rps": 0.0, "requests": 0, "errors": 0, "non2xx": 0, "p50_ms": None, "p99_ms": None}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s*{pct}%\s+(\S+)", out, re.M)
        if m:
            res[key] = _ms(m.group(1))
    return res


def wrk(lab, threads, conns, seconds, close=False, latency=False, url=None):
    argv = [*pin_prefix(CLIENT_CPU), "wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    if latency:
        argv.append("--latency")
    argv.append(url or f"{lablib.URL4}{PATH}")
    r = lab.run(lab.inst, argv, timeout=seconds + 30)
    res = parse_wrk(r.stdout)
    res["raw"] = r.stdout
    return res


def settled_queue_stats(lab, queue_num=0, timeout=2.0):
    """Queue stats once nothing is waiting (packets of the last connections' close may still
    be in the queue right after the client exits), or the last reading after timeout."""
    deadline = time.time() + timeout
    while True:
        st = lab.queue_stats(lab.inst).get(queue_num)
        if st is None or st.waiting == 0 or time.time() > deadline:
            return st
        time.sleep(0.05)
