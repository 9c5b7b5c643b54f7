"""`import parpy` and first-map times: plain python (the wheel's extension
module, the package from source/.pyc) against the venv's parpy command (the
same code frozen into the launcher), side by side, medians over rounds.

    python3 benches/wheel_startup.py VENV [ROUNDS]

VENV has the wheel installed (e.g. target/test-venv-wheel after
`cargo test --release --test it -- wheel`).
"""

import json
import statistics
import subprocess
import sys
import time

PROBE = (
    "import time; t0 = time.perf_counter(); import parpy; t1 = time.perf_counter(); "
    "parpy.parallel(abs).map(range(8)); t2 = time.perf_counter(); "
    "parpy.parallel(abs).map(range(8)); t3 = time.perf_counter(); "
    "print(t1 - t0, t2 - t1, t3 - t2)"
)


def main():
    venv = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    ways = {"python": [f"{venv}/bin/python", "-c", PROBE],
            "parpy command": [f"{venv}/bin/parpy", "-c", PROBE]}
    samples = {w: [] for w in ways}
    wall = {w: [] for w in ways}
    env = {"PARPY_WORKERS": "2", "PATH": "/usr/bin:/bin"}
    for _ in range(rounds):
        for way, cmd in ways.items():  # interleaved: the same load for both
            t = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            wall[way].append(time.perf_counter() - t)
            samples[way].append([float(x) for x in out.stdout.split()])
    result = {}
    for way, s in samples.items():
        imp, first, second = (statistics.median(col) * 1000 for col in zip(*s))
        result[way] = {"import_ms": round(imp, 2), "first_map_ms": round(first, 2),
                       "second_map_ms": round(second, 2),
                       "process_ms": round(statistics.median(wall[way]) * 1000, 1)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
