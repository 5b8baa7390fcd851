"""scripts/cloudformation: the template parses and every reference in it resolves; its user
data is user-data.sh; and user-data.sh does the right things on apt and dnf systems.

The user-data runs are real bash runs of the script, as root, inside a private mount namespace
(tmpfs over /etc/default, /var/log and /run so nothing on this machine changes) and a fresh
network namespace (no route anywhere). Only what would reach the internet or PID 1 is stubbed,
by PATH shims that log their arguments: apt-get/dnf, curl (serves local fixtures), systemctl,
cfn-signal. Not tested here: a real EC2 launch and a real CloudFormation stack."""
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("NFQ_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
TEMPLATE = os.path.join(SRC, "scripts", "cloudformation", "nfq-apeeper.yaml")
USER_DATA = os.path.join(SRC, "scripts", "cloudformation", "user-data.sh")
END_OF_SETTINGS = "# --- end of settings ----------------------------------------------------------------------\n"
PSEUDO = {"AWS::AccountId", "AWS::NoValue", "AWS::NotificationARNs", "AWS::Partition", "AWS::Region",
          "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}
FACTORY = "https://canary.example/factory/s3cr3t-factory-token"


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns !Ref/!GetAtt/!Sub/... into {"Ref": ...} / {"Fn::X": ...}."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _tag)


def load_template():
    with open(TEMPLATE) as f:
        return yaml.load(f, CfnLoader)


def walk(node, visit):
    visit(node)
    if isinstance(node, dict):
        for v in node.values():
            walk(v, visit)
    elif isinstance(node, list):
        for v in node:
            walk(v, visit)


def sub_names(template_string):
    return [m for m in re.findall(r"\$\{([^}!][^}]*)\}", template_string)]


class TemplateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.params = set(cls.t["Parameters"])
        cls.resources = set(cls.t["Resources"])
        cls.conditions = set(cls.t.get("Conditions", {}))

    def test_every_reference_resolves_and_every_parameter_is_used(self):
        refs, atts, conds, used = [], [], [], set()

        def visit(n):
            if not isinstance(n, dict):
                return
            if "Ref" in n:
                refs.append(n["Ref"])
            if "Fn::GetAtt" in n:
                atts.append(n["Fn::GetAtt"][0])
            if "Fn::If" in n:
                conds.append(n["Fn::If"][0])
            if "Condition" in n and isinstance(n["Condition"], str):
                conds.append(n["Condition"])
            if "Fn::Sub" in n:
                s = n["Fn::Sub"]
                text, local = (s, {}) if isinstance(s, str) else (s[0], s[1])
                for name in sub_names(text):
                    if name in local:
                        continue
                    if "." in name and not name.startswith("AWS::"):
                        atts.append(name.split(".")[0])
                    else:
                        refs.append(name)

        for section in ("Resources", "Outputs", "Conditions", "Rules"):
            walk(self.t.get(section, {}), visit)
        for r in refs:
            self.assertTrue(r in self.params or r in self.resources or r in PSEUDO, f"unresolved Ref/Sub {r}")
            if r in self.params:
                used.add(r)
        for a in atts:
            self.assertIn(a, self.resources, f"GetAtt of unknown resource {a}")
        for c in conds:
            self.assertIn(c, self.conditions, f"unknown condition {c}")
        # Parameters used only through conditions count as used too.
        cond_refs = []
        walk(self.t.get("Conditions", {}), lambda n: isinstance(n, dict) and "Ref" in n and cond_refs.append(n["Ref"]))
        self.assertEqual(self.params - used - set(cond_refs), set(), "unused parameters")
        for name, res in self.t["Resources"].items():
            if "Condition" in res:
                self.assertIn(res["Condition"], self.conditions, name)

    def test_secret_and_ami_parameters(self):
        p = self.t["Parameters"]
        self.assertIs(p["FactoryUrl"].get("NoEcho"), True)
        self.assertNotIn("Default", p["FactoryUrl"])
        self.assertEqual(p["LatestAmiId"]["Type"], "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>")
        self.assertEqual(p["LatestAmiId"]["Default"], "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
        outputs = yaml.dump(self.t.get("Outputs", {}))
        self.assertNotIn("FactoryUrl", outputs)
        self.assertTrue(re.fullmatch(p["FactoryUrl"]["AllowedPattern"], FACTORY))
        self.assertFalse(re.fullmatch(p["FactoryUrl"]["AllowedPattern"], "https://x/'; rm -rf /"))
        self.assertTrue(re.fullmatch(p["Blacklist"]["AllowedPattern"], "/latest/meta-data/iam,/latest/user-data"))

    def test_instance_signals_and_user_data_is_the_script(self):
        inst = self.t["Resources"]["Instance"]
        self.assertEqual(inst["CreationPolicy"]["ResourceSignal"]["Count"], 1)
        sub, body = inst["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
        header = sub["Fn::Sub"]
        self.assertIn("CFN_RESOURCE='Instance'", header)
        with open(USER_DATA) as f:
            script = f.read()
        settings, script_body = script.split(END_OF_SETTINGS, 1)
        self.assertEqual(body, script_body, "template user data differs from user-data.sh: regenerate it")
        names = lambda text: set(re.findall(r"^([A-Z_]+)=", text, re.M)) | set(re.findall(r" ([A-Z_]+)=", text))  # noqa: E731
        self.assertEqual(names(header), names(settings))

    def test_cfn_lint_if_available(self):
        if shutil.which("cfn-lint") is None:
            self.skipTest("cfn-lint not installed")
        r = subprocess.run(["cfn-lint", TEMPLATE], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def render_cfn_user_data(values):
    """The user data CloudFormation would send, with these parameter values."""
    t = load_template()
    sub, body = t["Resources"]["Instance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    values = {"AWS::StackName": "nfq-stack", "AWS::Region": "eu-west-1", **values}
    return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], sub["Fn::Sub"]) + body


def fill_settings(**kv):
    with open(USER_DATA) as f:
        text = f.read()
    for k, v in kv.items():
        text, n = re.subn(rf"^{k}=''", f"{k}='{v}'", text, count=1, flags=re.M)
        if n == 0:
            text = re.sub(rf" {k}=''", f" {k}='{v}'", text, count=1)
    return text


class UserDataTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare")
        self.tmp = tempfile.mkdtemp(prefix="nfq-userdata-")
        self.shim = os.path.join(self.tmp, "shim")
        self.log = os.path.join(self.tmp, "calls.log")
        self.fixtures = os.path.join(self.tmp, "fixtures")
        self.out = os.path.join(self.tmp, "out")
        for d in (self.shim, self.fixtures, self.out):
            os.mkdir(d)
        with open(os.path.join(self.fixtures, "pkg"), "w") as f:
            f.write("not really a package\n")
        self._source_tarball()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _source_tarball(self):
        src = os.path.join(self.tmp, "nfq-apeeper-src")
        os.makedirs(os.path.join(src, "scripts"))
        with open(os.path.join(src, "scripts", "package"), "w") as f:
            f.write(textwrap.dedent(f"""\
                #!/bin/sh
                echo "package $* JOBS=$JOBS" >> {self.log}
                mkdir -p build/packages && touch build/packages/nfq-apeeper_0.1.0-1_amd64.$1
                """))
        os.chmod(os.path.join(src, "scripts", "package"), 0o755)
        with tarfile.open(os.path.join(self.fixtures, "src.tar.gz"), "w:gz") as tar:
            tar.add(src, arcname="nfq-apeeper-0.1.0")

    def shims(self, pm, fail_install=False):
        logline = f'echo "$(basename "$0") $*" >> {self.log}'
        stubs = {
            "systemctl": logline,
            "cfn-signal": logline,
            "journalctl": logline,
            # curl: -o FILE URL; serves the fixture named by the URL's last path element.
            "curl": logline + '\nwhile [ $# -gt 1 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
                              f'cp {self.fixtures}/"$(basename "$1")" "$out"',
            pm: logline + (f'\ncase "$*" in *install*) [ -n "{1 if fail_install else ""}" ] && exit 100;; esac\nexit 0'),
            "nfq-apeeper": "exit 0",
        }
        for name, code in stubs.items():
            path = os.path.join(self.shim, name)
            with open(path, "w") as f:
                f.write("#!/bin/sh\n" + code + "\n")
            os.chmod(path, 0o755)

    def run_script(self, text):
        script = os.path.join(self.tmp, "user-data")
        with open(script, "w") as f:
            f.write(text)
        os.chmod(script, 0o700)
        open(self.log, "w").close()
        # Private mounts: /etc/default, /var/log and /run are scratch; results are copied out.
        inner = (f"mount -t tmpfs tmpfs /etc/default && mount -t tmpfs tmpfs /var/log && mount -t tmpfs tmpfs /run && "
                 f"PATH={self.shim}:/usr/sbin:/usr/bin:/sbin:/bin {script}; rc=$?; "
                 f"cp -p /etc/default/nfq-apeeper {self.out}/env 2>/dev/null; cp /var/log/nfq-apeeper-install.log {self.out}/log; "
                 f"exit $rc")
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--net", "sh", "-c", inner],
                           capture_output=True, text=True, timeout=60)
        with open(self.log) as f:
            calls = f.read().splitlines()
        env_path = os.path.join(self.out, "env")
        env = None
        if os.path.exists(env_path):
            with open(env_path) as f:
                env = f.read()
            self.assertEqual(stat.S_IMODE(os.stat(env_path).st_mode), 0o600)
        with open(os.path.join(self.out, "log")) as f:
            log = f.read()
        self.assertNotIn("s3cr3t", log + r.stdout + r.stderr)  # the factory URL never in a log
        return r, calls, env

    def test_apt_with_package_url(self):
        self.shims("apt-get")
        r, calls, env = self.run_script(fill_settings(FACTORY_URL=FACTORY, BLACKLIST="/latest/meta-data/iam",
                                                      PACKAGE_URL="https://dl.example/pkg"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"NFQ_APEEPER_FACTORY={FACTORY}\n", env)
        self.assertIn("NFQ_APEEPER_ARGS=-b /latest/meta-data/iam\n", env)
        self.assertIn("apt-get update -q", calls)
        installs = [c for c in calls if c.startswith("apt-get install")]
        self.assertEqual(len(installs), 1, calls)  # only the package: no build dependencies
        self.assertRegex(installs[0], r"--force-confold /tmp/nfq-apeeper-install\.\w+/nfq-apeeper\.deb$")
        self.assertIn("systemctl enable --now nfq-apeeper.service", calls)
        self.assertIn("systemctl is-active --quiet nfq-apeeper.service", calls)
        self.assertFalse([c for c in calls if c.startswith("cfn-signal")])  # not from CloudFormation
        self.assertLess(calls.index("apt-get update -q"), calls.index("systemctl enable --now nfq-apeeper.service"))

    def test_dnf_source_build_from_the_cloudformation_user_data(self):
        self.shims("dnf")
        text = render_cfn_user_data({"FactoryUrl": FACTORY, "Blacklist": "", "Whitelist": "/latest/meta-data/placement",
                                     "PackageUrl": "", "SourceUrl": "https://dl.example/src.tar.gz",
                                     "ExtraArgs": "--instance-name web-1"})
        r, calls, env = self.run_script(text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("NFQ_APEEPER_ARGS=-w /latest/meta-data/placement --instance-name web-1\n", env)
        deps = [c for c in calls if c.startswith("dnf install") and "rpm-build" in c]
        self.assertEqual(len(deps), 1, calls)
        for p in ("libnetfilter_queue-devel", "libmnl-devel", "libcurl-devel", "systemd-devel", "gcc-c++", "cmake"):
            self.assertIn(p, deps[0])
        self.assertTrue(any(c.startswith("package rpm JOBS=") for c in calls), calls)
        self.assertTrue(any(re.search(r"^dnf install -y -q /tmp/.*/build/packages/nfq-apeeper_0\.1\.0-1_amd64\.rpm$", c)
                            for c in calls), calls)
        self.assertIn("cfn-signal -e 0 --reason nfq-apeeper is running --stack nfq-stack --resource Instance "
                      "--region eu-west-1", calls)

    def test_failure_is_signalled_and_writes_no_config(self):
        self.shims("apt-get", fail_install=True)
        text = render_cfn_user_data({"FactoryUrl": FACTORY, "Blacklist": "", "Whitelist": "", "PackageUrl": "",
                                     "SourceUrl": "https://dl.example/src.tar.gz", "ExtraArgs": ""})
        r, calls, env = self.run_script(text)
        self.assertEqual(r.returncode, 1)
        self.assertIsNone(env)
        signals = [c for c in calls if c.startswith("cfn-signal")]
        self.assertEqual(len(signals), 1, calls)
        self.assertTrue(signals[0].startswith("cfn-signal -e 1 --reason nfq-apeeper: cannot install build dependencies"))
        self.assertFalse([c for c in calls if "enable" in c])

    def test_bad_settings_fail_fast(self):
        self.shims("apt-get")
        for settings in ({"FACTORY_URL": "", "PACKAGE_URL": "https://dl.example/pkg"},
                         {"FACTORY_URL": FACTORY, "BLACKLIST": "/a", "WHITELIST": "/b", "PACKAGE_URL": "https://dl.example/pkg"},
                         {"FACTORY_URL": FACTORY}):
            r, calls, env = self.run_script(fill_settings(**settings))
            self.assertEqual(r.returncode, 1, settings)
            self.assertIsNone(env)
            self.assertFalse([c for c in calls if c.startswith(("apt-get", "systemctl"))], calls)


if __name__ == "__main__":
    unittest.main(verbosity=2)
