"""The .deb from scripts/package, end to end: metadata, file layout and modes, the extracted
daemon's --version/--check, the unit (systemd-analyze verify and security), the maintainer
scripts (start nothing by surprise), and finally "fresh machine to running service that catches
a request": the unit's own command lines, run from the extracted package in the namespace lab.

systemd is not PID 1 on the test machine, so the unit is not started by systemd. Instead this
test does what systemd would do, from the unit file itself (test/deploy/unitfile.py):
Environment= then the EnvironmentFile (the packaged /etc/default/nfq-apeeper, filled in as
docs/deploy.md says), ExecStartPre, ExecStart with a NOTIFY_SOCKET (waits for READY=1 like
Type=notify, sees WATCHDOG=1, RELOADING=1 on ExecReload's HUP, STOPPING=1), ExecStartPost
after READY=1. "+" lines run as root; ExecStart runs with the unit's privileges emulated by
setpriv: a fresh unprivileged uid (DynamicUser=), ambient and bounding set CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH only,
NoNewPrivileges. Not emulated: the file-system/syscall sandbox (ProtectSystem=, SystemCallFilter=,
RestrictAddressFamilies=...), which systemd-analyze checks statically; StateDirectory= is a
scratch 0700 directory owned by that uid, passed with --state-dir.

The package is taken from build/packages/ (or $NFQ_DEB); when missing or older than the
packaging inputs it is built with `scripts/package deb` (a few minutes)."""
import glob
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "deploy"))
import unitfile  # noqa: E402
from daemon_harness import lablib, run_tests  # noqa: E402

SRC = lablib.SOURCE_DIR
FACTORY_PORT = 8089
DYNAMIC_UID = 61871  # stands in for the uid DynamicUser= would allocate (61184..65519)
ROOT = None  # the extracted package
DEB = None
LAB = None


def packaging_inputs():
    files = [os.path.join(SRC, p) for p in ("scripts/systemd/nfq-apeeper.service", "scripts/systemd/nfq-apeeper.default",
                                            "scripts/nfq-apeeper-rules", "cmake/Packaging.cmake", "scripts/package")]
    files += glob.glob(os.path.join(SRC, "cmake/packaging/*/*")) + glob.glob(os.path.join(SRC, "docs/*.md"))
    return files


