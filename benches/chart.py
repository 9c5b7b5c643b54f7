"""Draws benchmarks.png from benchmarks.json, for benches/run.py.

    VENV_PYTHON benches/chart.py benchmarks.json benchmarks.png

Top row: speedup over the sequential loop against workers, one panel per
kernel. Bottom row: per-task round trip and tiny-task throughput per peer,
on log scales.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ("threads", "process-spawn", "process-fork", "interpreters", "free-threaded", "parpy")
SHORT = {
    "sequential": "plain call / loop",
    "threads": "threads",
    "process-spawn": "processes (spawn)",
    "process-fork": "processes (fork)",
    "interpreters": "InterpreterPool",
    "free-threaded": "free-threaded threads",
    "parpy": "parpy",
    "parpy-share": "parpy, share()",
}
COLOURS = {
    "sequential": "#888888",
    "threads": "#1f77b4",
    "process-spawn": "#ff7f0e",
    "process-fork": "#d4a017",
    "interpreters": "#2ca02c",
    "free-threaded": "#9467bd",
    "parpy": "#d62728",
    "parpy-share": "#f08080",
}


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    summary, meta = data["summary"], data["meta"]
    n = meta["workers"]
    sc = summary.get("scaling", {})
    kernels = list(sc)
    cols = max(len(kernels), 3)
    fig = plt.figure(figsize=(4.2 * cols, 8.4), constrained_layout=True)
    grid = fig.add_gridspec(2, cols)

    for i, kernel in enumerate(kernels):
        ax = fig.add_subplot(grid[0, i])
        ws = list(range(1, n + 1))
        ax.plot([0.8, n + 0.2], [0.8, n + 0.2], ls=":", color="#bbbbbb", label="ideal")
        for peer in ORDER:
            row = sc[kernel]["peers"].get(peer)
            if not row:
                continue
            ys = [row["speedup"].get(str(w)) for w in ws]
            if all(y is None for y in ys):
                continue
            ax.plot(ws, ys, marker="o", color=COLOURS[peer], label=SHORT[peer],
                    lw=2.6 if peer == "parpy" else 1.4, zorder=3 if peer == "parpy" else 2)
        ax.set_title(f"{kernel}: speedup vs workers")
        ax.set_xlabel("workers")
        ax.set_xticks(ws)
        ax.set_xlim(0.8, n + 0.2)
        ax.set_ylim(0, n + 0.4)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel("speedup over the sequential loop")
            ax.legend(fontsize=8, loc="upper left")

    def bars(ax, values, title, xlabel, fmt):
        peers = [p for p in ("sequential",) + ORDER + ("parpy-share",) if values.get(p)]
        ys = list(range(len(peers)))
        vals = [values[p] for p in peers]
        ax.barh(ys, vals, color=[COLOURS[p] for p in peers])
        ax.set_yticks(ys)
        ax.set_yticklabels([SHORT[p] for p in peers])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", which="both", alpha=0.25)
        lo, hi = min(vals), max(vals)
        ax.set_xlim(lo / 3, hi * 12)
        for y, v in zip(ys, vals):
            ax.text(v * 1.15, y, fmt(v), va="center", fontsize=8)

    rt = summary.get("roundtrip")
    if rt:
        bars(fig.add_subplot(grid[1, 0]), rt, "per-task round trip: submit(f, x).result()",
             "µs per task (log scale, lower is better)", lambda v: f"{v:.2f} µs" if v < 10 else f"{v:.0f} µs")
    tp = summary.get("throughput")
    if tp:
        best = {p: max(m["rate"] for m in per.values()) for p, per in tp.items()}
        bars(fig.add_subplot(grid[1, 1]), best, "tiny-task throughput, best setting",
             "tasks/s (log scale, higher is better)", lambda v: f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.0f} k/s")
    lg = summary.get("large")
    if lg and cols >= 3:
        per = {p: v["per_worker"] * 1000 for p, v in lg.items() if p != "sequential" and v.get("per_worker")}
        if per:
            bars(fig.add_subplot(grid[1, 2]), per, f"100 MB bytes to each of {n} workers",
                 "ms per worker (log scale, lower is better)", lambda v: f"{v:.2f} ms" if v < 10 else f"{v:.0f} ms")
    cs = summary.get("coldstart")
    if cs and cols >= 4:
        first = {p: v["first"] * 1000 for p, v in cs.items()}
        bars(fig.add_subplot(grid[1, 3]), first, "cold start to the first result",
             "ms (log scale, lower is better)", lambda v: f"{v:.0f} ms")

    busy = summary.get("others", {}).get("scaling")
    fig.suptitle(f"parpy and its peers — {meta['machine']['cpu_model']}, {meta['machine']['cpus']} CPUs, "
                 f"Python {meta['python']['reference_version']}, {meta['mode']} mode "
                 f"(medians of {meta['rounds']} round{'s' if meta['rounds'] != 1 else ''})"
                 + (f"; other processes kept {busy['median']:.2f} CPUs busy during the scaling runs (median)"
                    if busy else ""))
    fig.savefig(dst, dpi=100)


if __name__ == "__main__":
    main()
