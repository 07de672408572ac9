//! `memcord bench --plot`: throughput against connections, one line per target, as an SVG
//! chart (drawn with `plotters`), from the JSON lines a connection sweep wrote.
//!
//! Each input line is one measured point: `{"name": "memcached", "connections": 32,
//! "ops_per_sec": 48543.2}` (other fields are ignored, so a sweep may keep whole reports).
//! Points of one name at the same connection count (several rounds) are drawn as their median.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One measured point of a sweep.
#[derive(Debug, Clone, Deserialize)]
pub struct SweepPoint {
    /// The target's name (one line of the chart).
    pub name: String,
    /// Client connections.
    pub connections: u32,
    /// Measured throughput.
    pub ops_per_sec: f64,
}

/// A line of the chart: the target's name and its (connections, median ops/s) points.
pub type Series = (String, Vec<(u32, f64)>);

/// Reads a sweep file: one [`SweepPoint`] per non-empty line.
pub fn read_sweep(path: &Path) -> Result<Vec<SweepPoint>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Groups points by name (in order of first appearance) with the median per connection count.
pub fn series(points: &[SweepPoint]) -> Vec<Series> {
    let mut order: Vec<String> = Vec::new();
    let mut by_name: BTreeMap<&str, BTreeMap<u32, Vec<f64>>> = BTreeMap::new();
    for point in points {
        if !order.contains(&point.name) {
            order.push(point.name.clone());
        }
        by_name
            .entry(&point.name)
            .or_default()
            .entry(point.connections)
            .or_default()
            .push(point.ops_per_sec);
    }
    order
        .into_iter()
        .map(|name| {
            let line = by_name[name.as_str()]
                .iter()
                .map(|(&connections, samples)| (connections, median(samples)))
                .collect();
            (name, line)
        })
        .collect()
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Draws `lines` (throughput against connections, log-scaled connections) into an SVG file.
pub fn draw(lines: &[Series], title: &str, out: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let points = lines.iter().flat_map(|(_, line)| line.iter());
    let max_connections = points.clone().map(|p| p.0).max().unwrap_or(1).max(2);
    let max_ops = points.map(|p| p.1).fold(0.0_f64, f64::max).max(1.0);
    let root = SVGBackend::new(out, (960, 560)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d((1u32..max_connections).log_scale(), 0f64..max_ops * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("client connections")
        .y_desc("operations per second")
        .y_label_formatter(&|ops| format!("{:.0}k", ops / 1000.0))
        .draw()
        .map_err(err)?;
    for (i, (name, line)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, connections: u32, ops: f64) -> SweepPoint {
        SweepPoint {
            name: name.into(),
            connections,
            ops_per_sec: ops,
        }
    }

    #[test]
    fn series_keep_first_appearance_order_and_take_medians() {
        let points = [
            point("memcached", 1, 10.0),
            point("memcord", 1, 5.0),
            point("memcached", 1, 30.0),
            point("memcached", 1, 20.0),
            point("memcached", 8, 80.0),
            point("memcord", 8, 40.0),
            point("memcord", 8, 60.0),
        ];
        assert_eq!(
            series(&points),
            vec![
                ("memcached".to_string(), vec![(1, 20.0), (8, 80.0)]),
                ("memcord".to_string(), vec![(1, 5.0), (8, 50.0)]),
            ]
        );
    }

    #[test]
    fn a_sweep_file_is_read_and_drawn_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let sweep = dir.path().join("sweep.jsonl");
        std::fs::write(
            &sweep,
            "{\"name\":\"memcached\",\"connections\":1,\"ops_per_sec\":9000.5,\"extra\":1}\n\n\
             {\"name\":\"memcached\",\"connections\":32,\"ops_per_sec\":48000}\n\
             {\"name\":\"linearizable-3\",\"connections\":1,\"ops_per_sec\":900}\n\
             {\"name\":\"linearizable-3\",\"connections\":32,\"ops_per_sec\":15000}\n",
        )
        .unwrap();
        let points = read_sweep(&sweep).unwrap();
        assert_eq!(points.len(), 4);
        let out = dir.path().join("chart.svg");
        draw(&series(&points), "get90", &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("memcached") && svg.contains("linearizable-3"));
        assert!(svg.contains("client connections"));
        std::fs::write(&sweep, "{\"name\":\"x\"}\n").unwrap();
        let err = read_sweep(&sweep).unwrap_err();
        assert!(err.contains("sweep.jsonl:1"), "{err}");
    }
}