def find_or_build_deb():
    if os.environ.get("NFQ_DEB"):
        return os.environ["NFQ_DEB"]
    if shutil.which("dpkg-deb") is None or shutil.which("cpack") is None:
        lablib.skip("dpkg-deb or cpack missing")
    debs = sorted(glob.glob(os.path.join(SRC, "build", "packages", "nfq-apeeper_*.deb")), key=os.path.getmtime)
    newest_input = max(os.path.getmtime(f) for f in packaging_inputs())
    if not debs or os.path.getmtime(debs[-1]) < newest_input:
        print("building the .deb with scripts/package deb ...", flush=True)
        r = subprocess.run([os.path.join(SRC, "scripts", "package"), "deb"], capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/package deb failed: {r.stderr[-2000:]}")
        debs = sorted(glob.glob(os.path.join(SRC, "build", "packages", "nfq-apeeper_*.deb")), key=os.path.getmtime)
    return debs[-1]


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(argv, **kw)


class NotifySocket:
    """The sd_notify end systemd would hold: a datagram socket collecting state lines."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)  # the daemon runs as DYNAMIC_UID
        self.messages = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self._lock:
                self.messages.extend(data.decode(errors="replace").split("\n"))

    def wait(self, state, after=0, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                if state in self.messages[after:]:
                    return True
            time.sleep(0.02)
        return False

    def count(self):
        with self._lock:
            return len(self.messages)


def setUpModule():
    global ROOT, DEB
    DEB = find_or_build_deb()
    ROOT = tempfile.mkdtemp(prefix="nfq-deb-root-")
    os.chmod(ROOT, 0o755)  # the daemon runs unprivileged from here
    r = run(["dpkg-deb", "-x", DEB, ROOT])
    if r.returncode != 0:
        raise RuntimeError(r.stderr)


def tearDownModule():
    if ROOT:
        shutil.rmtree(ROOT, ignore_errors=True)


class PackageTest(unittest.TestCase):
    def path(self, p):
        return os.path.join(ROOT, p.lstrip("/"))

    def test_metadata_dependencies_and_conffile(self):
        fields = run(["dpkg-deb", "-f", DEB, "Package", "Depends"]).stdout
        for dep in ("libnetfilter-queue1", "libmnl0", "libcurl4", "libfmt9", "libsystemd0", "iptables"):
            self.assertIn(dep, fields)
        with tempfile.TemporaryDirectory() as control:
            run(["dpkg-deb", "-e", DEB, control], check=True)
            with open(os.path.join(control, "conffiles")) as f:
                self.assertEqual(f.read().split(), ["/etc/default/nfq-apeeper"])
            for script in ("postinst", "prerm", "postrm"):
                self.assertTrue(os.access(os.path.join(control, script), os.X_OK), script)

    def test_files_are_where_expected(self):
        for p in ("/usr/sbin/nfq-apeeper", "/usr/sbin/nfq-apeeper-rules"):
            self.assertTrue(os.access(self.path(p), os.X_OK), p)
        self.assertTrue(os.path.isfile(self.path("/usr/lib/systemd/system/nfq-apeeper.service")))
        for doc in ("README.md", "rules.md", "paths.md", "deploy.md", "operations.md"):
            self.assertTrue(os.path.isfile(self.path(f"/usr/share/doc/nfq-apeeper/{doc}")), doc)
        st = os.stat(self.path("/etc/default/nfq-apeeper"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        contents = run(["dpkg-deb", "-c", DEB]).stdout
        self.assertRegex(contents, r"-rw------- root/root .* \./etc/default/nfq-apeeper\n")
        with open(self.path("/usr/lib/systemd/system/nfq-apeeper.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/sbin/nfq-apeeper ", unit)
        self.assertIn("EnvironmentFile=-/etc/default/nfq-apeeper", unit)

    def test_version_and_check(self):
        r = run([self.path("/usr/sbin/nfq-apeeper"), "--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^nfq-apeeper \d+\.\d+\.\d+\n$")
        self.assertIn(r.stdout.split()[1], os.path.basename(DEB))
        with tempfile.TemporaryDirectory() as tmp:
            state = os.path.join(tmp, "state")
            r = run([self.path("/usr/sbin/nfq-apeeper"), "--check", "--state-dir", state])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertNotIn("FAIL", r.stdout)
            self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o700)

    def test_unit_verifies_and_is_hardened(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze missing")
        with open(self.path("/usr/lib/systemd/system/nfq-apeeper.service")) as f:
            unit = f.read().replace("/usr/sbin/", self.path("/usr/sbin") + "/")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "nfq-apeeper.service")
            with open(path, "w") as f:
                f.write(unit)
            r = run(["systemd-analyze", "verify", path])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual([l for l in (r.stdout + r.stderr).splitlines() if "nfq-apeeper" in l], [],
                             r.stdout + r.stderr)
            r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", path])
            last = [l for l in r.stdout.splitlines() if "Overall exposure level" in l]
            self.assertTrue(last, r.stdout + r.stderr)
            score = float(last[0].split(":")[1].split()[0])
            lablib.measure(f"systemd-analyze security --offline=yes: {score}")
            self.assertLessEqual(score, 2.5, last[0])  # 2.2 with the attribution capabilities

    def test_maintainer_scripts_start_nothing_by_surprise(self):
        if shutil.which("unshare") is None:
            self.skipTest("unshare missing")
        with tempfile.TemporaryDirectory() as tmp:
            control = os.path.join(tmp, "control")
            run(["dpkg-deb", "-e", DEB, control], check=True)
            shim = os.path.join(tmp, "shim")
            os.mkdir(shim)
            log = os.path.join(tmp, "systemctl.log")
            with open(os.path.join(shim, "systemctl"), "w") as f:
                f.write(f'#!/bin/sh\necho "$*" >> {log}\n')
            os.chmod(os.path.join(shim, "systemctl"), 0o755)

            def script(*args, state_dir=False):
                # A private mount namespace in which systemd looks like PID 1 (/run/systemd/system)
                # and /var/lib is scratch; a private network namespace for any rules call.
                open(log, "w").close()
                setup = "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && mount -t tmpfs tmpfs /var/lib"
                if state_dir:
                    setup += " && mkdir -p /var/lib/nfq-apeeper && touch /var/lib/nfq-apeeper/token"
                check = "; test -e /var/lib/nfq-apeeper && echo STATE-KEPT || echo STATE-GONE"
                r = run(["unshare", "--mount", "--propagation", "private", "--net", "sh", "-c",
                         f"{setup} && PATH={shim}:$PATH {os.path.join(control, args[0])} {' '.join(args[1:])}; "
                         f"echo rc=$?{check}"])
                with open(log) as f:
                    return r.stdout, f.read().splitlines()

            out, calls = script("postinst", "configure", "''")
            self.assertIn("rc=0", out)
            self.assertEqual(calls, ["daemon-reload"])  # fresh install: nothing enabled or started
            out, calls = script("postinst", "configure", "0.0.9-1")
            self.assertEqual(calls, ["daemon-reload", "try-restart nfq-apeeper.service"])
            out, calls = script("prerm", "upgrade", "0.1.0-1")
            self.assertEqual(calls, [])
            out, calls = script("prerm", "remove")
            self.assertEqual(calls, ["stop nfq-apeeper.service", "disable nfq-apeeper.service"])
            out, calls = script("postrm", "remove", state_dir=True)
            self.assertIn("STATE-KEPT", out)
            out, calls = script("postrm", "purge", state_dir=True)
            self.assertIn("rc=0", out)
            self.assertIn("STATE-GONE", out)


class RpmTest(unittest.TestCase):
    """The .rpm for Amazon Linux carries the same files and starts nothing on install."""

    def test_rpm_files_and_scriptlets(self):
        if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
            self.skipTest("rpmbuild missing (Debian package rpm)")
        r = subprocess.run([os.path.join(SRC, "scripts", "package"), "rpm"], capture_output=True, text=True,
                           timeout=900)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        rpm_file = r.stdout.split()[-1]
        self.assertTrue(rpm_file.endswith(".rpm"), r.stdout)
        files = run(["rpm", "-qpl", rpm_file]).stdout.split()
        for p in ("/usr/sbin/nfq-apeeper", "/usr/sbin/nfq-apeeper-rules",
                  "/usr/lib/systemd/system/nfq-apeeper.service", "/etc/default/nfq-apeeper",
                  "/usr/share/doc/nfq-apeeper/deploy.md"):
            self.assertIn(p, files)
        modes = run(["rpm", "-qp", "--queryformat", "[%{FILEMODES:perms} %{FILENAMES}\\n]", rpm_file]).stdout
        self.assertRegex(modes, r"-rw------- /etc/default/nfq-apeeper\n")
        config = run(["rpm", "-qpc", rpm_file]).stdout.split()
        self.assertEqual(config, ["/etc/default/nfq-apeeper"])
        scripts = run(["rpm", "-qp", "--scripts", rpm_file]).stdout
        post = scripts.split("postinstall scriptlet", 1)[1].split("scriptlet", 1)[0]
        self.assertNotRegex(post, r"systemctl\s+(start|enable|restart)\b", post)


class ServiceInLabTest(unittest.TestCase):
    """The documented steps (docs/deploy.md "By hand"), with the unit's own command lines."""

    def test_deb_to_running_hardened_service_that_catches_a_request(self):
        LAB.start_imds()
        work = tempfile.mkdtemp(prefix="nfq-unit-")
        os.chmod(work, 0o755)
        try:
            self._run_service(work)
        finally:
            LAB.rules("remove", check=False)
            shutil.rmtree(work, ignore_errors=True)

    def _run_service(self, work):
        console_log = os.path.join(work, "console.jsonl")
        console = LAB.popen(LAB.inst, [sys.executable, os.path.join(SRC, "test", "deploy", "fake_console.py"),
                                       "--port", str(FACTORY_PORT), "--log", console_log], stdout=subprocess.PIPE)
        self.assertEqual(console.stdout.readline().strip(), b"ready")

        state = os.path.join(work, "state")  # StateDirectory=: 0700, owned by the service's uid
        os.mkdir(state, 0o700)
        os.chown(state, DYNAMIC_UID, DYNAMIC_UID)

        # Step "edit /etc/default/nfq-apeeper", as docs/deploy.md says (sed on the packaged file).
        env_file = os.path.join(ROOT, "etc", "default", "nfq-apeeper")
        factory = f"http://127.0.0.1:{FACTORY_PORT}/factory/secret-factory-id"
        run(["sed", "-i", "-e", f"s|^NFQ_APEEPER_FACTORY=.*|NFQ_APEEPER_FACTORY={factory}|",
             "-e", f"s|^NFQ_APEEPER_ARGS=.*|NFQ_APEEPER_ARGS=-b /latest/meta-data/iam --log-format json "
                   f"--state-dir {state} --instance-name lab-1|", env_file], check=True)
        self.assertEqual(stat.S_IMODE(os.stat(env_file).st_mode), 0o600)
        with open(os.path.join(ROOT, "usr/lib/systemd/system/nfq-apeeper.service")) as f:
            service = unitfile.parse(f.read())["Service"]
        with open(env_file) as f:
            env = unitfile.environment(service, f.read())
        self.assertEqual(env["NFQ_APEEPER_FACTORY"], factory)
        self.assertEqual(service["Type"], ["notify"])
        self.assertEqual(service["DynamicUser"], ["yes"])
        caps = ["CAP_NET_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"]
        self.assertEqual(service["AmbientCapabilities"], caps)
        self.assertEqual(service["CapabilityBoundingSet"], caps)

        def local(argv):  # the package's files, not the machine's
            return [self.path_in_root(a) if a.startswith("/usr/sbin/") else a for a in argv]

        for line in service.get("ExecStartPre", []):
            prefixes, argv = unitfile.expand(line, env)
            r = LAB.run(LAB.inst, local(argv), check=False)
            if "-" not in prefixes:
                self.assertEqual(r.returncode, 0, (argv, r.stderr))

        notify = NotifySocket(work)
        (exec_start,) = service["ExecStart"]
        prefixes, argv = unitfile.expand(exec_start, env)
        self.assertNotIn(factory, " ".join(argv))  # the secret never on the command line
        self.assertEqual(prefixes, "")
        child_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": notify.path,
                     "NFQ_APEEPER_FACTORY": env["NFQ_APEEPER_FACTORY"]}
        sandbox = ["setpriv", f"--reuid={DYNAMIC_UID}", f"--regid={DYNAMIC_UID}", "--clear-groups",
                   "--inh-caps=-all,+net_admin,+sys_ptrace,+dac_read_search",
                   "--ambient-caps=+net_admin,+sys_ptrace,+dac_read_search",
                   "--bounding-set=-all,+net_admin,+sys_ptrace,+dac_read_search",
                   "--no-new-privs"]
        daemon = LAB.popen(LAB.inst, ["env", "-i", *[f"{k}={v}" for k, v in child_env.items()], *sandbox, *local(argv)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = {"stdout": [], "stderr": []}
        for name in out:
            threading.Thread(target=lambda n=name: out[n].extend(getattr(daemon, n).read().decode(errors="replace")
                                                                 .splitlines()), daemon=True).start()
        self.assertTrue(notify.wait("READY=1", timeout=15), f"no READY=1; {notify.messages} {daemon.poll()}")

        for line in service["ExecStartPost"]:  # after READY=1, as for Type=notify
            prefixes, argv = unitfile.expand(line, dict(env, MAINPID=str(daemon.pid)))
            self.assertIn("+", prefixes)
            r = LAB.run(LAB.inst, local(argv), check=False)
            self.assertEqual(r.returncode, 0, (argv, r.stderr))
        self.assertIn("NFQ_APEEPER", LAB.ruleset_dump())
        self.assertTrue(notify.wait("WATCHDOG=1", timeout=5))

        status = LAB.run(LAB.inst, [self.path_in_root("/usr/sbin/nfq-apeeper-rules"), "status"]).stdout
        self.assertIn("queue 0: bound", status)

        # The request the guide uses to trigger a test alert, from the host and a container.
        self.assertIn(b"200 OK", LAB.curl(LAB.inst, f"{lablib.URL4}/latest/meta-data/iam/security-credentials/"))
        self.assertIn(b"200 OK", LAB.curl(LAB.ctr, f"{lablib.URL4}/latest/meta-data/iam/security-credentials/nfq-lab-role"))
        LAB.curl(LAB.inst, f"{lablib.URL4}/latest/meta-data/instance-id")  # not on the blacklist

        hits = self.wait_console_hits(console_log, 2)
        urls = sorted(h["query"].get("url") for h in hits)
        self.assertEqual(urls, ["/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials/nfq-lab-role"], hits)

        # ExecReload: HUP; the daemon reports RELOADING=1 then READY=1.
        (reload_line,) = service["ExecReload"]
        self.assertIn("-HUP $MAINPID", reload_line)
        mark = notify.count()
        os.killpg(daemon.pid, signal.SIGHUP)
        self.assertTrue(notify.wait("RELOADING=1", after=mark))
        self.assertTrue(notify.wait("READY=1", after=mark))

        # Stop: clean exit, rules stay (bypass), traffic still flows.
        mark = notify.count()
        self.assertEqual(LAB.stop(daemon), 0, out)
        self.assertTrue(notify.wait("STOPPING=1", after=mark))
        self.assertIn("NFQ_APEEPER", LAB.ruleset_dump())
        self.assertIn(b"200 OK", LAB.curl(LAB.inst, f"{lablib.URL4}/latest/meta-data/iam/"))

        logs = "\n".join(out["stdout"] + out["stderr"])
        self.assertNotIn("secret-factory-id", logs)
        self.assertIn("/latest/meta-data/iam/security-credentials/", "\n".join(out["stdout"]))
        st = LAB.stats = LAB.queue_stats(LAB.inst).get(0)
        self.assertTrue(st is None or (st.queue_dropped, st.user_dropped) == (0, 0), st)

    def path_in_root(self, p):
        return os.path.join(ROOT, p.lstrip("/"))

    def wait_console_hits(self, log, n, timeout=15):
        import json
        deadline = time.time() + timeout
        hits = []
        while time.time() < deadline:
            if os.path.exists(log):
                with open(log) as f:
                    reqs = [json.loads(l) for l in f if l.strip()]
                hits = [r for r in reqs if r["method"] == "GET" and r["path"].startswith("/token/")]
                if len(hits) >= n:
                    time.sleep(0.3)
                    with open(log) as f:
                        reqs = [json.loads(l) for l in f if l.strip()]
                    regs = [r for r in reqs if r["method"] == "POST"]
                    self.assertTrue(regs, "no registration")
                    self.assertIn("instancename=lab-1", regs[0]["body"])
                    return [r for r in reqs if r["method"] == "GET" and r["path"].startswith("/token/")]
            time.sleep(0.1)
        raise AssertionError(f"console saw {len(hits)} hits, wanted {n}: {open(log).read() if os.path.exists(log) else ''}")


if __name__ == "__main__":
    run_tests(globals())
