#!/usr/bin/env parpy
"""parpy side by side with its peers, in one run.

    parpy benches/run.py [--quick] [--python-ft PATH] [--out docs/]
                         [--parpy PATH] [--python PATH] [--only LIST] [--rounds N]
                         [--peers LIST]

Creates a private venv (benches/.venv) with the reference CPython -- the one
parpy embeds -- and pip-installs what the peers and the chart need
(interpreters-pep-734, the InterpreterPoolExecutor backport for 3.13, and
matplotlib). Every measurement then runs in a fresh child process:
the peers' under the venv's python, parpy's under the parpy binary, the
free-threaded peer's under --python-ft. Within a round every peer runs once,
in an order that rotates from round to round; the figures are medians over
the rounds.

Writes benchmarks.md, benchmarks.json and benchmarks.png to --out
(default: benches/results/, which git ignores; `--out docs/` publishes).

Workloads (--only takes a comma-separated subset):
  scaling     pure-Python kernels (benches/kernels.py) on 1..N workers
  roundtrip   submit(f, x).result() for a trivial f, one call at a time
  throughput  map over 1,000,000 trivial items
  coldstart   process start to the first parallel result
  memory      RSS per additional idle worker
  large       one 100 MB bytes to every worker, its length back
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time

from harness import machine_busy  # the same /proc/stat reading as the jobs use

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv")
HARNESS = os.path.join(HERE, "harness.py")
COLDSTART = os.path.join(HERE, "coldstart.py")
CHART = os.path.join(HERE, "chart.py")

BENCHES = ("scaling", "roundtrip", "throughput", "coldstart", "memory", "large")
PEERS = ("sequential", "threads", "process-spawn", "process-fork", "interpreters",
         "subinterpreters", "free-threaded", "parpy")
REFERENCE_PEERS = ("sequential", "threads", "process-spawn", "process-fork", "interpreters",
                   "subinterpreters")  # the venv's python
LABELS = {
    "sequential": "sequential loop",
    "threads": "ThreadPoolExecutor",
    "process-spawn": "ProcessPoolExecutor (spawn)",
    "process-fork": "ProcessPoolExecutor (fork)",
    "interpreters": "InterpreterPoolExecutor",
    "subinterpreters": "concurrent.interpreters, a thread each",
    "free-threaded": "free-threaded python, ThreadPoolExecutor",
    "parpy": "parpy",
    "parpy-share": "parpy with parpy.share()",
}
KERNELS = ("nbody", "fannkuch", "spectral_norm", "raytrace")

# What each mode measures, and how long it lets each measurement run.
MODES = {
    "quick": {
        "rounds": 1,
        "task_seconds": 0.03,    # one kernel call on the reference python
        "tasks_per_worker": 4,
        "roundtrip_seconds": 0.15,
        "items": 1_000_000,
        "item_budget": 0.6,      # longest one throughput setting may run, seconds
        "chunksizes": [1, 1000, 10_000],
        "cold_reps": 2,
        "large_reps": 0,         # quick: only the send to all workers at once
        "large_cap": 5.0,
    },
    "full": {
        "rounds": 5,
        "task_seconds": 0.12,
        "tasks_per_worker": 4,
        "roundtrip_seconds": 0.5,
        "items": 1_000_000,
        "item_budget": 3.0,
        "chunksizes": [1, 10, 100, 1000, 10_000, 100_000],
        "cold_reps": 2,
        "large_reps": 3,
        "large_cap": 15.0,
    },
}

PAYLOAD_MB = 100
KEEP = "<!-- run.py keeps what follows -->"
# A timing counts as "quiet" when other processes kept fewer CPUs than this
# busy while it ran (the machine is shared; see harness.measured).
QUIET = 0.25


def say(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------------------
# Setup: interpreters, the venv, the peers
# ---------------------------------------------------------------------------


def reference_python(args):
    """The CPython that parpy embeds (its base prefix), unless --python says."""
    if args.python:
        return os.path.abspath(args.python)
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    for name in (f"python{v}", "python3"):
        cand = os.path.join(sys.base_prefix, "bin", name)
        if os.access(cand, os.X_OK):
            return cand
    sys.exit(f"run.py: no python{v} under {sys.base_prefix}; pass --python PATH")


def running_under_parpy():
    return "parpy" in sys.builtin_module_names or os.path.basename(sys.executable).startswith("parpy")


def find_parpy(args):
    if args.parpy:
        return os.path.abspath(args.parpy), "--parpy"
    if running_under_parpy():
        return sys.executable, "the parpy running this script"
    built = os.path.join(ROOT, "target", "release", "parpy")
    if os.access(built, os.X_OK):
        return built, "target/release/parpy"
    on_path = shutil.which("parpy")
    if on_path:
        return on_path, "parpy on PATH"
    return None, "no parpy binary (build it with `cargo build --release` or pass --parpy PATH)"


def snapshot(exe):
    """A private copy of the parpy binary for this run, so that a rebuild of
    target/release/parpy during the run cannot change what is measured.
    Returns (copy, sha256 prefix of the binary)."""
    import atexit
    import hashlib
    import tempfile
    with open(exe, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    folder = tempfile.mkdtemp(prefix="parpy-bench-")
    atexit.register(shutil.rmtree, folder, True)
    copy = os.path.join(folder, "parpy")
    shutil.copy2(exe, copy)
    return copy, digest


def git_describe(exe):
    """The commit of the source tree that holds the parpy binary, if any."""
    try:
        top = capture(["git", "-C", os.path.dirname(os.path.realpath(exe)), "rev-parse", "--show-toplevel"], timeout=30)
        return capture(["git", "-C", top, "describe", "--always", "--dirty"], timeout=30) + f" ({top})"
    except Exception:
        return None


def capture(cmd, timeout=120, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return p.stdout.strip()


def python_version(exe, env=None):
    return capture([exe, "-c", "import sys; print(sys.version.split()[0])"], env=env)


def ensure_venv(ref, offline_ok=True):
    """benches/.venv on the reference python, with the backport and matplotlib.
    Returns (venv python, {package: version or None}, notes)."""
    py = os.path.join(VENV, "bin", "python")
    want = python_version(ref)
    have = None
    if os.access(py, os.X_OK):
        try:
            have = python_version(py)
        except Exception:
            have = None
    if have != want:
        say(f"setup: creating {os.path.relpath(VENV, ROOT)} with {ref} ({want})")
        subprocess.run([ref, "-m", "venv", "--clear", VENV], check=True)
    needs = {"matplotlib": "matplotlib"}
    if tuple(int(x) for x in want.split(".")[:2]) < (3, 14):
        needs["interpreters-pep-734"] = "interpreters_backport.concurrent.futures"
    missing = [pkg for pkg, mod in needs.items() if not importable(py, mod)]
    notes = []
    if missing:
        say(f"setup: pip install {' '.join(missing)} into {os.path.relpath(VENV, ROOT)}")
        p = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *missing],
                           capture_output=True, text=True)
        if p.returncode != 0:
            notes.append("pip install failed: " + p.stderr.strip()[-400:])
            say("setup: " + notes[-1])
    versions = {}
    for pkg in needs:
        try:
            versions[pkg] = capture([py, "-c", f"import importlib.metadata as m; print(m.version({pkg!r}))"])
        except Exception:
            versions[pkg] = None
    return py, versions, notes


def importable(py, module):
    return subprocess.run([py, "-c", f"import {module}"], capture_output=True).returncode == 0


class Peer:
    def __init__(self, name, exe, reason=None):
        self.name = name
        self.label = LABELS[name]
        self.exe = exe
        self.reason = reason   # why it is skipped, or None
        self.info = {}

    @property
    def ok(self):
        return self.reason is None


def child_env():
    env = dict(os.environ)
    # Bytecode caching stays on, as for a user: every peer imports kernels.py
    # from benches/__pycache__ (git-ignored) instead of compiling it.
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PARPY_WORKERS",
                "PYTHON_GIL", "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    env["PYTHONPATH"] = HERE  # kernels.py, for every backend's workers
    return env


ENV = child_env()


def run_job(peer, spec, timeout=900):
    """Runs one harness measurement in a fresh process of the peer's interpreter.
    The result's "_others" is how many CPUs other processes on the machine kept
    busy, on average, while it ran (the job's own CPU time, children included,
    comes from getrusage)."""
    import resource
    cmd = [peer.exe, HARNESS, json.dumps(spec)]
    b0, r0, t0 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    b1, r1, t1 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT "):
            got = json.loads(line[7:])
            if b0 is not None and b1 is not None:
                own = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
                got["_others"] = max(0.0, (b1 - b0) - own) / max(t1 - t0, 1e-9)
            return got
    tail = (p.stderr.strip() or p.stdout.strip())[-1500:]
    return {"error": f"exit status {p.returncode}: {tail}"}


def discover(args, venv_py, parpy_exe, parpy_why):
    peers = []
    for name in PEERS:
        if args.peers and name != "sequential" and name not in args.peers:
            peers.append(Peer(name, None, "not in --peers"))
            continue
        if name == "free-threaded":
            if not args.python_ft:
                peers.append(Peer(name, None, "no --python-ft PATH given"))
                continue
            peers.append(Peer(name, os.path.abspath(args.python_ft)))
        elif name == "parpy":
            peers.append(Peer(name, parpy_exe, None if parpy_exe else parpy_why))
        elif name == "process-fork" and not sys.platform.startswith("linux"):
            peers.append(Peer(name, venv_py, "fork is only measured on Linux"))
        else:
            peers.append(Peer(name, venv_py))
    for peer in peers:
        if not peer.ok:
            continue
        if not os.access(peer.exe, os.X_OK):
            peer.reason = f"{peer.exe} is not an executable"
            continue
        got = run_job(peer, {"bench": "probe", "peer": peer.name}, timeout=180)
        if "error" in got:
            peer.reason = "its probe failed: " + got["error"].splitlines()[-1][:300]
            continue
        peer.info = got
        if peer.name == "free-threaded" and got.get("gil", True):
            peer.reason = f"{peer.exe} runs with the GIL enabled (not a free-threaded build)"
    return peers


def cpu_pressure():
    """Linux PSI: the share of the last 60 s in which some runnable task waited for a CPU."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return float(line.split("avg60=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        pass
    return None


