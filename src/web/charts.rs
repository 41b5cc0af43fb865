//! Server-side SVG geometry for the status page. Only numbers go into the SVG; the template
//! draws it, so nothing here needs to bypass escaping.

use crate::analysis::Report;

pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 240.0;
pub const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
pub const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

pub struct Bar {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    pub class: &'static str,
    pub title: String,
}

pub struct Tick {
    pub x: String,
    pub y: String,
    pub label: String,
    /// SVG `text-anchor`: start, middle or end.
    pub anchor: &'static str,
}

pub struct Histogram {
    pub bars: Vec<Bar>,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub baseline_y: String,
    pub left: String,
    pub right: String,
}

pub struct Arc {
    pub points: String,
    pub area: String,
    pub zero_y: String,
    pub left: String,
    pub right: String,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    pub dots: Vec<Dot>,
}

pub struct Dot {
    pub x: String,
    pub y: String,
    pub class: &'static str,
    pub title: String,
}

pub fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// Ticks of a count axis: 0, half of `max` and `max`, left of a plot `plot_h` high that starts
/// at the charts' common top and left margins (the dashboard's chart shares them).
pub fn count_ticks(max: u64, plot_h: f64) -> Vec<Tick> {
    let max = max.max(1);
    let mut levels = vec![0, max / 2, max];
    levels.dedup();
    levels
        .into_iter()
        .map(|v| Tick {
            x: f(LEFT - 6.0),
            y: f(TOP + plot_h - plot_h * v as f64 / max as f64 + 4.0),
            label: v.to_string(),
            anchor: "end",
        })
        .collect()
}

pub fn histogram(report: &Report) -> Histogram {
    let bins = report.histogram.len().max(1);
    let max = report.histogram.iter().copied().max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bw = plot_w / bins as f64;
    let total: u64 = report.histogram.iter().sum();
    let bars = report
        .histogram
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let h = plot_h * count as f64 / max as f64;
            let lo = -1.0 + i as f64 * 2.0 / bins as f64;
            let hi = lo + 2.0 / bins as f64;
            let center = (lo + hi) / 2.0;
            let class = if center <= -0.05 {
                "neg"
            } else if center > 0.05 {
                "pos"
            } else {
                "neu"
            };
            let share = if total > 0 {
                100.0 * count as f64 / total as f64
            } else {
                0.0
            };
            Bar {
                x: f(LEFT + i as f64 * bw + 1.0),
                y: f(TOP + plot_h - h),
                w: f((bw - 2.0).max(1.0)),
                h: f(h),
                class,
                title: format!(
                    "{lo:.1} to {hi:.1}: {count} item{} ({share:.1}%)",
                    if count == 1 { "" } else { "s" }
                ),
            }
        })
        .collect();
    let x_ticks = [-1.0, -0.5, 0.0, 0.5, 1.0]
        .iter()
        .map(|&v: &f64| Tick {
            x: f(LEFT + (v + 1.0) / 2.0 * plot_w),
            y: f(HEIGHT - 10.0),
            label: if v == 0.0 { "0".into() } else { format!("{v}") },
            anchor: if v <= -1.0 {
                "start"
            } else if v >= 1.0 {
                "end"
            } else {
                "middle"
            },
        })
        .collect();
    let y_ticks = count_ticks(max, plot_h);
    Histogram {
        bars,
        x_ticks,
        y_ticks,
        baseline_y: f(TOP + plot_h),
        left: f(LEFT),
        right: f(WIDTH - RIGHT),
    }
}

/// Where segment `i` of `n` and a compound `v` fall on the arc's plot.
#[derive(Clone, Copy)]
struct ArcScale {
    n: usize,
}

impl ArcScale {
    fn x(self, i: usize) -> f64 {
        let plot_w = WIDTH - LEFT - RIGHT;
        if self.n <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (self.n - 1) as f64
        }
    }

    fn y(self, v: f64) -> f64 {
        let plot_h = HEIGHT - TOP - BOTTOM;
        TOP + plot_h / 2.0 - v.clamp(-1.0, 1.0) * plot_h / 2.0
    }
}

