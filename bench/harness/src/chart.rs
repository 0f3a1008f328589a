//! The chart: per database, throughput and p99 latency against concurrency, credits over HTTP
//! (solid), the hand-written SQL baseline (dashed) and the limit baseline (dotted: the service's
//! rows in batches), for each spend scenario.

use crate::{Db, Row, Scenario, Side};
use anyhow::anyhow;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use std::path::Path;

/// DejaVu Sans (see assets/DejaVuSans.LICENSE): bundled so that drawing text needs no system
/// font library.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

struct Line {
    label: String,
    color: RGBColor,
    /// Dash and gap in pixels; none for a solid line.
    dash: Option<(u32, u32)>,
    points: Vec<(f64, f64)>,
}

fn color(scenario: Scenario) -> RGBColor {
    match scenario {
        Scenario::Many => RGBColor(31, 119, 180),
        Scenario::Hot => RGBColor(214, 39, 40),
        Scenario::Bulk => RGBColor(148, 103, 189),
        // Timed once, not drawn against concurrency.
        Scenario::Reads
        | Scenario::Month
        | Scenario::Day
        | Scenario::Hostile
        | Scenario::Export
        | Scenario::BalanceAt
        | Scenario::Footprint
        | Scenario::Replica
        | Scenario::Subscribers => RGBColor(44, 160, 44),
    }
}

/// The lines of one database and one metric.
fn lines(rows: &[Row], db: Db, metric: impl Fn(&Row) -> f64) -> Vec<Line> {
    let mut lines = Vec::new();
    for scenario in [Scenario::Many, Scenario::Hot, Scenario::Bulk] {
        for side in [Side::Credits, Side::Baseline, Side::Limit] {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.db == db && r.scenario == scenario && r.side == side)
                .map(|r| (r.clients as f64, metric(r)))
                .filter(|(_, y)| y.is_finite() && *y > 0.0)
                .collect();
            if points.is_empty() {
                continue;
            }
            let (who, dash) = match side {
                Side::Credits => ("credits (HTTP)", None),
                Side::Limit => ("limit (SQL, batched)", Some((3, 4))),
                _ => ("baseline (SQL)", Some((10, 6))),
            };
            lines.push(Line { label: format!("{}: {who}", scenario.label()), color: color(scenario), dash, points });
        }
    }
    lines
}

pub fn draw(path: &Path, rows: &[Row], dbs: &[Db]) -> anyhow::Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| anyhow!("the bundled font does not load"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let height = 460 * dbs.len().max(1) as u32 + 60;
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled("spendCredits: credits over HTTP vs hand-written SQL on the same database", ("sans-serif", 26))?;
    let panels = root.split_evenly((dbs.len().max(1), 2));
    let clients: Vec<f64> = rows.iter().filter(|r| r.side != Side::Paced).map(|r| r.clients as f64).collect();
    let x_max = clients.iter().copied().fold(1.0, f64::max) * 1.3;
    let ticks: Vec<f64> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0].into_iter().filter(|t| *t < x_max).collect();
    let x_range = || (0.8..x_max).log_scale().with_key_points(ticks.clone());
    for (i, &db) in dbs.iter().enumerate() {
        let throughput = lines(rows, db, |r| r.throughput);
        let y_max = throughput.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&panels[2 * i])
            .caption(format!("{}: throughput (spends/s)", db.label()), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range(), 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("concurrent clients")
            .y_desc("spends/s")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(WHITE)
            .draw()?;
        series(&mut chart, &throughput)?;

        let p99 = lines(rows, db, |r| r.p99);
        let values: Vec<f64> = p99.iter().flat_map(|l| l.points.iter().map(|p| p.1)).collect();
        let (low, high) = (values.iter().copied().fold(f64::INFINITY, f64::min), values.iter().copied().fold(0.0, f64::max));
        let (low, high) = if values.is_empty() { (0.1, 10.0) } else { (low * 0.7, high * 1.5) };
        let mut chart = ChartBuilder::on(&panels[2 * i + 1])
            .caption(format!("{}: p99 latency (ms, log scale)", db.label()), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range(), (low..high).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("concurrent clients")
            .y_desc("p99 ms")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y}"))
            .y_labels(8)
            .light_line_style(WHITE)
            .draw()?;
        series(&mut chart, &p99)?;
    }
    root.present()?;
    Ok(())
}

fn series<'a, X, Y>(chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>, lines: &[Line]) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for line in lines {
        let color = line.color;
        let style = color.stroke_width(2);
        let drawn = match line.dash {
            Some((size, spacing)) => chart.draw_series(DashedLineSeries::new(line.points.clone(), size, spacing, style))?,
            None => chart.draw_series(LineSeries::new(line.points.clone(), style))?,
        };
        // The legend shows the dash: two segments with a gap for a baseline, touching otherwise.
        let (a, b) = match line.dash {
            Some((size, spacing)) => {
                let a = (size as i32).min(8);
                (a, a + spacing as i32)
            }
            None => (12, 12),
        };
        drawn.label(line.label.clone()).legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (a, 0)], color.stroke_width(2))
                + PathElement::new(vec![(b, 0), (b + a, 0)], color.stroke_width(2))
        });
        let marker = line.points.iter().map(move |&(x, y)| Circle::new((x, y), 4, color.filled()));
        chart.draw_series(marker)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