def machine_info():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_pressure_start": cpu_pressure(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": model or platform.processor() or "unknown",
        "memory_gib": mem,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "loadavg_start": list(os.getloadavg()),
    }


# ---------------------------------------------------------------------------
# The rounds
# ---------------------------------------------------------------------------


def rotated(items, r):
    if not items:
        return items
    r %= len(items)
    return items[r:] + items[:r]


def calibrate(seq_peer, cfg):
    """Kernel sizes so that one call takes cfg['task_seconds'] on the reference python."""
    got = run_job(seq_peer, {"bench": "calibrate", "kernels": list(KERNELS)})
    if "error" in got:
        sys.exit("run.py: calibration failed: " + got["error"])
    return {k: max(1, round(cfg["task_seconds"] / s)) for k, s in got["seconds_per_unit"].items()}


def run_cold(peer, n):
    import resource
    cmd = [peer.exe, COLDSTART, peer.name, str(n)]
    b0, r0 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return {"error": "timed out after 300 s"}
    end = time.monotonic()
    b1, r1 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in out.splitlines():
        if line.startswith("FIRST "):
            if p.returncode != 0:
                break
            got = {"first": float(line.split()[1]) - t0, "exit": end - t0}
            if b0 is not None and b1 is not None:
                own = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
                got["_others"] = max(0.0, (b1 - b0) - own) / max(end - t0, 1e-9)
            return got
    return {"error": f"exit status {p.returncode}: {err.strip()[-1500:]}"}


