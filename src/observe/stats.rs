//! The `--stats` report: per pool and per worker, what ran, for how long,
//! how long it waited, and what crossed between interpreters.

use std::fmt::Write;
use std::time::Duration;

use serde_json::json;

use super::record::{PoolSnap, Snapshot, WorkerSnap};

/// A duration for people: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn human_time(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn mean(total: Duration, n: u64) -> Duration {
    if n == 0 {
        Duration::ZERO
    } else {
        total / n as u32
    }
}

/// The sum of a pool's workers, as one more row.
fn all_row(p: &PoolSnap) -> WorkerSnap {
    let mut all = WorkerSnap {
        index: 0,
        track: 0,
        replacement: false,
        spawned: p.started,
        ready: None,
        ended: None,
        tasks: 0,
        jobs: 0,
        busy: Duration::ZERO,
        waited: Duration::ZERO,
        bytes_in: 0,
        bytes_out: 0,
        spans: Vec::new(),
        marks: Vec::new(),
    };
    for w in &p.workers {
        all.tasks += w.tasks;
        all.jobs += w.jobs;
        all.busy += w.busy;
        all.waited += w.waited;
        all.bytes_in += w.bytes_in;
        all.bytes_out += w.bytes_out;
    }
    all
}

/// The report as a table, for stderr.
pub fn table(s: &Snapshot) -> String {
    let mut out = String::new();
    if s.pools.is_empty() {
        out.push_str("parpy stats: no pool was started\n");
    }
    for p in &s.pools {
        let open = p.open_for(s.taken);
        let startup = p
            .startup()
            .map_or_else(|| "never ready".to_string(), human_time);
        let _ = writeln!(
            out,
            "parpy stats: pool {}: {} worker{}, start-up {startup}, open {}",
            p.number,
            p.size,
            if p.size == 1 { "" } else { "s" },
            human_time(open)
        );
        let header = [
            "worker",
            "tasks",
            "jobs",
            "busy",
            "util",
            "queue wait",
            "mean wait",
            "sent",
            "received",
        ];
        let mut rows: Vec<[String; 9]> = Vec::new();
        let row = |name: String, w: &WorkerSnap, util: String| {
            [
                name,
                w.tasks.to_string(),
                w.jobs.to_string(),
                human_time(w.busy),
                util,
                human_time(w.waited),
                human_time(mean(w.waited, w.jobs)),
                human_bytes(w.bytes_in),
                human_bytes(w.bytes_out),
            ]
        };
        for w in &p.workers {
            let name = if w.replacement {
                format!("{} (replacement)", w.index)
            } else {
                w.index.to_string()
            };
            let util = format!("{:.0}%", 100.0 * w.utilisation(s.taken));
            rows.push(row(name, w, util));
        }
        let all = all_row(p);
        let util = format!("{:.0}%", 100.0 * p.utilisation(s.taken));
        rows.push(row("all".into(), &all, util));
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].chars().count())
                    .chain([header[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut l = String::from(" ");
            for (c, cell) in cells.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                if c == 0 {
                    let _ = write!(l, " {cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(l, "  {}{cell}", " ".repeat(pad));
                }
            }
            l.push('\n');
            l
        };
        out.push_str(&line(header.to_vec()));
        for r in &rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
    }
    if !s.pickled.is_empty() {
        let list: Vec<String> = s
            .pickled
            .iter()
            .map(|(t, side, n)| format!("{t} ×{n} ({side})"))
            .collect();
        let _ = writeln!(
            out,
            "parpy stats: pickled (no native encoding): {}",
            list.join(", ")
        );
    }
    if !s.fallback.is_empty() {
        let list: Vec<String> = s
            .fallback
            .iter()
            .map(|(f, mode, n)| format!("{f} ×{n} ({mode})"))
            .collect();
        let _ = writeln!(out, "parpy stats: fallback tasks: {}", list.join(", "));
    }
    out
}

/// The report as JSON (`--stats=json PATH`); times in seconds.
pub fn json(s: &Snapshot) -> String {
    let worker = |w: &WorkerSnap, util: f64| {
        json!({
            "worker": w.index,
            "replacement": w.replacement,
            "tasks": w.tasks,
            "jobs": w.jobs,
            "busy_s": w.busy.as_secs_f64(),
            "utilisation": util,
            "queue_wait_s": w.waited.as_secs_f64(),
            "bytes_sent": w.bytes_in,
            "bytes_received": w.bytes_out,
            "startup_s": w.ready.map(|r| r.saturating_duration_since(w.spawned).as_secs_f64()),
        })
    };
    let pools: Vec<_> = s
        .pools
        .iter()
        .map(|p| {
            let all = all_row(p);
            json!({
                "pool": p.number,
                "workers": p.size,
                "startup_s": p.startup().map(|d| d.as_secs_f64()),
                "open_s": p.open_for(s.taken).as_secs_f64(),
                "per_worker": p.workers.iter().map(|w| worker(w, w.utilisation(s.taken))).collect::<Vec<_>>(),
                "total": {
                    "utilisation": p.utilisation(s.taken),
                    "tasks": all.tasks,
                    "jobs": all.jobs,
                    "busy_s": all.busy.as_secs_f64(),
                    "queue_wait_s": all.waited.as_secs_f64(),
                    "bytes_sent": all.bytes_in,
                    "bytes_received": all.bytes_out,
                },
            })
        })
        .collect();
    let pickled: Vec<_> = s
        .pickled
        .iter()
        .map(|(t, side, n)| json!({"type": t, "where": side, "calls": n}))
        .collect();
    let fallback: Vec<_> = s
        .fallback
        .iter()
        .map(|(f, mode, n)| json!({"function": f, "mode": mode, "tasks": n}))
        .collect();
    let doc = json!({"pools": pools, "pickled": pickled, "fallback": fallback});
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_times_and_sizes() {
        assert_eq!(human_time(Duration::from_micros(850)), "850 µs");
        assert_eq!(human_time(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(human_time(Duration::from_millis(4_560)), "4.56 s");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
