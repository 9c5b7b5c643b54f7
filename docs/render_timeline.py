#!/usr/bin/env python3
"""Draws a `parpy --timeline` trace as a picture: one row per worker thread
(and per fallback thread), one bar per job, interrupts as marks.

    python3 docs/render_timeline.py trace.json out.png   (needs matplotlib)

Perfetto (ui.perfetto.dev) and chrome://tracing open the same file
interactively; this is for a README or a report.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(trace, out):
    events = json.load(open(trace))["traceEvents"]
    names = {}
    for e in events:
        if e["ph"] == "M" and e["name"] == "thread_name":
            names[(e["pid"], e["tid"])] = e["args"]["name"]
        if e["ph"] == "M" and e["name"] == "process_name":
            names[(e["pid"], None)] = e["args"]["name"]
    tracks = sorted({(e["pid"], e["tid"]) for e in events if e["ph"] in "Xi"},
                    key=lambda t: (t[0] == 0, t))
    row = {t: i for i, t in enumerate(tracks)}
    funcs = sorted({e["name"] for e in events if e["ph"] == "X" and e.get("cat") != "pool"})
    colours = plt.get_cmap("tab10")
    colour = {f: colours(i % 10) for i, f in enumerate(funcs)}
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.6 * len(tracks)), dpi=110)
    for e in events:
        if e["ph"] == "X":
            y = row[(e["pid"], e["tid"])]
            start, dur = e["ts"] / 1000, e["dur"] / 1000
            if e.get("cat") == "pool":
                ax.broken_barh([(start, dur)], (y - 0.3, 0.6), color="0.8", hatch="//", edgecolor="0.5")
            else:
                ax.broken_barh([(start, dur)], (y - 0.3, 0.6), color=colour[e["name"]], edgecolor="white", linewidth=0.5)
        elif e["ph"] == "i":
            y = row[(e["pid"], e["tid"])]
            ax.plot([e["ts"] / 1000], [y], marker="v", color="red", markersize=9)
            ax.annotate(e["name"], (e["ts"] / 1000, y + 0.35), color="red", fontsize=8, ha="center")
    ax.set_yticks(range(len(tracks)))
    ax.set_yticklabels([f"{names.get((p, None), p)}: {names.get((p, t), t)}" for p, t in tracks], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms since parpy started")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[f]) for f in funcs]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="0.8", hatch="//", edgecolor="0.5"))
    ax.legend(handles, funcs + ["start interpreter"], fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, -0.35 if len(tracks) < 4 else -0.15), ncol=min(5, len(handles)))
    ax.set_title(f"parpy --timeline: {len([e for e in events if e['ph'] == 'X' and e.get('cat') != 'pool'])} jobs",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
