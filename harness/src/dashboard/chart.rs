//! One figure's trend over the runs of one machine, as an SVG drawn by
//! plotters: the median per run as a line, the run's min–max as a shaded
//! band around it, and the runs the regression rule flags as red (slower)
//! or green (faster) dots.

use plotters::prelude::*;

use crate::bench::record::Spread;
use crate::bench::trend::Change;

/// One point of a trend: the run's label (short commit) and its spread.
pub struct Point {
    /// Short commit or date.
    pub label: String,
    /// The figure in that run.
    pub spread: Spread,
    /// How it moved from the point before (`Within` for the first).
    pub change: Change,
}

/// Chart size in pixels.
const SIZE: (u32, u32) = (520, 240);

/// The chart as an SVG document; `unit` labels the y axis. Values are
/// drawn in milliseconds below one second (`unit` "s").
pub fn trend_svg(title: &str, unit: &str, points: &[Point]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let top = points.iter().map(|p| p.spread.max).fold(0.0f64, f64::max);
        let (scale, shown_unit) = if top < 1.0 { (1e3, format!("m{unit}")) } else { (1.0, unit.to_owned()) };
        let y_max = if top > 0.0 { top * scale * 1.15 } else { 1.0 };
        let n = points.len().max(1);
        let x_max = (n as f64 - 0.5).max(0.5);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        let labels: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
        chart
            .configure_mesh()
            .x_labels(n.min(8))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(shown_unit)
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        let band_color = RGBColor(70, 110, 200);
        let mut band: Vec<(f64, f64)> =
            points.iter().enumerate().map(|(i, p)| (i as f64, p.spread.max * scale)).collect();
        band.extend(points.iter().enumerate().rev().map(|(i, p)| (i as f64, p.spread.min * scale)));
        if points.len() == 1 {
            // One run: a band of the run's own width around its point.
            let p = &points[0].spread;
            band = vec![(-0.2, p.max * scale), (0.2, p.max * scale), (0.2, p.min * scale), (-0.2, p.min * scale)];
        }
        chart
            .draw_series(std::iter::once(Polygon::new(band, band_color.mix(0.2).filled())))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (i as f64, p.spread.median * scale)),
                band_color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                let color = match p.change {
                    Change::Regression => RGBColor(200, 30, 30),
                    Change::Improvement => RGBColor(30, 150, 60),
                    Change::Within => band_color,
                };
                let radius = if p.change == Change::Within { 3 } else { 6 };
                Circle::new((i as f64, p.spread.median * scale), radius, color.filled())
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_with_the_labels() {
        let s = |m: f64| Spread { median: m, min: m * 0.9, max: m * 1.1 };
        let points = vec![
            Point { label: "aaaaaaa".into(), spread: s(0.5), change: Change::Within },
            Point { label: "bbbbbbb".into(), spread: s(0.8), change: Change::Regression },
        ];
        let svg = trend_svg("boot/cold", "s", &points).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("boot/cold") && svg.contains("aaaaaaa") && svg.contains("bbbbbbb"));
        assert!(svg.contains("ms"), "below a second the axis is in ms");
        assert!(trend_svg("one", "s", &points[..1]).unwrap().contains("<polygon"));
    }
}
