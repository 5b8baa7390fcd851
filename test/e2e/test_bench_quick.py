"""CI smoke run of the benchmark (test/bench/run_bench.py --quick): every configuration and
workload runs once for 1 s; checks only that it works (requests answered, no socket errors, no
queue drops, nothing left waiting, the daemon reported every request). No timing assertions."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
r = subprocess.run([sys.executable, os.path.join(HERE, "..", "bench", "run_bench.py"), "--quick"], timeout=110)
sys.exit(r.returncode)
