//! Summarises a `cargo bench` run: prints every PERFORMANCE.md row as a
//! memscope-vs-peer ratio (from criterion's medians, all from the same run)
//! and draws `docs/bench.png`.
//!
//! ```sh
//! cargo bench --bench session --bench segment --bench alloc --bench marshal --bench linker
//! cargo run --release -p memscope-benches --bin bench_report
//! ```
//!
//! Ratios are `memscope time / peer time` (lower is better); the target
//! column is the PERFORMANCE.md goal for that ratio.

use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One PERFORMANCE.md row: the criterion ids of the memscope side and the
/// peer side, and the target for `memscope / peer` (time ratio). An empty
/// `peer` makes the target an absolute time in nanoseconds.
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
        workload: "arena 10,007 x 16 B + reset, 1 thread: per-thread handle of a shared arena, `allocate_uninit` (as the peers)",
        ours: "row1_arena_10007x16B_1t/memscope_shared_arena_local_uninit",
        peer: "row1_arena_10007x16B_1t/blink_alloc",
        peer_name: "BlinkAlloc",
        target: 1.0,
    },
    Row {
        row: "1",
        workload: "same, vs bumpalo",
        ours: "row1_arena_10007x16B_1t/memscope_shared_arena_local_uninit",
        peer: "row1_arena_10007x16B_1t/bumpalo",
        peer_name: "bumpalo",
        target: 1.0,
    },
    Row {
        row: "1",
        workload: "same, confined arena's local handle",
        ours: "row1_arena_10007x16B_1t/memscope_confined_arena_local_uninit",
        peer: "row1_arena_10007x16B_1t/blink_alloc",
        peer_name: "BlinkAlloc",
        target: 1.0,
    },
    Row {
        row: "1",
        workload: "same, confined arena (`&Arena`, owner check per allocation)",
        ours: "row1_arena_10007x16B_1t/memscope_confined_arena_uninit",
        peer: "row1_arena_10007x16B_1t/blink_alloc",
        peer_name: "BlinkAlloc",
        target: 1.0,
    },
    Row {
        row: "1",
        workload: "per-thread handle, zeroing allocate",
        ours: "row1_arena_10007x16B_1t/memscope_shared_arena_local",
        peer: "row1_arena_10007x16B_1t/blink_alloc_zeroed",
        peer_name: "BlinkAlloc + zeroing",
        target: 1.0,
    },
    Row {
        row: "1",
        workload: "confined `&Arena`, zeroing allocate",
        ours: "row1_arena_10007x16B_1t/memscope_confined_arena",
        peer: "row1_arena_10007x16B_1t/blink_alloc_zeroed",
        peer_name: "BlinkAlloc + zeroing",
        target: 1.0,
    },
    Row {
        row: "2",
        workload: "one arena, 2 threads, shared `&Arena` (time ratio; >= 3x throughput)",
        ours: "row2_arena_2_threads_x10000x16B/memscope_shared_arena",
        peer: "row2_arena_2_threads_x10000x16B/mutex_bumpalo",
        peer_name: "`Mutex<Bump>`",
        target: 1.0 / 3.0,
    },
    Row {
        row: "2",
        workload: "one arena, 2 threads, per-thread handle",
        ours: "row2_arena_2_threads_x10000x16B/memscope_local",
        peer: "row2_arena_2_threads_x10000x16B/sync_blink_alloc_local",
        peer_name: "`SyncBlinkAlloc::local`",
        target: 1.0,
    },
    Row {
        row: "2",
        workload: "one arena, 2 threads, per-thread handle, `allocate_uninit` (as the peer)",
        ours: "row2_arena_2_threads_x10000x16B/memscope_local_uninit",
        peer: "row2_arena_2_threads_x10000x16B/sync_blink_alloc_local",
        peer_name: "`SyncBlinkAlloc::local`",
        target: 1.0,
    },
    Row {
        row: "3",
        workload: "stack frame + 4 x 16 B (zeroed)",
        ours: "row3_frame_4x16B/memscope_stack_frame",
        peer: "row3_frame_4x16B/bumpalo_4_allocs_reset",
        peer_name: "bumpalo",
        target: 1.2,
    },
    Row {
        row: "3",
        workload: "stack frame + 4 x 16 B (zeroed)",
        ours: "row3_frame_4x16B/memscope_stack_frame",
        peer: "row3_frame_4x16B/bumpalo_4_allocs_zeroed_reset",
        peer_name: "bumpalo + zeroing",
        target: 1.2,
    },
    Row {
        row: "3",
        workload: "stack frame + 4 x 16 B (uninit, like bumpalo)",
        ours: "row3_frame_4x16B/memscope_stack_frame_uninit",
        peer: "row3_frame_4x16B/bumpalo_4_allocs_reset",
        peer_name: "bumpalo",
        target: 1.2,
    },
    Row {
        row: "4",
        workload: "confined session: open + allocate 16 B + close",
        ours: "row4_5_open_alloc16_close/memscope_confined_arena",
        peer: "",
        peer_name: "(absolute, ns)",
        target: 15.0,
    },
    Row {
        row: "5",
        workload: "shared session: open + allocate 16 B + close",
        ours: "row4_5_open_alloc16_close/memscope_shared_arena",
        peer: "",
        peer_name: "(absolute, ns)",
        target: 500.0,
    },
    Row {
        row: "6",
        workload: "acquire + release, 1 thread",
        ours: "session/acquire_release/1t/shared",
        peer: "session/acquire_release/1t/peer/raw_fetch_add_sub",
        peer_name: "fetch_add+fetch_sub",
        target: 1.0,
    },
    Row {
        row: "7",
        workload: "acquire + release, 2 threads (wall / all pairs)",
        ours: "session/acquire_release/2t/shared",
        peer: "session/acquire_release/2t/peer/sharded_lock_read",
        peer_name: "ShardedLock read",
        target: 1.0,
    },
    Row {
        row: "8",
        workload: "sum 1 Mi i32 under a guard",
        ours: "segment/sum_1Mi_i32/guarded_as_slice_of/shared",
        peer: "segment/sum_1Mi_i32/plain_slice",
        peer_name: "`&[i32]` sum",
        target: 1.1,
    },
    Row {
        row: "9",
        workload: "sum 1 Mi i32, checked get per element, global session",
        ours: "segment/sum_1Mi_i32/get_per_element/global",
        peer: "segment/sum_1Mi_i32/plain_slice",
        peer_name: "`&[i32]` sum",
        target: 3.0,
    },
    Row {
        row: "9",
        workload: "same, confined session",
        ours: "segment/sum_1Mi_i32/get_per_element/confined",
        peer: "segment/sum_1Mi_i32/plain_slice",
        peer_name: "`&[i32]` sum",
        target: 3.0,
    },
    Row {
        row: "9",
        workload: "same, shared session",
        ours: "segment/sum_1Mi_i32/get_per_element/shared",
        peer: "segment/sum_1Mi_i32/plain_slice",
        peer_name: "`&[i32]` sum",
        target: 3.0,
    },
    Row {
        row: "9",
        workload: "checked bulk reads (elements().next_chunk), shared",
        ours: "segment/sum_1Mi_i32/elements_next_chunk/shared",
        peer: "segment/sum_1Mi_i32/plain_slice",
        peer_name: "`&[i32]` sum",
        target: 3.0,
    },
    Row {
        row: "-",
        workload: "fill 1 MiB",
        ours: "segment/1MiB/fill/segment",
        peer: "segment/1MiB/fill/ptr_write_bytes",
        peer_name: "memset",
        target: 1.1,
    },
    Row {
        row: "-",
        workload: "copy 1 MiB",
        ours: "segment/1MiB/copy/segment",
        peer: "segment/1MiB/copy/ptr_copy_nonoverlapping",
        peer_name: "memcpy",
        target: 1.1,
    },
    Row {
        row: "-",
        workload: "marshal a 5-field `c_struct!` in and out",
        ours: "marshal/rec5_one_at_a_time_x64/marshal_global",
        peer: "marshal/rec5_one_at_a_time_x64/ptr_write_read",
        peer_name: "`ptr::write/read`",
        target: 1.2,
    },
    Row {
        row: "10",
        workload: "typed downcall add(int,int)",
        ours: "row10_add_typed/memscope_typed",
        peer: "row10_add_typed/direct_fn_pointer",
        peer_name: "direct extern \"C\"",
        target: 1.3,
    },
    Row {
        row: "11",
        workload: "dynamic downcall, `Option<Value>` result",
        ours: "row11_add_dynamic/memscope_downcall_call",
        peer: "row11_add_dynamic/raw_libffi_cif_call",
        peer_name: "libffi Cif::call",
        target: 1.5,
    },
    Row {
        row: "11",
        workload: "dynamic downcall, i32 result matched out",
        ours: "row11_add_dynamic/memscope_downcall_call_i32",
        peer: "row11_add_dynamic/raw_libffi_cif_call",
        peer_name: "libffi Cif::call",
        target: 1.5,
    },
    Row {
        row: "10",
        workload: "`bind!` (typed fn pointer)",
        ours: "row10_add_typed/memscope_bind_macro",
        peer: "row10_add_typed/direct_fn_pointer",
        peer_name: "direct extern \"C\"",
        target: 1.3,
    },
    Row {
        row: "12",
        workload: "struct by value, `bind!` with a `c_struct!`",
        ours: "row12_struct_by_value/memscope_bind_macro",
        peer: "row12_struct_by_value/direct_fn_pointer",
        peer_name: "direct extern \"C\"",
        target: 2.0,
    },
    Row {
        row: "12",
        workload: "struct by value, typed",
        ours: "row12_struct_by_value/memscope_typed",
        peer: "row12_struct_by_value/direct_fn_pointer",
        peer_name: "direct extern \"C\"",
        target: 2.0,
    },
    Row {
        row: "12",
        workload: "struct by value, dynamic, `Value::Struct`",
        ours: "row12_struct_by_value/memscope_downcall_call",
        peer: "row12_struct_by_value/raw_libffi_cif_call",
        peer_name: "libffi Cif::call",
        target: 1.5,
    },
    Row {
        row: "12",
        workload: "struct by value, dynamic, `Arg::Bytes` + `call_into`",
        ours: "row12_struct_by_value/memscope_downcall_bytes_call_into",
        peer: "row12_struct_by_value/raw_libffi_cif_call",
        peer_name: "libffi Cif::call",
        target: 1.5,
    },
    Row {
        row: "12",
        workload: "struct by value, dynamic, `call_with_frame`",
        ours: "row12_struct_by_value/memscope_downcall_call_with_frame",
        peer: "row12_struct_by_value/raw_libffi_cif_call",
        peer_name: "libffi Cif::call",
        target: 1.5,
    },
    Row {
        row: "13",
        workload: "qsort 1,000 ints, capturing Rust comparator, shared, bare pointer (entry per call)",
        ours: "row13_qsort_1000/rust_typed_capturing_shared",
        peer: "row13_qsort_1000/c_comparator",
        peer_name: "C comparator",
        target: 3.0,
    },
    Row {
        row: "13",
        workload: "same, confined, bare pointer",
        ours: "row13_qsort_1000/rust_typed_capturing_confined",
        peer: "row13_qsort_1000/c_comparator",
        peer_name: "C comparator",
        target: 3.0,
    },
    Row {
        row: "13",
        workload: "same, shared, stub held (`UpcallStub::hold`)",
        ours: "row13_qsort_1000/rust_typed_capturing_shared_held",
        peer: "row13_qsort_1000/c_comparator",
        peer_name: "C comparator",
        target: 3.0,
    },
    Row {
        row: "13",
        workload: "same, confined, stub held",
        ours: "row13_qsort_1000/rust_typed_capturing_confined_held",
        peer: "row13_qsort_1000/c_comparator",
        peer_name: "C comparator",
        target: 3.0,
    },
    Row {
        row: "13",
        workload: "same, confined, qsort `Downcall` with `Arg::Stub`",
        ours: "row13_qsort_1000/rust_typed_capturing_confined_arg_stub",
        peer: "row13_qsort_1000/c_comparator",
        peer_name: "C comparator",
        target: 3.0,
    },
    Row {
        row: "13",
        workload: "qsort 1,000 ints, stateless Rust comparator",
        ours: "row13_qsort_1000/rust_typed_upcall_shared",
        peer: "row13_qsort_1000/c_comparator",
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
    // The workspace root: this file lives in `benches/`.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let crit = root.join("criterion");
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
        if r.peer.is_empty() {
            match results.get(r.ours) {
                Some(&a) => {
                    let met = if a <= r.target { "yes" } else { "no" };
                    println!(
                        "| {} | {} | {} | – | – | <= {} ns | {} |",
                        r.row,
                        r.workload,
                        fmt_ns(a),
                        r.target,
                        met
                    );
                }
                None => println!(
                    "| {} | {} | – | – | – | <= {} ns | not measured in this run |",
                    r.row, r.workload, r.target
                ),
            }
            continue;
        }
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
                let mut label = format!("{} {}", r.row, r.workload.replace('`', ""));
                if label.chars().count() > 46 {
                    label = label.chars().take(45).collect::<String>() + "…";
                }
                plotted.push((label, ratio, r.target));
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

    if let Err(e) = plot(&plotted, &repo.join("docs/bench.png")) {
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
    let area = BitMapBackend::new(out, (1200, h)).into_drawing_area();
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
        .y_label_area_size(380)
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
