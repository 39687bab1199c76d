//! Summarises a `cargo bench` run: prints every PERFORMANCE.md row as a
//! memscope-vs-peer ratio (from criterion's medians, all from the same run)
//! and draws `docs/bench.png`.
//!
//! ```sh
//! cargo bench --bench session --bench segment --bench alloc --bench marshal --bench linker
//! cargo run --release --example bench_report
//! ```
//!
//! Ratios are `memscope time / peer time` (lower is better); the target
//! column is the PERFORMANCE.md goal for that ratio.

use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One PERFORMANCE.md row: the criterion ids of the memscope side and the
/// peer side, and the target for `memscope / peer` (time ratio).
struct Row {
    row: &'static str,
    workload: &'static str,
    ours: &'static str,
    peer: &'static str,
    peer_name: &'static str,
    target: f64,
}

const ROWS: &[Row] = &[
    Row {
        row: "1",
        workload: "arena 10,007 x 16 B + reset, 1 thread",
        ours: "alloc/row1/memscope_local",
        peer: "alloc/row1/blink_alloc",
        peer_name: "BlinkAlloc",
        target: 1.0,
    },
    Row {
        row: "1b",
        workload: "arena 10,007 x 16 B (confined arena)",
        ours: "alloc/row1/memscope_confined",
        peer: "alloc/row1/bumpalo",
        peer_name: "bumpalo",
        target: 1.0,
    },
    Row {
        row: "2",
        workload: "one arena, 2 threads, shared &Arena",
        ours: "alloc/row2/memscope_shared",
        peer: "alloc/row2/mutex_bump",
        peer_name: "Mutex<Bump>",
        target: 1.0 / 3.0,
    },
    Row {
        row: "2b",
        workload: "one arena, 2 threads, per-thread handle",
        ours: "alloc/row2/memscope_local",
        peer: "alloc/row2/sync_blink_local",
        peer_name: "SyncBlinkAlloc::local",
        target: 1.0,
    },
    Row {
        row: "3",
        workload: "stack frame + 4 allocations",
        ours: "alloc/row3/memscope_stack",
        peer: "alloc/row3/bumpalo",
        peer_name: "bumpalo",
        target: 1.2,
    },
    Row {
        row: "6",
        workload: "acquire + release, 1 thread",
        ours: "session/row6/memscope",
        peer: "session/row6/raw_atomic_pair",
        peer_name: "fetch_add+fetch_sub",
        target: 1.0,
    },
    Row {
        row: "7",
        workload: "acquire + release, 2 threads",
        ours: "session/row7/memscope",
        peer: "session/row7/sharded_lock",
        peer_name: "ShardedLock read",
        target: 1.0,
    },
    Row {
        row: "8",
        workload: "sum 1 Mi i32 under a guard",
        ours: "segment/row8/memscope_guarded",
        peer: "segment/row8/plain_slice",
        peer_name: "&[i32] sum",
        target: 1.1,
    },
    Row {
        row: "9",
        workload: "sum 1 Mi i32, checked get per element",
        ours: "segment/row9/memscope_get",
        peer: "segment/row8/plain_slice",
        peer_name: "&[i32] sum",
        target: 3.0,
    },
    Row {
        row: "10",
        workload: "typed downcall add(int,int)",
        ours: "linker/row10/memscope_typed",
        peer: "linker/row10/direct",
        peer_name: "direct extern \"C\"",
        target: 1.3,
    },
    Row {
        row: "11",
        workload: "dynamic downcall (libffi)",
        ours: "linker/row11/memscope_dynamic",
        peer: "linker/row11/raw_libffi",
        peer_name: "libffi Cif::call",
        target: 1.5,
    },
    Row {
        row: "12",
        workload: "struct by value, dynamic",
        ours: "linker/row12/memscope_dynamic",
        peer: "linker/row12/raw_libffi",
        peer_name: "libffi Cif::call",
        target: 1.5,
    },
    Row {
        row: "13",
        workload: "qsort 1,000 ints, Rust upcall comparator",
        ours: "linker/row13/memscope_upcall",
        peer: "linker/row13/c_comparator",
        peer_name: "C comparator",
        target: 3.0,
    },
];