class Suite:
    def __init__(self, args, cfg, peers, n):
        self.args, self.cfg, self.n = args, cfg, n
        self.peers = [p for p in peers if p.ok]
        self.raw = {b: {} for b in BENCHES}
        self.errors = []
        self.sizes = {}
        self.checksums = {}
        self.mem_workers = max(4, n)
        self.elapsed = {}
        self.copy = None  # seconds for one plain copy of the payload
        self.others = {b: [] for b in BENCHES}  # per job: CPUs other processes kept busy

    def note(self, bench, got):
        if got.get("_others") is not None:
            self.others[bench].append(got["_others"])

    def error(self, bench, peer, what, got):
        msg = f"{bench} / {peer.name}{' / ' + what if what else ''}: {got['error']}"
        self.errors.append(msg)
        say("  ERROR " + msg.splitlines()[0][:300] + (" ..." if "\n" in msg else ""))

    def round(self, r, selected):
        for bench in selected:
            t = time.monotonic()
            getattr(self, "do_" + bench)(r)
            self.elapsed[bench] = self.elapsed.get(bench, 0.0) + time.monotonic() - t

    # -- (1) CPU-bound scaling -----------------------------------------------
    def do_scaling(self, r):
        n, tasks = self.n, self.cfg["tasks_per_worker"] * self.n
        for kernel in rotated(list(KERNELS), r):
            line = []
            for peer in rotated(self.peers, r):
                spec = {"bench": "scaling", "peer": peer.name, "kernel": kernel,
                        "size": self.sizes[kernel], "tasks": tasks,
                        "seq": True,  # every child also times the plain loop: a paired baseline
                        "workers": [] if peer.name == "sequential" else list(range(1, n + 1))}
                got = run_job(peer, spec)
                if "error" in got:
                    self.error("scaling", peer, kernel, got)
                    continue
                self.note("scaling", got)
                slot = self.raw["scaling"].setdefault(kernel, {}).setdefault(
                    peer.name, {"seq": [], "seq_others": [], "par": {}, "par_others": {}})
                if "seq" in got:
                    slot["seq"].append(got["seq"])
                    slot["seq_others"].append(got.get("seq_others"))
                for k, t in got["par"].items():
                    slot["par"].setdefault(k, []).append(t)
                    slot["par_others"].setdefault(k, []).append(got.get("par_others", {}).get(k))
                self.checksums.setdefault(kernel, {})[peer.name] = got["checksum"]
                times = ([f"seq {got['seq']:.3f}"] if "seq" in got else []) + \
                    [f"{k}w {t:.3f}" for k, t in got["par"].items()]
                line.append(f"{peer.name} {' '.join(times)}")
            say(f"  scaling {kernel:<13} " + " | ".join(line))
        if self.others["scaling"]:
            say(f"  (other processes kept {med(self.others['scaling'][-len(KERNELS) * len(self.peers):]):.2f} "
                "CPUs busy during these jobs, median)")

    # -- (2) round trip ----------------------------------------------------------
    def do_roundtrip(self, r):
        line = []
        for peer in rotated(self.peers, r):
            got = run_job(peer, {"bench": "roundtrip", "peer": peer.name, "workers": self.n,
                                 "seconds": self.cfg["roundtrip_seconds"]})
            if "error" in got:
                self.error("roundtrip", peer, None, got)
                continue
            self.note("roundtrip", got)
            self.raw["roundtrip"].setdefault(peer.name, []).append(got["us"])
            line.append(f"{peer.name} {got['us']:.1f} us")
        say("  roundtrip " + " | ".join(line))

    # -- (3) throughput ----------------------------------------------------------
    def do_throughput(self, r):
        line = []
        for peer in rotated(self.peers, r):
            got = run_job(peer, {"bench": "throughput", "peer": peer.name, "workers": self.n,
                                 "items": self.cfg["items"], "budget": self.cfg["item_budget"],
                                 "chunksizes": self.cfg["chunksizes"]})
            if "error" in got:
                self.error("throughput", peer, None, got)
                continue
            self.note("throughput", got)
            slot = self.raw["throughput"].setdefault(peer.name, {})
            for setting, m in got["settings"].items():
                s = slot.setdefault(setting, {"rate": [], "items": []})
                s["rate"].append(m["rate"])
                s["items"].append(m["items"])
            best = max(got["settings"].values(), key=lambda m: m["rate"])
            line.append(f"{peer.name} {best['rate']:,.0f}/s")
        say("  throughput (best setting) " + " | ".join(line))

    # -- (4) cold start -----------------------------------------------------------
    def do_coldstart(self, r):
        line = []
        for rep in range(self.cfg["cold_reps"]):
            for peer in rotated(self.peers, r + rep):
                got = run_cold(peer, self.n)
                if "error" in got:
                    self.error("coldstart", peer, None, got)
                    continue
                self.note("coldstart", got)
                slot = self.raw["coldstart"].setdefault(peer.name, {"first": [], "exit": []})
                slot["first"].append(got["first"])
                slot["exit"].append(got["exit"])
                if rep == 0:
                    line.append(f"{peer.name} {got['first'] * 1000:.0f} ms")
        say("  coldstart (first result) " + " | ".join(line))

    # -- (5) memory ------------------------------------------------------------------
    def do_memory(self, r):
        line = []
        for peer in rotated(self.peers, r):
            for k in (1, self.mem_workers):
                got = run_job(peer, {"bench": "memory", "peer": peer.name, "workers": k})
                if "error" in got:
                    self.error("memory", peer, f"{k} workers", got)
                    continue
                self.note("memory", got)
                slot = self.raw["memory"].setdefault(peer.name, {}).setdefault(str(k), {"rss_kb": [], "pss_kb": []})
                slot["rss_kb"].append(got["rss_kb"])
                slot["pss_kb"].append(got["pss_kb"])
            m = self.raw["memory"].get(peer.name, {})
            if peer.name != "sequential" and "1" in m and str(self.mem_workers) in m:
                per = (m[str(self.mem_workers)]["rss_kb"][-1] - m["1"]["rss_kb"][-1]) / (self.mem_workers - 1)
                line.append(f"{peer.name} {per / 1024:.1f} MB/worker")
        say("  memory (RSS per extra worker) " + " | ".join(line))

    # -- (6) large data --------------------------------------------------------------
    def do_large(self, r):
        line = []
        for peer in rotated(self.peers, r):
            got = run_job(peer, {"bench": "large", "peer": peer.name, "workers": self.n, "mb": PAYLOAD_MB,
                                 "reps": self.cfg["large_reps"], "cap": self.cfg["large_cap"], "share": True})
            if "error" in got:
                self.error("large", peer, None, got)
                continue
            self.note("large", got)
            slot = self.raw["large"].setdefault(peer.name, {"single": [], "broadcast": []})
            slot["single"].extend(got["single"])
            slot["broadcast"].append(got["broadcast"])
            if "shared" in got:
                sh = self.raw["large"].setdefault(peer.name + "-share", {"single": [], "broadcast": [], "share_once": []})
                sh["single"].extend(got["shared"]["single"])
                sh["broadcast"].append(got["shared"]["broadcast"])
                sh["share_once"].append(got["shared"]["share_once"])
            line.append(f"{peer.name} {got['broadcast'] / self.n * 1000:.1f} ms/worker")
        say("  large data (broadcast, per worker) " + " | ".join(line))


# ---------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------


def med(xs):
    return statistics.median(xs) if xs else None


def quiet(times, others):
    """The timings during which other processes kept fewer than QUIET CPUs busy."""
    return [t for t, o in zip(times, others) if o is not None and o < QUIET]


def summarize(suite):
    raw, n = suite.raw, suite.n
    out = {"others": {b: {"median": med(v), "max": max(v)} for b, v in suite.others.items() if v}}
    if raw["scaling"]:
        sc = {}
        for kernel, per in raw["scaling"].items():
            # The baseline: every plain-loop timing taken on the reference python
            # (each peer's child times the loop too, next to its pools).
            seqs, seq_others = [], []
            for peer in REFERENCE_PEERS:
                seqs += per.get(peer, {}).get("seq", [])
                seq_others += per.get(peer, {}).get("seq_others", [])
            base = med(seqs)
            quiet_seqs = quiet(seqs, seq_others)
            quiet_base = med(quiet_seqs)
            rows = {}
            for peer, slot in per.items():
                row = {"own_seq": med(slot["seq"]), "time": {}, "speedup": {}, "efficiency": {},
                       "best_speedup": {}, "quiet_speedup": {}, "quiet_rounds": {}, "paired_speedup": {}}
                for k, ts in slot["par"].items():
                    t = med(ts)
                    row["time"][k] = t
                    if base and t:
                        row["speedup"][k] = base / t
                        row["efficiency"][k] = base / t / int(k)
                        # Interference from other work only ever adds time: the
                        # fastest round of each is the least disturbed.
                        row["best_speedup"][k] = min(seqs) / min(ts)
                    if len(slot["seq"]) == len(ts):
                        # The same child timed its own loop seconds before: the
                        # ratio cancels slow drifts of the machine's speed.
                        row["paired_speedup"][k] = med([a / b for a, b in zip(slot["seq"], ts)])
                    q = quiet(ts, slot.get("par_others", {}).get(k, []))
                    row["quiet_rounds"][k] = len(q)
                    if q and quiet_base:
                        row["quiet_speedup"][k] = quiet_base / med(q)
                rows[peer] = row
            sc[kernel] = {"sequential": base, "sequential_range": [min(seqs), max(seqs)] if seqs else None,
                          "sequential_timings": len(seqs), "quiet_sequential": quiet_base, "quiet_sequential_rounds": len(quiet_seqs),
                          "size": suite.sizes.get(kernel),
                          "tasks": suite.cfg["tasks_per_worker"] * n, "peers": rows}
        out["scaling"] = sc
    if raw["roundtrip"]:
        out["roundtrip"] = {p: med(v) for p, v in raw["roundtrip"].items()}
    if raw["throughput"]:
        out["throughput"] = {p: {s: {"rate": med(m["rate"]), "items": max(m["items"])} for s, m in per.items()}
                             for p, per in raw["throughput"].items()}
    if raw["coldstart"]:
        out["coldstart"] = {p: {"first": med(v["first"]), "exit": med(v["exit"])} for p, v in raw["coldstart"].items()}
    if raw["memory"]:
        mw = str(suite.mem_workers)
        mem = {}
        for p, per in raw["memory"].items():
            one, many = per.get("1"), per.get(mw)
            row = {"rss_1": med(one["rss_kb"]) if one else None, "rss_n": med(many["rss_kb"]) if many else None,
                   "pss_1": med(one["pss_kb"]) if one else None, "pss_n": med(many["pss_kb"]) if many else None}
            if one and many:
                row["rss_per_worker"] = (row["rss_n"] - row["rss_1"]) / (suite.mem_workers - 1)
                row["pss_per_worker"] = (row["pss_n"] - row["pss_1"]) / (suite.mem_workers - 1)
            mem[p] = row
        out["memory"] = {"workers": suite.mem_workers, "peers": mem}
    if raw["large"]:
        out["large"] = {p: {"single": med(v["single"]), "broadcast": med(v["broadcast"]),
                            "per_worker": med(v["broadcast"]) / n if v["broadcast"] else None,
                            "share_once": med(v.get("share_once", []))}
                        for p, v in raw["large"].items()}
        if "sequential" in out["large"] and suite.copy:
            out["large"]["sequential"]["copy"] = suite.copy
    return out