pub fn arc(report: &Report) -> Arc {
    let n = report.arc.len();
    let scale = ArcScale { n };
    let pts: Vec<(f64, f64)> = report
        .arc
        .iter()
        .enumerate()
        .map(|(i, &v)| (scale.x(i), scale.y(v)))
        .collect();
    let points = pts
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let zero = scale.y(0.0);
    let area = match (pts.first(), pts.last()) {
        (Some(first), Some(last)) => {
            format!("{:.1},{zero:.1} {points} {:.1},{zero:.1}", first.0, last.0)
        }
        _ => String::new(),
    };
    Arc {
        points,
        area,
        zero_y: f(zero),
        left: f(LEFT),
        right: f(WIDTH - RIGHT),
        y_ticks: arc_y_ticks(scale),
        x_ticks: arc_x_ticks(),
        dots: arc_dots(&report.arc, scale),
    }
}

/// A dot per segment with its value as a tooltip, when there are few enough to tell apart.
fn arc_dots(arc: &[f64], scale: ArcScale) -> Vec<Dot> {
    let n = arc.len();
    if n > 40 {
        return Vec::new();
    }
    arc.iter()
        .enumerate()
        .map(|(i, &v)| Dot {
            x: f(scale.x(i)),
            y: f(scale.y(v)),
            class: if v >= 0.05 {
                "pos"
            } else if v <= -0.05 {
                "neg"
            } else {
                "neu"
            },
            title: format!("segment {} of {n}: {v:.3}", i + 1),
        })
        .collect()
}

fn arc_y_ticks(scale: ArcScale) -> Vec<Tick> {
    [1.0, 0.0, -1.0]
        .iter()
        .map(|&v: &f64| Tick {
            x: f(LEFT - 6.0),
            y: f(scale.y(v) + 4.0),
            label: if v == 0.0 {
                "0".into()
            } else {
                format!("{v:+}")
            },
            anchor: "end",
        })
        .collect()
}

fn arc_x_ticks() -> Vec<Tick> {
    vec![
        Tick {
            x: f(LEFT),
            y: f(HEIGHT - 10.0),
            label: "start".into(),
            anchor: "start",
        },
        Tick {
            x: f(WIDTH - RIGHT),
            y: f(HEIGHT - 10.0),
            label: "end".into(),
            anchor: "end",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Format, LabelCounts};

    fn report(histogram: Vec<u64>, arc: Vec<f64>) -> Report {
        Report {
            format: Format::Text,
            items: histogram.iter().sum(),
            mean_compound: 0.0,
            labels: LabelCounts::default(),
            histogram,
            arc,
            most_positive: vec![],
            most_negative: vec![],
            elapsed_ms: 1.0,
        }
    }

    #[test]
    fn histogram_bars_are_colored_by_sign_and_scaled_to_the_fullest_bin() {
        let mut bins = vec![0u64; 20];
        bins[0] = 4;
        bins[9] = 1;
        bins[19] = 2;
        let h = histogram(&report(bins, vec![]));
        assert_eq!(h.bars.len(), 20);
        assert_eq!(h.bars[0].class, "neg");
        assert_eq!(h.bars[9].class, "neu");
        assert_eq!(h.bars[10].class, "neu");
        assert_eq!(h.bars[11].class, "pos");
        let plot_h = HEIGHT - TOP - BOTTOM;
        assert_eq!(h.bars[0].h, format!("{plot_h:.1}"));
        assert_eq!(h.bars[19].h, format!("{:.1}", plot_h / 2.0));
        assert_eq!(h.bars[5].h, "0.0");
        assert!(h.bars[0].title.starts_with("-1.0 to -0.9: 4 items"));
        let labels: Vec<_> = h.x_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["-1", "-0.5", "0", "0.5", "1"]);
    }

    #[test]
    fn an_empty_histogram_does_not_divide_by_zero() {
        let h = histogram(&report(vec![0; 20], vec![]));
        assert!(h.bars.iter().all(|b| b.h == "0.0"));
        let a = arc(&report(vec![0; 20], vec![]));
        assert!(a.points.is_empty() && a.area.is_empty());
    }

    #[test]
    fn the_arc_runs_from_left_to_right_around_the_zero_line() {
        let a = arc(&report(vec![0; 20], vec![1.0, 0.0, -1.0]));
        let points: Vec<(f64, f64)> = a
            .points
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].0, LEFT);
        assert_eq!(points[2].0, WIDTH - RIGHT);
        let zero: f64 = a.zero_y.parse().unwrap();
        assert!(points[0].1 < zero && points[2].1 > zero);
        assert_eq!(points[1].1, zero);
        assert_eq!(a.dots.len(), 3);
        assert_eq!(a.dots[0].class, "pos");
        assert_eq!(a.dots[2].class, "neg");
    }
}