/// Reads every `new/benchmark.json` + `new/estimates.json` pair under `dir`:
/// full id → median in nanoseconds.
fn collect(dir: &Path, out: &mut BTreeMap<String, f64>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            let bench = std::fs::read_to_string(p.join("benchmark.json"));
            let est = std::fs::read_to_string(p.join("estimates.json"));
            if let (Ok(b), Ok(s)) = (bench, est) {
                let b: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
                let s: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
                if let (Some(id), Some(m)) = (
                    b["full_id"].as_str(),
                    s["median"]["point_estimate"].as_f64(),
                ) {
                    out.insert(id.to_string(), m);
                }
            }
        } else {
            collect(&p, out);
        }
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.2} ns")
    }
}

fn main() {
    let root = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let crit = PathBuf::from(root).join("criterion");
    let mut results = BTreeMap::new();
    collect(&crit, &mut results);
    if results.is_empty() {
        eprintln!(
            "no criterion results under {} — run `cargo bench` first",
            crit.display()
        );
        std::process::exit(1);
    }

    println!("| row | workload | memscope | peer | ratio | target | met |");
    println!("|---|---|---|---|---|---|---|");
    let mut plotted = Vec::new();
    for r in ROWS {
        match (results.get(r.ours), results.get(r.peer)) {
            (Some(&a), Some(&b)) => {
                let ratio = a / b;
                let met = if ratio <= r.target { "yes" } else { "no" };
                println!(
                    "| {} | {} | {} | {} ({}) | {:.2}x | <= {:.2}x | {} |",
                    r.row,
                    r.workload,
                    fmt_ns(a),
                    fmt_ns(b),
                    r.peer_name,
                    ratio,
                    r.target,
                    met
                );
                plotted.push((format!("{} {}", r.row, r.peer_name), ratio, r.target));
            }
            _ => println!(
                "| {} | {} | – | – | – | <= {:.2}x | not measured in this run |",
                r.row, r.workload, r.target
            ),
        }
    }

    println!("\nAll medians in this run:");
    for (id, ns) in &results {
        println!("  {id:<60} {}", fmt_ns(*ns));
    }

    if let Err(e) = plot(&plotted, Path::new("docs/bench.png")) {
        eprintln!("plot not written: {e}");
    } else {
        println!("\nwrote docs/bench.png");
    }
}

/// Horizontal bars: ratio per row (log scale would hide the targets; ratios
/// are clipped at 4x with the value printed).
fn plot(rows: &[(String, f64, f64)], out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if rows.is_empty() {
        return Err("nothing to plot".into());
    }
    let font = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .ok_or("no DejaVuSans.ttf found (apt-get install fonts-dejavu-core)")?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| "font could not be registered")?;
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d)?;
    }
    let h = 60 + 40 * rows.len() as u32;
    let area = BitMapBackend::new(out, (900, h)).into_drawing_area();
    area.fill(&WHITE)?;
    let cap = 4.0f64;
    let n = rows.len();
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "memscope time / peer time (lower is better; | = target)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(220)
        .build_cartesian_2d(0.0..cap, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => rows.get(*i).map(|r| r.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ratio")
        .draw()?;
    for (i, (_, ratio, target)) in rows.iter().enumerate() {
        let ok = ratio <= target;
        let color = if ok { GREEN.mix(0.8) } else { RED.mix(0.8) };
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (ratio.min(cap), SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![
                (target.min(cap), SegmentValue::Exact(i)),
                (target.min(cap), SegmentValue::Exact(i + 1)),
            ],
            BLACK.stroke_width(3),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{ratio:.2}x"),
            (
                (ratio.min(cap) + 0.05).min(cap - 0.4),
                SegmentValue::CenterOf(i),
            ),
            ("sans-serif", 15),
        )))?;
    }
    area.present()?;
    Ok(())
}
