"""Start-up of a bundled hello world against `parpy hello.py`, and artifact sizes.

    python3 packaging/measure-startup.py [--parpy target/release/parpy] [--runs 20] [--dist DIR]

Builds a bundle of a one-line hello world into a temporary folder, then runs,
alternating within each round so that machine load hits all alike:

  * `parpy hello.py`                       the reference;
  * the bundle, later run                   runtime already unpacked and verified;
  * the bundle, changed file                 `touch`ed first, so it hashes its payload
                                            again (what a later run would cost if it
                                            hashed every time);
  * the bundle, first run                    a fresh cache folder each time: hash + unpack.

Prints the median and quartiles of each, in milliseconds, and the sizes of
the bundle (and of the distribution files in --dist, if given).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t) * 1000
    if r.returncode != 0 or r.stdout != b"hello\n":
        sys.exit(f"{cmd} failed: {r.returncode} {r.stdout!r} {r.stderr.decode(errors='replace')}")
    return dt


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--parpy", default=os.path.join(root, "target", "release", "parpy"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--dist", help="folder with the files of packaging/dist.sh, to list their sizes")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="parpy-measure-")
    try:
        hello = os.path.join(tmp, "hello.py")
        with open(hello, "w") as f:
            f.write('print("hello")\n')
        app = os.path.join(tmp, "hello")
        t = time.perf_counter()
        subprocess.run([a.parpy, "bundle", hello, "-o", app], check=True)
        build_s = time.perf_counter() - t

        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PARPY_"))}
        env["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
        timed([app], env)  # unpack once, for the later runs
        for _ in range(3):  # warm the page cache
            timed([a.parpy, hello], env)
            timed([app], env)

        series = {"parpy hello.py": [], "bundle, later run": [], "bundle, changed file (re-hash)": [],
                  "bundle, first run (hash + unpack)": []}
        for i in range(a.runs):
            series["parpy hello.py"].append(timed([a.parpy, hello], env))
            series["bundle, later run"].append(timed([app], env))
            os.utime(app)  # new ctime: the next run hashes the payload again
            series["bundle, changed file (re-hash)"].append(timed([app], env))
            fresh = dict(env, XDG_CACHE_HOME=os.path.join(tmp, f"fresh{i}"))
            series["bundle, first run (hash + unpack)"].append(timed([app], fresh))
            shutil.rmtree(fresh["XDG_CACHE_HOME"])

        print(f"\nstart-up, {a.runs} alternating rounds, ms   median   (q1 .. q3)")
        ref = statistics.median(series["parpy hello.py"])
        for name, xs in series.items():
            q = statistics.quantiles(xs, n=4)
            print(f"  {name:36s} {statistics.median(xs):7.1f}   ({q[0]:.1f} .. {q[2]:.1f})"
                  f"   x{statistics.median(xs) / ref:.2f}")
        print("\nsizes")
        print(f"  bundle of hello.py: {os.path.getsize(app) / 1e6:.1f} MB (built in {build_s:.1f} s)")
        unpacked = sum(os.path.getsize(os.path.join(d, f))
                       for d, _, fs in os.walk(os.path.join(tmp, "cache")) for f in fs)
        print(f"  unpacked runtime in the cache: {unpacked / 1e6:.1f} MB")
        if a.dist:
            for f in sorted(os.listdir(a.dist)):
                p = os.path.join(a.dist, f)
                if os.path.isfile(p):
                    print(f"  {f}: {os.path.getsize(p) / 1e6:.1f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
