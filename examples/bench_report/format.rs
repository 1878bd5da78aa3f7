//! The report being written, and how its figures read.

/// The markdown and the plots of the report.
pub struct Report {
    pub md: String,
    pub plots: Vec<(String, String)>,
}

impl Report {
    pub fn line(&mut self, text: impl AsRef<str>) {
        self.md.push_str(text.as_ref());
        self.md.push('\n');
    }
}

/// A duration, in the unit that reads best; "–" for a figure this run did not measure.
pub fn time(s: impl Into<Option<f64>>) -> String {
    match s.into() {
        Some(s) if s >= 1.0 => format!("{s:.2} s"),
        Some(s) if s >= 1e-3 => format!("{:.2} ms", s * 1e3),
        Some(s) if s >= 1e-6 => format!("{:.1} µs", s * 1e6),
        Some(s) if s.is_finite() => format!("{:.0} ns", s * 1e9),
        _ => "–".into(),
    }
}

/// A size in bytes, in the unit that reads best.
pub fn bytes(b: f64) -> String {
    if b >= (1 << 20) as f64 {
        format!("{:.2} MiB", b / (1 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// `a / b` as "1.23x"; "–" when either was not measured.
pub fn ratio(a: impl Into<Option<f64>>, b: impl Into<Option<f64>>) -> String {
    match (a.into(), b.into()) {
        (Some(a), Some(b)) if (a / b).is_finite() => {
            let r = a / b;
            if r >= 100.0 {
                format!("{r:.0}x")
            } else {
                format!("{r:.2}x")
            }
        }
        _ => "–".into(),
    }
}

/// 10k, 100k, 1M.
pub fn items_label(items: usize) -> String {
    match items {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

/// A command's output, or "unknown".
pub fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
