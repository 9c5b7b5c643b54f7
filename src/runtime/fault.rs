//! Fault injection for tests: `PARPY_FAULT` makes chosen points fail, so that
//! tests can check that each failure gives a clear error and a clean exit.
//!
//! Test-only and undocumented for users. The variable holds comma-separated
//! `point:which` entries; `which` is `N` (the Nth time the point is reached
//! in this process, from 1), `N+` (the Nth time and every later one) or `*`
//! (every time). Points:
//!
//! * `interp`: creating a worker's sub-interpreter fails (each attempt counts);
//! * `spawn`: starting a worker thread fails (as at a thread limit);
//! * `panic`: a worker thread panics as it is about to run a job (each job
//!   taken counts).
//!
//! Example: `PARPY_FAULT=spawn:2,panic:1`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A place where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Interp,
    Spawn,
    Panic,
}

impl Point {
    const ALL: [Point; 3] = [Point::Interp, Point::Spawn, Point::Panic];

    fn name(self) -> &'static str {
        match self {
            Point::Interp => "interp",
            Point::Spawn => "spawn",
            Point::Panic => "panic",
        }
    }
}

/// Which arrivals at a point fail: from `first`, `count` of them (0: all).
#[derive(Debug, Clone, Copy)]
struct Rule {
    first: u64,
    count: u64,
}

fn parse(spec: &str) -> Vec<(Point, Rule)> {
    let mut rules = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, which)) = entry.split_once(':') else {
            continue;
        };
        let Some(point) = Point::ALL.into_iter().find(|p| p.name() == name.trim()) else {
            continue;
        };
        let which = which.trim();
        let rule = if which == "*" {
            Rule { first: 1, count: 0 }
        } else if let Some(n) = which.strip_suffix('+') {
            match n.parse() {
                Ok(first) => Rule { first, count: 0 },
                Err(_) => continue,
            }
        } else {
            match which.parse() {
                Ok(first) => Rule { first, count: 1 },
                Err(_) => continue,
            }
        };
        rules.push((point, rule));
    }
    rules
}

fn rules() -> &'static [(Point, Rule)] {
    static RULES: OnceLock<Vec<(Point, Rule)>> = OnceLock::new();
    RULES.get_or_init(|| {
        std::env::var("PARPY_FAULT")
            .map(|s| parse(&s))
            .unwrap_or_default()
    })
}

/// Counts an arrival at `point`; true when this one must fail.
pub fn hit(point: Point) -> bool {
    static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
    let rules = rules();
    if rules.is_empty() {
        return false;
    }
    let n = COUNTS[point as usize].fetch_add(1, Ordering::Relaxed) + 1;
    rules
        .iter()
        .any(|(p, r)| *p == point && n >= r.first && (r.count == 0 || n < r.first + r.count))
}

/// `builder.spawn(f)`, failing as at a thread limit when `spawn` is injected.
pub fn spawn<F>(builder: std::thread::Builder, f: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    if hit(Point::Spawn) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "Resource temporarily unavailable (injected by PARPY_FAULT)",
        ));
    }
    builder.spawn(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries() {
        let r = parse("spawn:2, interp:*,panic:3+,bogus:1,spawn:x");
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].0, r[0].1.first, r[0].1.count), (Point::Spawn, 2, 1));
        assert_eq!((r[1].0, r[1].1.first, r[1].1.count), (Point::Interp, 1, 0));
        assert_eq!((r[2].0, r[2].1.first, r[2].1.count), (Point::Panic, 3, 0));
    }
}
