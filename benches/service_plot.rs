//! Plots the service example's CSV: throughput and p99 service time per side
//! and thread count (README's docs/service.png).
//!
//! ```sh
//! cargo run --release --example service -- --csv target/service.csv
//! cargo run --release -p memscope-benches --bin service_plot -- target/service.csv docs/service.png
//! ```

use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;

/// One CSV row: side, threads, requests/s, p99 µs.
struct Row {
    side: String,
    threads: usize,
    rps: f64,
    p99_us: f64,
}

fn read(path: &Path) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (write it with the service's --csv)",
            path.display()
        )
    })?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("CSV has no {name} column"))
    };
    let (side, threads, rps, p99) = (
        col("side")?,
        col("threads")?,
        col("requests_per_s")?,
        col("p99_us")?,
    );
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let get = |i: usize| {
            f.get(i)
                .copied()
                .ok_or_else(|| format!("line {}: too few fields", n + 2))
        };
        rows.push(Row {
            side: get(side)?.to_string(),
            threads: get(threads)?.parse()?,
            rps: get(rps)?.parse()?,
            p99_us: get(p99)?.parse()?,
        });
    }
    if rows.is_empty() {
        return Err("no runs in the CSV".into());
    }
    Ok(rows)
}

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// Grouped bars: one group per thread count, one bar per side.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    rows: &[Row],
    sides: &[String],
    threads: &[usize],
    title: &str,
    value: impl Fn(&Row) -> f64,
) -> Result<(), Box<dyn std::error::Error>> {
    // Headroom above the bars for the legend.
    let top = rows.iter().map(&value).fold(0.0f64, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..threads.len() as f64, 0.0..top.max(1.0))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_labels(threads.len() * 2 + 1)
        .x_label_formatter(&|x: &f64| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 && i < threads.len() {
                format!("{} threads", threads[i])
            } else {
                String::new()
            }
        })
        .draw()?;
    let w = 0.8 / sides.len() as f64;
    for (j, side) in sides.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        let bars = threads.iter().enumerate().filter_map(|(i, t)| {
            let r = rows.iter().find(|r| &r.side == side && r.threads == *t)?;
            let x0 = i as f64 + 0.1 + j as f64 * w;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + w * 0.9, value(r))],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(side.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let input = args.next().unwrap_or_else(|| "target/service.csv".into());
    let output = args.next().unwrap_or_else(|| "docs/service.png".into());
    let rows = read(Path::new(&input))?;
    let mut sides: Vec<String> = Vec::new();
    let mut threads: Vec<usize> = Vec::new();
    for r in &rows {
        if !sides.contains(&r.side) {
            sides.push(r.side.clone());
        }
        if !threads.contains(&r.threads) {
            threads.push(r.threads);
        }
    }
    threads.sort_unstable();
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
    if let Some(d) = Path::new(&output).parent() {
        std::fs::create_dir_all(d)?;
    }
    let area = BitMapBackend::new(&output, (1200, 450)).into_drawing_area();
    area.fill(&WHITE)?;
    let (left, right) = area.split_horizontally(600);
    panel(
        &left,
        &rows,
        &sides,
        &threads,
        "throughput (requests/s, higher is better)",
        |r| r.rps,
    )?;
    panel(
        &right,
        &rows,
        &sides,
        &threads,
        "p99 service time (µs, lower is better)",
        |r| r.p99_us,
    )?;
    area.present()?;
    println!("wrote {output}");
    Ok(())
}
