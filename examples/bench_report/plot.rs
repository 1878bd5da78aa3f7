//! Log-log line plots as standalone SVG.

use std::fmt::Write;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Index into the palette.
    pub colour: usize,
    pub line: Line,
}

#[derive(Clone, Copy)]
pub enum Line {
    Solid,
    Dashed,
    Dotted,
}

const W: f64 = 720.0;
const H: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// Decades spanning the values, at least one.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
    (lo, if hi > lo { hi } else { lo + 1.0 })
}

fn label(v: f64, unit: &str) -> String {
    let (scaled, prefix) = match v {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v if v >= 1.0 || unit.is_empty() => (v, ""),
        v if v >= 1e-3 => (v * 1e3, "m"),
        v if v >= 1e-6 => (v * 1e6, "µ"),
        v => (v * 1e9, "n"),
    };
    format!("{}{prefix}{unit}", (scaled * 1000.0).round() / 1000.0)
}

/// A plot with logarithmic axes; `x_unit`/`y_unit` label the ticks ("s", "B" or "").
pub fn log_log(
    title: &str,
    x_name: &str,
    x_unit: &str,
    y_name: &str,
    y_unit: &str,
    series: &[Series],
) -> String {
    let (x0, x1) = decades(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = decades(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |v: f64| LEFT + (v.log10() - x0) / (x1 - x0) * pw;
    let y = |v: f64| TOP + ph - (v.log10() - y0) / (y1 - y0) * ph;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{title}</text>"#,
        LEFT + pw / 2.0
    );
    for d in (x0 as i32)..=(x1 as i32) {
        let v = 10f64.powi(d);
        let px = x(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{px}" y1="{TOP}" x2="{px}" y2="{}" stroke="#ddd"/><text x="{px}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            label(v, x_unit)
        );
    }
    for d in (y0 as i32)..=(y1 as i32) {
        let v = 10f64.powi(d);
        let py = y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py}" x2="{}" y2="{py}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            label(v, y_unit)
        );
    }
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_name}</text>"#,
        LEFT + pw / 2.0,
        H - 18.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{y_name}</text>"#,
        TOP + ph / 2.0
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[s.colour % COLOURS.len()];
        let dash = match s.line {
            Line::Solid => "",
            Line::Dashed => r#" stroke-dasharray="7 4""#,
            Line::Dotted => r#" stroke-dasharray="2 3""#,
        };
        let points: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0 > 0.0 && p.1 > 0.0 && p.1.is_finite())
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#
            );
        }
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let lx = LEFT + pw + 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            s.name
        );
    }
    svg.push_str("</svg>\n");
    svg
}
