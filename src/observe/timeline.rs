//! The `--timeline` file: every job as a span on its worker's track, in the
//! Chrome trace event format (Perfetto and `chrome://tracing` open it).
//!
//! One process per pool (`pid` = the pool's number), one thread per worker
//! thread (`tid` = its track: replacements get tracks of their own, so spans
//! on one track never overlap). Fallback tasks are on `pid` 0, one track per
//! fallback thread. Times are microseconds from the process's start.

use serde_json::{Value as Json, json};

use super::micros;
use super::record::{Snapshot, Span};

fn span_event(pid: usize, tid: u64, s: &Span) -> Json {
    let mut args = json!({
        "calls": s.items,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "queued_us": s.waited.as_nanos() as f64 / 1000.0,
    });
    if s.kind == "map" {
        args["first_item"] = json!(s.first);
    }
    json!({
        "name": s.name,
        "cat": s.kind,
        "ph": "X",
        "pid": pid,
        "tid": tid,
        "ts": micros(s.start),
        "dur": s.end.saturating_duration_since(s.start).as_nanos() as f64 / 1000.0,
        "args": args,
    })
}

fn meta(what: &str, pid: usize, tid: Option<u64>, name: String) -> Json {
    let mut ev = json!({"name": what, "ph": "M", "pid": pid, "args": {"name": name}});
    if let Some(tid) = tid {
        ev["tid"] = json!(tid);
    }
    ev
}

/// The trace of everything recorded.
pub fn json(s: &Snapshot) -> String {
    let mut events = Vec::new();
    for p in &s.pools {
        let pid = p.number;
        events.push(meta(
            "process_name",
            pid,
            None,
            format!("parpy pool {} ({} workers)", p.number, p.size),
        ));
        events.push(json!({"name": "process_sort_index", "ph": "M", "pid": pid, "args": {"sort_index": pid}}));
        for w in &p.workers {
            let tid = w.track as u64;
            let name = if w.replacement {
                format!("worker {} (replacement)", w.index)
            } else {
                format!("worker {}", w.index)
            };
            events.push(meta("thread_name", pid, Some(tid), name));
            if let Some(ready) = w.ready {
                events.push(json!({
                    "name": "start interpreter",
                    "cat": "pool",
                    "ph": "X",
                    "pid": pid,
                    "tid": tid,
                    "ts": micros(w.spawned),
                    "dur": ready.saturating_duration_since(w.spawned).as_nanos() as f64 / 1000.0,
                }));
            }
            for span in &w.spans {
                events.push(span_event(pid, tid, span));
            }
            for m in &w.marks {
                events.push(json!({
                    "name": m.name,
                    "cat": "pool",
                    "ph": "i",
                    "s": "t",
                    "pid": pid,
                    "tid": tid,
                    "ts": micros(m.at),
                    "args": {"detail": m.detail},
                }));
            }
        }
    }
    if !s.fallback_spans.is_empty() {
        events.push(meta("process_name", 0, None, "parpy fallback".into()));
        let mut threads: Vec<u64> = s.fallback_spans.iter().map(|(t, _)| *t).collect();
        threads.sort_unstable();
        threads.dedup();
        for t in threads {
            events.push(meta("thread_name", 0, Some(t), format!("fallback {t}")));
        }
        for (t, span) in &s.fallback_spans {
            events.push(span_event(0, *t, span));
        }
    }
    let doc = json!({"traceEvents": events, "displayTimeUnit": "ms"});
    let mut text = serde_json::to_string(&doc).unwrap_or_default();
    text.push('\n');
    text
}
