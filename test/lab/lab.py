"""Network-namespace lab for nfq-apeeper end-to-end tests and the demo (stdlib only).

Topology (all addresses exist only inside the namespaces created here):

    ctr  10.200.2.2/24 fd42:2::2/64 --veth-- inst 10.200.2.1/24 fd42:2::1/64
                                             inst 10.200.1.1/24 fd42:1::1/64 --veth-- imds 10.200.1.2/24 fd42:1::2/64
                                                                                      imds lo: 169.254.169.254/32, fd00:ec2::254/128

`inst` is the instance (runs the daemon and the firewall rules), `imds` holds the metadata
addresses (the mock service runs there), `ctr` is a container whose traffic `inst` routes
(IPv4 and IPv6 forwarding on in inst). Namespace names carry the creating pid so parallel runs
never clash; namespaces left by dead runs of the same prefix family are removed on start.

    with Lab() as lab:                 # skips (exit 77) without root / netns / NFQUEUE
        lab.start_imds()
        lab.rules("install")
        out = lab.curl(lab.inst, "http://169.254.169.254/latest/meta-data/")
"""
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("NFQ_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY_DIR = os.environ.get("NFQ_BINARY_DIR") or os.path.join(SOURCE_DIR, "build")
RULES_SCRIPT = os.path.join(SOURCE_DIR, "scripts", "nfq-apeeper-rules")

IMDS4 = "169.254.169.254"
IMDS6 = "fd00:ec2::254"
URL4 = f"http://{IMDS4}"
URL6 = f"http://[{IMDS6}]"
OWN_MARK = 0x4E46  # the daemon's SO_MARK; the rules never queue packets carrying it

PREFIX = "nfqlab"
NS_RE = re.compile(rf"^{PREFIX}-(\d+)-")


def measure(text):
    """Prints a measured figure as a MEASURE line and adds it, with the test's name, to
    $NFQ_BINARY_DIR/measurements.txt, which scripts/test prints at the end (ctest hides the
    output of passing tests)."""
    print(f"MEASURE {text}", flush=True)
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    try:
        with open(os.path.join(BINARY_DIR, "measurements.txt"), "a", encoding="utf-8") as f:
            f.write(f"{name}: {text}\n")
    except OSError:
        pass


def read_jsonl(path):
    """The complete records of a JSON-lines file another process is appending to: a last
    line without its newline is still being written and is left for the next read."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def skip(reason):
    """Prints one line and exits 77 (ctest: skipped)."""
    print(f"SKIP: {reason}", flush=True)
    sys.exit(77)


@dataclass
class QueueStats:
    queue: int
    portid: int  # 0: no process bound
    waiting: int  # queue_total: packets waiting for a verdict
    queue_dropped: int
    user_dropped: int
    id_sequence: int  # last packet id handed out: grows with every queued packet


def parse_queue_stats(text):
    """Parses /proc/net/netfilter/nfnetlink_queue: {queue: QueueStats}."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        q = int(f[0])
        out[q] = QueueStats(q, int(f[1]), int(f[2]), int(f[5]), int(f[6]), int(f[7]))
    return out


def _ns_list():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_ns_pids(ns):
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    for p in r.stdout.split():
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _delete_ns(ns):
    _kill_ns_pids(ns)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def clean_stale():
    """Deletes namespaces of this prefix family whose creating process is gone."""
    for ns in _ns_list() or []:
        m = NS_RE.match(ns)
        if m and not _pid_alive(int(m.group(1))):
            _delete_ns(ns)


def require_root_and_netns():
    if os.geteuid() != 0:
        skip("needs root (network namespaces, firewall rules)")
    for tool in ("ip", "iptables", "ip6tables", "curl"):
        if shutil.which(tool) is None:
            skip(f"{tool} not found")
    if _ns_list() is None:
        skip("'ip netns' does not work here")


class Lab:
    """Three namespaces (inst, imds, ctr) wired as in the module docstring.

    Attributes: inst, imds, ctr (namespace names); addresses in ADDR; tmpdir (per-lab scratch
    dir, removed at teardown). Teardown (also on exceptions, SIGINT, SIGTERM): kills every
    process it started and every process left in its namespaces, deletes the namespaces.
    """

    ADDR = {
        "inst_imds4": "10.200.1.1", "imds4": "10.200.1.2",
        "inst_imds6": "fd42:1::1", "imds6": "fd42:1::2",
        "inst_ctr4": "10.200.2.1", "ctr4": "10.200.2.2",
        "inst_ctr6": "fd42:2::1", "ctr6": "fd42:2::2",
    }

    def __init__(self, check_nfqueue=True):
        require_root_and_netns()
        self.tag = f"{PREFIX}-{os.getpid()}"
        self.inst = f"{self.tag}-inst"
        self.imds = f"{self.tag}-imds"
        self.ctr = f"{self.tag}-ctr"
        self.namespaces = [self.inst, self.imds, self.ctr]
        self.procs = []
        self.tmpdir = None
        self.imds_log = None
        self._check_nfqueue = check_nfqueue
        self._up = False
        self._old_handlers = {}

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        clean_stale()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        atexit.register(self.close)
        self._up = True
        self.tmpdir = tempfile.mkdtemp(prefix=f"{self.tag}-")
        try:
            self._build()
            if self._check_nfqueue:
                self._require_nfqueue()
        except BaseException:
            self.close()
            raise

    def _on_signal(self, signum, frame):
        self.close()
        sys.exit(128 + signum)

    def close(self):
        """Idempotent teardown."""
        if not self._up:
            return
        self._up = False
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for ns in self.namespaces:
            _delete_ns(ns)
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers = {}

    def _ip(self, *args):
        r = subprocess.run(["ip", *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")

    def _build(self):
        a = self.ADDR
        for ns in self.namespaces:
            self._ip("netns", "add", ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
            for key in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"):
                self.run(ns, ["sysctl", "-qw", key])
        # Veths are created inside the namespaces, so their names never clash with another lab.
        self._ip("-n", self.inst, "link", "add", "to-imds", "type", "veth", "peer", "name", "to-inst",
                 "netns", self.imds)
        self._ip("-n", self.inst, "link", "add", "to-ctr", "type", "veth", "peer", "name", "to-inst",
                 "netns", self.ctr)
        plan = [
            (self.inst, "to-imds", a["inst_imds4"], a["inst_imds6"]),
            (self.imds, "to-inst", a["imds4"], a["imds6"]),
            (self.inst, "to-ctr", a["inst_ctr4"], a["inst_ctr6"]),
            (self.ctr, "to-inst", a["ctr4"], a["ctr6"]),
        ]
        for ns, dev, v4, v6 in plan:
            self._ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            self._ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            self._ip("-n", ns, "link", "set", dev, "up")
        self._ip("-n", self.imds, "addr", "add", f"{IMDS4}/32", "dev", "lo")
        self._ip("-n", self.imds, "addr", "add", f"{IMDS6}/128", "dev", "lo", "nodad")
        self._ip("-n", self.imds, "route", "add", "default", "via", a["inst_imds4"])
        self._ip("-n", self.imds, "-6", "route", "add", "default", "via", a["inst_imds6"])
        self._ip("-n", self.inst, "route", "add", f"{IMDS4}/32", "via", a["imds4"])
        self._ip("-n", self.inst, "-6", "route", "add", f"{IMDS6}/128", "via", a["imds6"])
        self._ip("-n", self.ctr, "route", "add", "default", "via", a["inst_ctr4"])
        self._ip("-n", self.ctr, "-6", "route", "add", "default", "via", a["inst_ctr6"])
        self.run(self.inst, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        self.run(self.inst, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        # Link-local neighbours and tentative states settle in a few ms even with nodad.
        deadline = time.time() + 5
        while time.time() < deadline:
            out = "".join(self.run(ns, ["ip", "-6", "addr"], check=False).stdout for ns in self.namespaces)
            if "tentative" not in out:
                break
            time.sleep(0.05)

    def _require_nfqueue(self):
        r = self.run(self.inst, ["iptables", "-w", "-t", "mangle", "-A", "OUTPUT", "-d", "10.200.255.254",
                                 "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"], check=False)
        if r.returncode != 0:
            skip(f"iptables NFQUEUE target unusable: {r.stderr.strip().splitlines()[-1:]}")
        self.run(self.inst, ["iptables", "-w", "-t", "mangle", "-D", "OUTPUT", "-d", "10.200.255.254",
                             "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"])
        self.run(self.inst, ["nft", "flush", "ruleset"], check=False)  # start with an empty ruleset

    # --- processes -------------------------------------------------------------------------
    @staticmethod
    def _argv(ns, cmd):
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return ["ip", "netns", "exec", ns, *cmd]

    def run(self, ns, cmd, check=True, timeout=60, input=None, text=True, env=None):
        """Runs cmd (list, or str for sh -c) in namespace ns; returns CompletedProcess with
        stdout/stderr captured (str, or bytes with text=False). check=True raises
        RuntimeError (with stderr) on a non-zero exit."""
        r = subprocess.run(self._argv(ns, cmd), capture_output=True, timeout=timeout, input=input,
                           text=text, env=env)
        if check and r.returncode != 0:
            err = r.stderr if text else r.stderr.decode(errors="replace")
            raise RuntimeError(f"[{ns}] {cmd!r} exited {r.returncode}: {err.strip()}")
        return r

    def popen(self, ns, cmd, **kw):
        """Starts cmd in namespace ns in its own process group; killed at teardown. Keyword
        arguments go to subprocess.Popen (stdin/stdout/stderr default to DEVNULL; pass
        stdout=subprocess.PIPE etc. to capture)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(self._argv(ns, cmd), start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, proc, sig=signal.SIGTERM, timeout=10):
        """Signals proc's process group and waits; returns its exit code (SIGKILL on timeout)."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    # --- services --------------------------------------------------------------------------
    def start_imds(self, port=80):
        """Starts test/lab/imds_server.py in imds; returns when it listens. Requests it sees
        are logged as JSON lines to self.imds_log (see imds_requests())."""
        self.imds_log = os.path.join(self.tmpdir, "imds-requests.jsonl")
        p = self.popen(self.imds, [sys.executable, os.path.join(HERE, "imds_server.py"), "--port", str(port),
                                   "--log", self.imds_log], stdout=subprocess.PIPE)
        line = p.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError("imds_server did not start")
        return p

    def imds_requests(self):
        """Requests the mock IMDS has seen: list of dicts (method, path, headers, peer)."""
        if not self.imds_log or not os.path.exists(self.imds_log):
            return []
        return read_jsonl(self.imds_log)

    def start_accept_all(self, queue_num=0, batch=False, options=()):
        """Binds queue_num in inst with the do-nothing consumer (test/bench/nfq_accept_all;
        batch: its --batch mode, the daemon's reads and verdicts; options: more of its
        options); returns once the queue shows as bound."""
        p = self.popen(self.inst, [accept_all_binary(), *(["--batch"] if batch else []), *options,
                                   str(queue_num)])
        self.wait_bound(self.inst, queue_num, proc=p)
        return p

    def wait_bound(self, ns, queue_num=0, bound=True, timeout=10, proc=None):
        """Waits until queue_num in ns is (un)bound; raises RuntimeError on timeout or when
        proc exits first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.queue_stats(ns).get(queue_num)
            if bool(st and st.portid) == bound:
                return st
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"consumer exited with {proc.returncode} before binding queue {queue_num}")
            time.sleep(0.05)
        raise RuntimeError(f"queue {queue_num} in {ns} not {'bound' if bound else 'unbound'} after {timeout}s")

    # --- traffic ---------------------------------------------------------------------------
    def curl(self, ns, url, *args, check=True, timeout=10, include_headers=True):
        """curl from ns; returns the raw reply bytes (status line and headers included unless
        include_headers=False). Extra args go to curl (e.g. '-X', 'PUT', '-H', 'h: v')."""
        argv = ["curl", "-sS", "-g", "--max-time", str(timeout), "--noproxy", "*"]
        if include_headers:
            argv.append("-i")
        r = self.run(ns, [*argv, *args, url], check=check, timeout=timeout + 5, text=False)
        return r.stdout

    def client(self, ns, host, pieces, port=80, delay=0.0, nodelay=False, maxseg=None, mark=None,
               timeout=5.0, keep_open=False, check=True):
        """Raw TCP client in ns (test/lab/client.py): sends each of pieces (bytes) with its own
        send(), delay seconds apart; optional TCP_NODELAY, TCP_MAXSEG, SO_MARK (set before
        connect). host is an IPv4 or IPv6 literal. Half-closes after the last piece (unless
        keep_open) and returns the raw reply bytes read until close or timeout."""
        argv = [sys.executable, os.path.join(HERE, "client.py"), host, "--port", str(port),
                "--delay", str(delay), "--timeout", str(timeout)]
        if nodelay:
            argv.append("--nodelay")
        if maxseg:
            argv += ["--maxseg", str(maxseg)]
        if mark is not None:
            argv += ["--mark", hex(mark)]
        if keep_open:
            argv.append("--keep-open")
        payload = json.dumps({"pieces": [bytes(p).hex() for p in pieces]}).encode()
        r = self.run(ns, argv, check=check, input=payload, text=False,
                     timeout=timeout + delay * len(pieces) + 10)
        return r.stdout

    # --- kernel state ----------------------------------------------------------------------
    def queue_stats(self, ns):
        """{queue_number: QueueStats} from /proc/net/netfilter/nfnetlink_queue in ns (queues
        are per network namespace). Only bound queues are listed."""
        r = self.run(ns, ["cat", "/proc/net/netfilter/nfnetlink_queue"], check=False)
        return parse_queue_stats(r.stdout if r.returncode == 0 else "")

    def rules(self, *args, check=True, ns=None):
        """Runs scripts/nfq-apeeper-rules with args in ns (default inst)."""
        return self.run(ns or self.inst, [RULES_SCRIPT, *args], check=check)

    def ruleset_dump(self, ns=None):
        """iptables-save + ip6tables-save + nft list ruleset in ns, concatenated."""
        ns = ns or self.inst
        parts = [self.run(ns, [tool], check=False).stdout for tool in ("iptables-save", "ip6tables-save")]
        parts.append(self.run(ns, ["nft", "list", "ruleset"], check=False).stdout)
        return "\n".join(parts)


def accept_all_binary():
    """Path of nfq_accept_all: the build tree's unless its source is newer (a stale floor
    would take --batch for a queue number), else compiled once into a temp dir."""
    built = os.path.join(BINARY_DIR, "test", "bench", "nfq_accept_all")
    src = os.path.join(SOURCE_DIR, "test", "bench", "nfq_accept_all.c")
    if os.access(built, os.X_OK) and os.path.getmtime(built) >= os.path.getmtime(src):
        return built
    out = os.path.join(tempfile.gettempdir(), f"nfq_accept_all-{os.getuid()}")
    if not os.access(out, os.X_OK) or os.path.getmtime(out) < os.path.getmtime(src):
        r = subprocess.run(["cc", "-O2", "-o", out, src, "-lnetfilter_queue", "-lmnl"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"cannot build nfq_accept_all: {r.stderr.strip()}")
    return out