def targets(summary, n):
    """parpy's targets from issue 4: (target, parpy's figure, met?)."""
    rows = []
    sc = summary.get("scaling")
    if sc and n >= 2:
        for key, title in (("speedup", "≥1.9x on 2 workers per kernel, ahead of every peer"),
                           ("paired_speedup", "the same, each child's 2-worker time against its own loop"),
                           ("quiet_speedup", f"the same, on quiet timings only (other processes < {QUIET} CPU busy)")):
            parts, met, seen = [], True, False
            for kernel, s in sc.items():
                me = s["peers"].get("parpy", {})
                sp = me.get(key, {}).get("2")
                if sp is None:
                    parts.append(f"{kernel}: no figure")
                    met = False
                    continue
                seen = True
                rivals = [(p, r[key].get("2")) for p, r in s["peers"].items()
                          if p not in ("parpy", "sequential") and r.get(key, {}).get("2")]
                best = max(rivals, key=lambda x: x[1]) if rivals else None
                met &= sp >= 1.9 and (best is None or sp > best[1])
                parts.append(f"{kernel} {sp:.2f}x"
                             + (f" ({me['quiet_rounds']['2']} quiet)" if key == "quiet_speedup" else "")
                             + (f" (best peer {best[0]} {best[1]:.2f}x)" if best else ""))
            if seen:
                rows.append((title, "; ".join(parts), met))
    rt = summary.get("roundtrip", {}).get("parpy")
    if rt is not None:
        rows.append(("round trip ≤ 10 µs", f"{rt:.1f} µs", rt <= 10))
    tp = summary.get("throughput")
    if tp and "parpy" in tp:
        mine = tp["parpy"].get("@parallel .map (default)", {}).get("rate")
        ppe = [(f"{p} {s}", m["rate"]) for p, per in tp.items() if p.startswith("process") for s, m in per.items()]
        if mine and ppe:
            best = max(ppe, key=lambda x: x[1])
            rows.append(("throughput ≥ 2x the best ProcessPoolExecutor setting",
                         f"{mine:,.0f} tasks/s = {mine / best[1]:.2f}x {best[0]} ({best[1]:,.0f} tasks/s)",
                         mine >= 2 * best[1]))
    lg = summary.get("large", {}).get("parpy")
    if lg and lg.get("per_worker") is not None:
        rows.append((f"{PAYLOAD_MB} MB payload per worker ≤ 5 ms", f"{lg['per_worker'] * 1000:.1f} ms",
                     lg["per_worker"] <= 0.005))
    sh = summary.get("large", {}).get("parpy-share")
    if sh and sh.get("per_worker") is not None:
        rows.append(("the same, sent as parpy.share(data)",
                     f"{sh['per_worker'] * 1000:.2f} ms (after one share() copy of {sh['share_once'] * 1000:.0f} ms)",
                     sh["per_worker"] <= 0.005))
    cs = summary.get("coldstart", {})
    if "parpy" in cs and "process-spawn" in cs:
        me, sp = cs["parpy"]["first"], cs["process-spawn"]["first"]
        rows.append(("cold start ≤ 1/3 of ProcessPoolExecutor (spawn)",
                     f"{me * 1000:.0f} ms vs {sp * 1000:.0f} ms = {me / sp:.2f}x", me <= sp / 3))
    mem = summary.get("memory", {}).get("peers", {}).get("parpy")
    if mem and mem.get("rss_per_worker") is not None:
        per = mem["rss_per_worker"] / 1024
        rows.append(("RSS per worker ≤ 5 MB", f"{per:.1f} MB", per <= 5))
    return rows


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def ms(s):
    return "–" if s is None else (f"{s * 1000:.2f} ms" if s < 0.01 else f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def peer_order(names):
    return [p for p in PEERS + ("parpy-share",) if p in names]


def spread(sc):
    """How much the very same sequential loop varied, in words."""
    parts = []
    for kernel, s in sc.items():
        rng = s.get("sequential_range")
        if rng and rng[0]:
            parts.append(f"{kernel} {rng[0]:.2f}-{rng[1]:.2f} s ({(rng[1] / rng[0] - 1) * 100:.0f}%)")
    return ("the same sequential loop on the reference python took " + ", ".join(parts) + ".") if parts else ""


def verdict(summary, n):
    """Where parpy is ahead of every peer and where not: against all peers, and
    against those that run Python code in parallel (not ThreadPoolExecutor)."""
    def tally(exclude):
        wins, losses = [], []

        def rank(name, values, higher):
            mine = values.get("parpy")
            rivals = {p: v for p, v in values.items()
                      if p not in ("parpy", "sequential", "parpy-share") + exclude and v}
            if not mine or not rivals:
                return
            best = (max if higher else min)(rivals, key=rivals.get)
            ahead = mine > rivals[best] if higher else mine < rivals[best]
            (wins if ahead else losses).append(name if ahead else f"{name} (best: {LABELS[best]})")

        for kernel, s in summary.get("scaling", {}).items():
            rank(f"{kernel}", {p: r["speedup"].get(str(n)) for p, r in s["peers"].items()}, True)
        if "roundtrip" in summary:
            rank("round trip", summary["roundtrip"], False)
        if "throughput" in summary:
            rank("throughput", {p: max(m["rate"] for m in per.values()) for p, per in summary["throughput"].items()}, True)
        if "coldstart" in summary:
            rank("cold start", {p: v["first"] for p, v in summary["coldstart"].items()}, False)
        if "memory" in summary:
            rank("memory per worker", {p: v.get("rss_per_worker") for p, v in summary["memory"]["peers"].items()}, False)
        if "large" in summary:
            rank("large data", {p: v.get("per_worker") for p, v in summary["large"].items()}, False)
        return wins, losses

    wins, losses = tally(())
    if not wins and not losses:
        return None
    pwins, plosses = tally(("threads",))
    return (f"**In short** (medians, scaling on {n} workers): parpy is ahead of every peer on "
            + (", ".join(wins) or "nothing") + "; behind on " + (", ".join(losses) or "nothing") + ". "
            + "Against the peers that run Python code in parallel (all but ThreadPoolExecutor), it is ahead on "
            + (", ".join(pwins) or "nothing") + "; behind on " + (", ".join(plosses) or "nothing") + ".")


def _placing(peers, key, n, label):
    """" {label}: parpy's speedup by ``key`` on n workers, its place, and the
    best (or next) peer", or "" when parpy has no such figure."""
    sp = {p: r[key][str(n)] for p, r in peers.items()
          if p != "sequential" and r.get(key, {}).get(str(n))}
    if "parpy" not in sp:
        return ""
    rank = sorted(sp, key=sp.get, reverse=True)
    top = next((p for p in rank if p != "parpy"), None)
    other = (f" ({'next' if rank[0] == 'parpy' else 'best'}: {LABELS[top]} {sp[top]:.2f}x)."
             if top else ".")
    return f" {label}: {sp['parpy']:.2f}x, place {rank.index('parpy') + 1} of {len(rank)}" + other


def reading(summary, n):
    """Plain sentences on where parpy wins and loses, from the figures alone."""
    lines = []
    v = verdict(summary, n)
    if v:
        lines += [v, ""]
    sc = summary.get("scaling")
    others = summary.get("others", {}).get("scaling")
    if sc and n >= 2 and others:
        busy = (f"other processes kept a median of {others['median']:.2f} of the {n} CPUs busy during the scaling "
                f"jobs (up to {others['max']:.2f})")
        if others["median"] >= QUIET:
            busy += (f", so {n}-worker runs often did not get {n} free CPUs and every peer's median speedup is "
                     "pulled down; the quiet figures use only timings taken while no other process was busy")
        lines.append(f"* **Noise**: {busy}. The machine's host is shared too, which no counter here shows: "
                     + spread(sc) + " Differences of 10-20% between peers, and efficiencies above 100%, "
                     "are within that noise.")
    if sc and n >= 2:
        for kernel, s in sc.items():
            peers = s["peers"]
            if "parpy" not in peers or not peers["parpy"]["speedup"].get(str(n)):
                continue
            ranked = sorted(((r["speedup"][str(n)], p) for p, r in peers.items()
                             if p != "sequential" and r["speedup"].get(str(n))), reverse=True)
            place = [p for _, p in ranked].index("parpy") + 1
            me = peers["parpy"]["speedup"][str(n)]
            top = ranked[0] if ranked[0][1] != "parpy" else (ranked[1] if len(ranked) > 1 else None)
            lines.append(f"* **{kernel}**: parpy reaches {me:.2f}x on {n} workers "
                         f"({me / n * 100:.0f}% efficiency), place {place} of {len(ranked)}"
                         + (f"; {'next' if place == 1 else 'best'} is {LABELS[top[1]]} at {top[0]:.2f}x."
                            if top else "."))
            lines[-1] += _placing(peers, "paired_speedup", n, "Paired with each child's own loop")
            lines[-1] += _placing(peers, "quiet_speedup", n, "On quiet timings")
            own = peers["parpy"].get("own_seq")
            if own and s["sequential"]:
                lines[-1] += (f" parpy's main interpreter runs the loop in {own / s['sequential'] * 100:.0f}% "
                              "of the reference python's time.")
    rt = summary.get("roundtrip")
    if rt and "parpy" in rt:
        pools = {p: v for p, v in rt.items() if p != "sequential"}
        best = min(pools, key=pools.get)
        if best == "parpy":
            nxt = min((p for p in pools if p != "parpy"), key=pools.get)
            lines.append(f"* **Round trip**: parpy {rt['parpy']:.1f} µs per submit().result(), the fastest pool "
                         f"(next: {LABELS[nxt]}, {pools[nxt]:.1f} µs).")
        else:
            lines.append(f"* **Round trip**: parpy {rt['parpy']:.1f} µs per submit().result(); "
                         f"fastest pool is {LABELS[best]} at {pools[best]:.1f} µs.")
    tp = summary.get("throughput")
    if tp and "parpy" in tp:
        mine = tp["parpy"].get("@parallel .map (default)", {}).get("rate")
        flat = [(m["rate"], p, s) for p, per in tp.items() if p not in ("parpy", "sequential") for s, m in per.items()]
        if mine and flat:
            best = max(flat)
            lines.append(f"* **Throughput**: parpy's `@parallel` map does {mine:,.0f} tasks/s, "
                         f"{mine / best[0]:.1f}x the best peer setting ({LABELS[best[1]]}, {best[2]}: {best[0]:,.0f}/s)"
                         + (f"; the plain loop does {tp['sequential']['map (no pool)']['rate']:,.0f}/s."
                            if "sequential" in tp else "."))
        ex1 = tp["parpy"].get("Executor.map (chunksize=1)", {}).get("rate")
        if ex1:
            lines.append(f"  `parpy.Executor.map` keeps concurrent.futures' default chunksize=1 and does {ex1:,.0f} tasks/s.")
    cs = summary.get("coldstart")
    if cs and "parpy" in cs:
        pools = {p: v["first"] for p, v in cs.items() if p != "sequential"}
        order = sorted(pools, key=pools.get)
        lines.append(f"* **Cold start**: parpy's first result comes {cs['parpy']['first'] * 1000:.0f} ms after exec, "
                     f"place {order.index('parpy') + 1} of {len(order)} (fastest: {LABELS[order[0]]}, "
                     f"{pools[order[0]] * 1000:.0f} ms"
                     + (f"; the bare interpreter takes {cs['sequential']['first'] * 1000:.0f} ms)." if "sequential" in cs else ")."))
    mem = summary.get("memory", {}).get("peers")
    if mem and "parpy" in mem and mem["parpy"].get("rss_per_worker") is not None:
        pools = {p: v["rss_per_worker"] for p, v in mem.items() if p != "sequential" and v.get("rss_per_worker") is not None}
        order = sorted(pools, key=pools.get)
        lines.append(f"* **Memory**: each extra parpy worker costs {pools['parpy'] / 1024:.1f} MB of RSS "
                     f"(place {order.index('parpy') + 1} of {len(order)}; threads {pools.get('threads', 0) / 1024:.1f} MB, "
                     f"a spawned process {pools.get('process-spawn', 0) / 1024:.1f} MB).")
    lg = summary.get("large")
    if lg and "parpy" in lg:
        pools = {p: v["per_worker"] for p, v in lg.items()
                 if p not in ("sequential", "parpy-share") and v.get("per_worker") is not None}
        order = sorted(pools, key=pools.get)
        lines.append(f"* **Large data**: {PAYLOAD_MB} MB to each worker costs parpy {pools['parpy'] * 1000:.1f} ms per worker "
                     f"(place {order.index('parpy') + 1} of {len(order)}; threads share the object and take "
                     f"{pools.get('threads', 0) * 1000:.2f} ms)."
                     + (f" One plain copy of {PAYLOAD_MB} MB takes {lg['sequential']['copy'] * 1000:.1f} ms here."
                        if lg.get("sequential", {}).get("copy") else ""))
        sh = lg.get("parpy-share")
        if sh and sh.get("per_worker") is not None:
            lines.append(f"  Through `parpy.share()` a send costs {sh['per_worker'] * 1000:.2f} ms per worker, after "
                         f"one {sh['share_once'] * 1000:.1f} ms copy into shared memory.")
    return lines


def write_markdown(path, meta, summary, peers, errors):
    n = meta["workers"]
    md = ["# Benchmarks: parpy side by side with its peers", ""]
    md.append(f"Written by `{meta['command']}` on {meta['date']} ({meta['mode']} mode, "
              f"{meta['rounds']} alternating round{'s' if meta['rounds'] != 1 else ''}, "
              f"{meta['elapsed_s'] / 60:.1f} min). Every figure is a median over the rounds; "
              "in each round every peer runs once, in a fresh process, in an order that rotates from round to round. "
              "Raw samples: [benchmarks.json](benchmarks.json).")
    md.append("")
    m = meta["machine"]
    md.append("## Machine")
    md.append("")
    md.append(table(["", ""], [
        ("CPU", f"{m['cpu_model']}, {m['cpus']} logical CPUs ({m['cpus_usable']} usable)"),
        ("memory", f"{m['memory_gib']} GiB"),
        ("OS", m["os"]),
        ("load average (1 min) at start / end", f"{m['loadavg_start'][0]:.2f} / {m['loadavg_end'][0]:.2f}"),
        ("CPU pressure (PSI some, avg60) at start / end",
         f"{m['cpu_pressure_start']}% / {m['cpu_pressure_end']}%" if m.get("cpu_pressure_end") is not None else "–"),
        ("CPUs kept busy by other processes during the jobs (median, per workload)",
         ", ".join(f"{b} {v['median']:.2f}" for b, v in summary.get("others", {}).items()) or "–"),
        ("reference python (peers)", f"{meta['python']['reference']} ({meta['python']['reference_version']})"),
        ("parpy", f"{meta['python']['parpy']} (embeds {meta['python']['parpy_version']}; binary sha256 "
                  f"{meta['python']['parpy_sha256']}, source tree {meta['python']['git']})"),
        ("free-threaded python", meta["python"].get("free_threaded") or "not given"),
        ("packages in the venv", ", ".join(f"{k} {v}" for k, v in meta["packages"].items())),
    ]))
    md.append("")
    md.append("The machine is shared with other work, so single timings are noisy; read the figures as medians, "
              "not as exact values. N = os.cpu_count() = %d workers unless a section says otherwise." % n)
    md.append("")
    md.append("## Peers")
    md.append("")
    md.append(table(["peer", "runs as", "status"], [
        (p.label, ("`" + os.path.basename(p.exe) + "`") if p.exe else "–",
         "measured" if p.ok else "skipped: " + p.reason) for p in peers]))
    md.append("")
    rows = targets(summary, n)
    if rows:
        md.append("## parpy's targets")
        md.append("")
        md.append(table(["target", "parpy", "status"], [(t, v, "**met**" if ok else "**not met**") for t, v, ok in rows]))
        md.append("")
    lines = reading(summary, n)
    if lines:
        md.append("## Reading")
        md.append("")
        md.extend(lines)
        md.append("")
    if os.path.exists(os.path.join(os.path.dirname(path), "benchmarks.png")):
        md.append("![speedup per kernel and per-task overhead per peer](benchmarks.png)")
        md.append("")

    sc = summary.get("scaling")
    if sc:
        md.append("## 1. CPU-bound scaling")
        md.append("")
        md.append(f"Each kernel (benches/kernels.py) is mapped over {meta['tasks']} equal, independent calls with "
                  "`pool.map`, for 1..N workers, on a warmed-up pool. Speedup is over the sequential loop on the "
                  "reference python; efficiency is speedup / workers. The size of one call is calibrated so "
                  f"that it takes about {meta['config']['task_seconds'] * 1000:.0f} ms on the reference python. "
                  "All peers compute the same checksums (checked).")
        md.append("")
        ks = [str(k) for k in range(1, n + 1)]
        eks = ks[1:]  # efficiency at 1 worker is the speedup
        for kernel, s in sc.items():
            rng = s.get("sequential_range")
            md.append(f"### {kernel} (size {s['size']}, {s['tasks']} calls; sequential {ms(s['sequential'])}"
                      + (f", from {ms(rng[0])} to {ms(rng[1])} over {s['sequential_timings']} timings" if rng else "")
                      + f"; on quiet timings {ms(s['quiet_sequential'])} (of {s['quiet_sequential_rounds']}))")
            md.append("")
            header = ["peer"] + [f"{k} worker{'s' if k != '1' else ''}" for k in ks] + \
                     [f"speedup {k}w" for k in ks] + [f"efficiency {k}w" for k in eks] + \
                     [f"speedup {n}w, paired", f"speedup {n}w, quiet (timings)", "own sequential loop"]
            rows = []
            for p in peer_order(s["peers"]):
                r = s["peers"][p]
                if p == "sequential":
                    rows.append([LABELS[p]] + [ms(s["sequential"])] + ["–"] * (len(ks) - 1 + len(ks) + len(eks) + 2)
                                + [ms(r["own_seq"])])
                    continue
                qs = r["quiet_speedup"].get(str(n))
                rows.append([("**parpy**" if p == "parpy" else LABELS[p])]
                            + [ms(r["time"].get(k)) for k in ks]
                            + [f"{r['speedup'][k]:.2f}x" if k in r["speedup"] else "–" for k in ks]
                            + [f"{r['efficiency'][k] * 100:.0f}%" if k in r["efficiency"] else "–" for k in eks]
                            + [f"{r['paired_speedup'][str(n)]:.2f}x" if str(n) in r["paired_speedup"] else "–"]
                            + [f"{qs:.2f}x ({r['quiet_rounds'][str(n)]})" if qs else "no quiet timing"]
                            + [ms(r["own_seq"]) if r["own_seq"] else "–"])
            md.append(table(header, rows))
            md.append("")
        md.append(f"The machine is shared, so each timing also records how many CPUs other processes kept busy "
                  f"while it ran (from /proc/stat, less the benchmark's own CPU time). \"speedup {n}w, quiet\": "
                  f"the median of the quiet sequential timings over the median of the quiet {n}-worker timings, where "
                  f"quiet means other processes kept fewer than {QUIET} CPUs busy (in brackets: how many of the "
                  f"{meta['rounds']} {n}-worker timings were quiet). \"speedup {n}w, paired\": every child times the plain loop in its "
                  f"own main interpreter right before its pools; this is the median over the rounds of that loop's time "
                  f"over the {n}-worker time of the same child, which cancels slower drifts of the machine's speed. "
                  "\"own sequential loop\": the median of those loop timings (for parpy: its embedded CPython's main "
                  "interpreter; for the free-threaded peer: that build). The sequential baseline is the median of the "
                  "loop timings of every child that runs on the reference python.")
        md.append("")
    rt = summary.get("roundtrip")
    if rt:
        md.append("## 2. Per-task round trip")
        md.append("")
        md.append(f"`pool.submit(tiny, i).result()` one call at a time (`tiny(x) = x + 1`), on a warmed-up pool of "
                  f"{n} workers; median of three runs of about {meta['config']['roundtrip_seconds']} s each per round. "
                  "The sequential row is a plain call, for scale.")
        md.append("")
        md.append(table(["peer", "µs per task"],
                        [(("**parpy**" if p == "parpy" else LABELS[p]) + (" (plain call)" if p == "sequential" else ""),
                          f"{rt[p]:.2f}" if rt[p] < 10 else f"{rt[p]:.1f}") for p in peer_order(rt)]))
        md.append("")
    tp = summary.get("throughput")
    if tp:
        md.append("## 3. Tiny-task throughput")
        md.append("")
        md.append(f"`map(tiny, range({meta['config']['items']:,}))` on a warmed-up pool of {n} workers, results "
                  "collected in order. A setting that would need more than "
                  f"{meta['config']['item_budget']} s for all items is timed on as many items as fit "
                  "(the \"items\" column); the rate is what is compared. ProcessPoolExecutor also runs a few chunk sizes.")
        md.append("")
        rows = []
        for p in peer_order(tp):
            for setting, m in tp[p].items():
                rows.append([("**parpy**" if p == "parpy" else LABELS[p]), f"`{setting}`", f"{m['items']:,}",
                             f"{m['rate']:,.0f}"])
        md.append(table(["peer", "setting", "items", "tasks/s"], rows))
        md.append("")
        for p in peer_order(tp):
            if p.startswith("process"):
                best = max(tp[p].items(), key=lambda x: x[1]["rate"])
                md.append(f"* best chunk size for {LABELS[p]}: `{best[0]}`, {best[1]['rate']:,.0f} tasks/s")
        md.append("")
    cs = summary.get("coldstart")
    if cs:
        md.append("## 4. Cold start")
        md.append("")
        md.append(f"A script (benches/coldstart.py) that imports its helpers, makes a pool of {n} workers (parpy: the "
                  "default pool, through `@parallel`) and makes one call, timed from just before the process is "
                  "started to the moment the first result is back, and to process exit. "
                  "The sequential row calls the function directly: the interpreter's own start.")
        md.append("")
        md.append(table(["peer", "first result", "process exit"],
                        [(("**parpy**" if p == "parpy" else LABELS[p]), ms(cs[p]["first"]), ms(cs[p]["exit"]))
                         for p in peer_order(cs)]))
        md.append("")
    mem = summary.get("memory")
    if mem:
        w = mem["workers"]
        md.append("## 5. Memory")
        md.append("")
        md.append(f"RSS (VmRSS from /proc, summed over the process and all its child processes) with an idle, "
                  f"warmed-up pool of 1 and of {w} workers; per worker = (RSS({w}) - RSS(1)) / {w - 1}. "
                  f"{w} rather than N workers, so that the difference is not one noisy step. PSS (proportional set "
                  "size, which splits pages shared between processes) is given too: it is fairer to forked processes.")
        md.append("")
        rows = []
        for p in peer_order(mem["peers"]):
            r = mem["peers"][p]
            mb = lambda kb: "–" if kb is None else f"{kb / 1024:.1f} MB"  # noqa: E731
            rows.append([("**parpy**" if p == "parpy" else LABELS[p]), mb(r["rss_1"]), mb(r["rss_n"]),
                         mb(r.get("rss_per_worker")) if p != "sequential" else "–",
                         mb(r.get("pss_per_worker")) if p != "sequential" else "–"])
        md.append(table(["peer", "RSS, 1 worker", f"RSS, {w} workers", "RSS per worker", "PSS per worker"], rows))
        md.append("")
    lg = summary.get("large")
    if lg:
        md.append("## 6. Large data")
        md.append("")
        md.append(f"One {PAYLOAD_MB} MB `bytes` object, sent with its length coming back: to one worker at a time "
                  f"(`submit(size, data).result()`) and to all {n} workers at once (`map(size, [data] * {n})`, "
                  f"reported per worker = total / {n}). The sequential row is a local `len()`; its copy time is one "
                  "plain copy of the payload on this machine, for scale. \"parpy with parpy.share()\" sends "
                  "`parpy.share(data)` instead, parpy's zero-copy wrapper; the one copy that share() makes is "
                  "its own column, paid once however many sends follow.")
        md.append("")
        rows = []
        for p in peer_order(lg):
            r = lg[p]
            rows.append([("**parpy**" if p == "parpy" else LABELS[p]) + (" (local len)" if p == "sequential" else ""),
                         ms(r["single"]), ms(r["broadcast"]), ms(r["per_worker"]),
                         ms(r["share_once"]) if r.get("share_once") else "–"])
        md.append(table(["peer", "one send", f"all {n} workers", "per worker", "share() once"], rows))
        if lg.get("sequential", {}).get("copy"):
            md.append("")
            md.append(f"One copy of {PAYLOAD_MB} MB (`bytearray(data)`) on this machine: {ms(lg['sequential']['copy'])}.")
        md.append("")
    if errors:
        md.append("## Errors during the run")
        md.append("")
        md.extend(f"* `{e.splitlines()[0][:300]}`" for e in errors)
        md.append("")
    md.append("## How to run")
    md.append("")
    md.append("```sh\ncargo build --release\n"
              "target/release/parpy benches/run.py --quick              # about 1.5 minutes (under 3), writes benches/results/\n"
              "target/release/parpy benches/run.py --out docs/          # the full run that wrote this page\n"
              "target/release/parpy benches/run.py --python-ft /path/to/python3.13t --out docs/\n```")
    md.append("")
    md.append("`--only scaling,roundtrip,throughput,coldstart,memory,large` runs a subset; `--rounds N` overrides "
              "the mode's rounds; `--parpy PATH` and `--python PATH` pick the binaries; `--render DIR` rewrites "
              "DIR/benchmarks.md and .png from DIR/benchmarks.json without measuring. The venv lives in "
              "benches/.venv (git-ignored). `bash benches/smoke.sh` is a one-minute smoke check of the suite.")
    md.append("")
    # Sections written by hand (other Pythons' runs) follow KEEP; a rerun keeps them.
    try:
        with open(path) as f:
            old = f.read()
        if KEEP in old:
            md.append(old[old.index(KEEP):].rstrip("\n") + "\n")
    except OSError:
        pass
    with open(path, "w") as f:
        f.write("\n".join(md))


def publish(out, meta, suite, peers, venv_py):
    """Writes benchmarks.json (raw samples and their summary), .png and .md to ``out``."""
    summary = summarize(suite)
    os.makedirs(out, exist_ok=True)
    jpath = os.path.join(out, "benchmarks.json")
    with open(jpath, "w") as f:
        json.dump({"meta": meta, "summary": summary, "targets": targets(summary, suite.n), "raw": suite.raw,
                   "others": suite.others, "copy": suite.copy, "errors": suite.errors,
                   "kernel_sizes": suite.sizes}, f, indent=1)
    png = os.path.join(out, "benchmarks.png")
    if venv_py and importable(venv_py, "matplotlib"):
        p = subprocess.run([venv_py, CHART, jpath, png], capture_output=True, text=True)
        if p.returncode != 0:
            say("chart: failed: " + p.stderr.strip()[-600:])
    else:
        say("chart: skipped (matplotlib is not in the venv)")
    mpath = os.path.join(out, "benchmarks.md")
    write_markdown(mpath, meta, summary, peers, suite.errors)
    return mpath, jpath, png


def render(folder):
    """Rewrites the .md and .png (and the summary in the .json) of ``folder``
    from the raw samples of its benchmarks.json, without measuring anything."""
    with open(os.path.join(folder, "benchmarks.json")) as f:
        data = json.load(f)
    meta = data["meta"]
    peers = []
    for name in PEERS:
        info = meta["peers"].get(name)
        if info is None:
            continue
        p = Peer(name, info["exe"], info["skipped"])
        p.info = info["info"]
        peers.append(p)
    suite = Suite(None, meta["config"], peers, meta["workers"])
    suite.raw = data["raw"]
    suite.others = data.get("others", {b: [] for b in BENCHES})
    suite.copy = data.get("copy")
    suite.errors = data.get("errors", [])
    suite.sizes = data.get("kernel_sizes", {})
    py = os.path.join(VENV, "bin", "python")
    return publish(folder, meta, suite, peers, py if os.access(py, os.X_OK) else None)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(prog="parpy benches/run.py",
                                 description="parpy side by side with its peers; writes benchmarks.md/.json/.png.")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and smaller sizes (a few minutes)")
    ap.add_argument("--python-ft", metavar="PATH", help="a free-threaded python for the free-threaded peer")
    ap.add_argument("--out", metavar="DIR", default=os.path.join(HERE, "results"),
                    help="where to write benchmarks.md/.json/.png (default: benches/results/)")
    ap.add_argument("--parpy", metavar="PATH", help="the parpy binary (default: this one, or target/release/parpy)")
    ap.add_argument("--python", metavar="PATH", help="the reference python (default: the one parpy embeds)")
    ap.add_argument("--only", metavar="LIST", help="comma-separated subset of: " + ",".join(BENCHES))
    ap.add_argument("--rounds", type=int, help="override the mode's number of rounds")
    ap.add_argument("--peers", metavar="LIST", help="comma-separated subset of: " + ",".join(PEERS)
                    + " (the sequential loop always runs: it is the baseline)")
    ap.add_argument("--render", metavar="DIR", help="only rewrite DIR/benchmarks.md and .png from DIR/benchmarks.json")
    args = ap.parse_args()
    if args.render:
        for path in render(args.render):
            if os.path.exists(path):
                say("wrote " + os.path.relpath(path))
        return 0

    selected = list(BENCHES)
    if args.only:
        selected = [b.strip() for b in args.only.split(",") if b.strip()]
        bad = [b for b in selected if b not in BENCHES]
        if bad:
            ap.error(f"--only: unknown workload(s) {', '.join(bad)}; choose from {', '.join(BENCHES)}")
    if args.peers:
        args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
        bad = [p for p in args.peers if p not in PEERS]
        if bad:
            ap.error(f"--peers: unknown peer(s) {', '.join(bad)}; choose from {', '.join(PEERS)}")
    mode = "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    if args.rounds:
        cfg["rounds"] = args.rounds
    start = time.monotonic()
    n = os.cpu_count() or 1

    ref = reference_python(args)
    venv_py, packages, notes = ensure_venv(ref)
    parpy_src, parpy_why = find_parpy(args)
    parpy_exe, parpy_sha = snapshot(parpy_src) if parpy_src and os.access(parpy_src, os.X_OK) else (parpy_src, None)
    say(f"reference python: {ref} ({python_version(ref)}); venv: {os.path.relpath(VENV, ROOT)}")
    say(f"parpy: {parpy_src or '-'} ({parpy_why}; sha256 {parpy_sha}, run from a private copy)")
    peers = discover(args, venv_py, parpy_exe, parpy_why)
    for p in peers:
        say(f"  {'found  ' if p.ok else 'skipped'} {p.label:<42} "
            + (os.path.relpath(p.exe, ROOT) if p.ok and p.exe.startswith(ROOT) else (p.exe or "") if p.ok else p.reason))
    ref_v = python_version(venv_py)
    by_name = {p.name: p for p in peers}
    parpy_v = by_name["parpy"].info.get("python") if by_name["parpy"].ok else None
    if parpy_v and parpy_v != ref_v:
        say(f"warning: parpy embeds Python {parpy_v} but the peers run on {ref_v}")

    suite = Suite(args, cfg, peers, n)
    seq = next(p for p in peers if p.name == "sequential")
    if "scaling" in selected:
        suite.sizes = calibrate(seq, cfg)
        say("kernel sizes: " + ", ".join(f"{k}={v}" for k, v in suite.sizes.items())
            + f" ({cfg['tasks_per_worker'] * n} calls of ~{cfg['task_seconds'] * 1000:.0f} ms each)")
    say(f"{mode} mode: {cfg['rounds']} round(s) of {', '.join(selected)}; N = {n} workers")
    partial = False
    try:
        for r in range(cfg["rounds"]):
            say(f"round {r + 1}/{cfg['rounds']}  ({(time.monotonic() - start) / 60:.1f} min)")
            suite.round(r, selected)
    except KeyboardInterrupt:
        partial = True
        say("interrupted: writing what was measured so far")

    # Consistency: every peer computed the same kernel results.
    for kernel, sums in suite.checksums.items():
        if len(set(sums.values())) > 1:
            suite.errors.append(f"scaling / {kernel}: peers computed different results: {sums}")

    # Reference copy cost for the large-data reading.
    if "large" in selected and "sequential" in suite.raw["large"]:
        got = run_job(seq, {"bench": "copy", "mb": PAYLOAD_MB})
        if "error" not in got:
            suite.copy = got["copy"]

    machine = machine_info()
    machine["loadavg_start"] = suite_load_start
    machine["loadavg_end"] = list(os.getloadavg())
    machine["cpu_pressure_start"] = suite_pressure_start
    machine["cpu_pressure_end"] = cpu_pressure()
    prog = "parpy" if running_under_parpy() else os.path.basename(sys.executable)
    argv = [os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd())] + sys.argv[1:]
    meta = {
        "command": prog + " " + shlex.join(argv),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "mode": mode + (" (interrupted)" if partial else ""),
        "rounds": cfg["rounds"],
        "config": cfg,
        "workers": n,
        "tasks": cfg["tasks_per_worker"] * n,
        "elapsed_s": time.monotonic() - start,
        "bench_seconds": {k: round(v, 1) for k, v in suite.elapsed.items()},
        "machine": machine,
        "python": {
            "reference": ref, "reference_version": ref_v,
            "parpy": parpy_src, "parpy_version": parpy_v, "parpy_sha256": parpy_sha,
            "git": git_describe(parpy_src) if parpy_src else None,
            "free_threaded": (f"{args.python_ft} ({by_name['free-threaded'].info.get('python')})" if args.python_ft else None),
        },
        "packages": packages,
        "setup_notes": notes,
        "peers": {p.name: {"label": p.label, "exe": p.exe, "skipped": p.reason, "info": p.info} for p in peers},
        "benches": selected,
    }
    mpath, jpath, png = publish(args.out, meta, suite, peers, venv_py)
    summary = summarize(suite)

    say("")
    for t, v, ok in targets(summary, n):
        say(f"target {'MET    ' if ok else 'NOT MET'} {t}: {v}")
    if suite.errors:
        say(f"{len(suite.errors)} error(s); see {os.path.relpath(mpath)}")
    say(f"wrote {os.path.relpath(mpath)}, {os.path.relpath(jpath)}"
        + (f", {os.path.relpath(png)}" if os.path.exists(png) else "")
        + f" in {(time.monotonic() - start) / 60:.1f} min")
    return 1 if partial else 0


suite_load_start = list(os.getloadavg())
suite_pressure_start = cpu_pressure()

if __name__ == "__main__":
    sys.exit(main())
