//! Server-side SVG geometry for the status page. Only numbers go into the SVG; the template
//! draws it, so nothing here needs to bypass escaping.

use chrono::Datelike;

use crate::analysis::agreement::Agreement;
use crate::analysis::groups::{Group, Grouping};
pub use crate::analysis::report::thousands;
use crate::analysis::{Label, Report};

pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 240.0;
/// Room for the count axis's labels: four characters ([`compact`]) at the phone layout's font.
pub const LEFT: f64 = 64.0;
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
            label: compact(v),
            anchor: "end",
        })
        .collect()
}

/// A count in at most four characters, for axis labels: `950`, `1.7k`, `17k`, `170k`, `1.7M`.
pub fn compact(n: u64) -> String {
    let short = |v: f64, unit: &str| {
        if v < 9.95 {
            format!("{v:.1}{unit}").replace(".0", "")
        } else {
            format!("{v:.0}{unit}")
        }
    };
    match n {
        0..=999 => n.to_string(),
        1_000..=999_499 => short(n as f64 / 1e3, "k"),
        999_500..=999_499_999 => short(n as f64 / 1e6, "M"),
        _ => short(n as f64 / 1e9, "G"),
    }
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
                    "{lo:.1} to {hi:.1}: {} item{} ({share:.1}%)",
                    thousands(count),
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
            class: class_of(v),
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

/// Groups shown in the bar chart (the table lists every group of the report).
pub const CHART_GROUPS: usize = 20;
/// Height of one group's row in the bar chart: its label above a bar, legible at the phone
/// layout's larger font.
const GROUP_ROW: f64 = 40.0;

/// One group of the bar chart: its label, its mean as a bar from zero, its 95 % interval as a
/// whisker.
pub struct GroupBar {
    pub label: String,
    pub value: String,
    pub label_y: String,
    pub bar_x: String,
    pub bar_y: String,
    pub bar_w: String,
    pub whisker: Option<(String, String)>,
    pub whisker_y: String,
    pub class: &'static str,
    pub title: String,
}

pub struct GroupBars {
    pub height: String,
    pub zero_x: String,
    pub bars: Vec<GroupBar>,
}

fn class_of(v: f64) -> &'static str {
    Label::of(v).class()
}

/// The bar chart of value groups: the [`CHART_GROUPS`] largest, least liked first.
pub fn group_bars(grouping: &Grouping) -> GroupBars {
    let mut groups: Vec<&Group> = grouping.groups.iter().take(CHART_GROUPS).collect();
    groups.sort_by(|a, b| a.mean_compound.total_cmp(&b.mean_compound));
    let (left, right) = (8.0, WIDTH - 8.0);
    let x = |v: f64| left + (v.clamp(-1.0, 1.0) + 1.0) / 2.0 * (right - left);
    let zero = x(0.0);
    let bars = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let top = i as f64 * GROUP_ROW;
            let (a, b) = (x(0.0), x(g.mean_compound));
            let label: String = g.key.chars().take(32).collect();
            GroupBar {
                label: if g.key.chars().count() > 32 {
                    format!("{label}…")
                } else {
                    label
                },
                value: format!("{:+.3}", g.mean_compound),
                label_y: f(top + 18.0),
                bar_x: f(a.min(b)),
                bar_y: f(top + 24.0),
                bar_w: f((a - b).abs().max(1.5)),
                whisker: g.ci95.map(|[lo, hi]| (f(x(lo)), f(x(hi)))),
                whisker_y: f(top + 30.0),
                class: class_of(g.mean_compound),
                title: group_title(g),
            }
        })
        .collect::<Vec<_>>();
    GroupBars {
        height: f((bars.len() as f64 * GROUP_ROW).max(GROUP_ROW) + 4.0),
        zero_x: f(zero),
        bars,
    }
}

/// A group's tooltip: its key, mean with interval and size.
pub fn group_title(g: &Group) -> String {
    let interval = match g.ci95 {
        Some([lo, hi]) => format!(" (95% CI {lo:+.3} to {hi:+.3})"),
        None => String::new(),
    };
    format!(
        "{}: mean {:+.3}{interval}, {} item{}",
        g.key,
        g.mean_compound,
        thousands(g.count),
        if g.count == 1 { "" } else { "s" }
    )
}

/// A line of means over `[-1, 1]` with an optional band: the time series and the rating chart.
pub struct LineChart {
    pub points: String,
    pub band: String,
    pub zero_y: String,
    pub left: String,
    pub right: String,
    pub dots: Vec<Dot>,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
}

/// Where the points of a line chart go: x from `lo..hi` across the plot, y from the compound.
struct LineScale {
    lo: f64,
    hi: f64,
}

impl LineScale {
    fn x(&self, v: f64) -> f64 {
        let plot_w = WIDTH - LEFT - RIGHT - 16.0;
        if self.hi <= self.lo {
            LEFT + 8.0 + plot_w / 2.0
        } else {
            LEFT + 8.0 + plot_w * (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn y(&self, v: f64) -> f64 {
        ArcScale { n: 0 }.y(v)
    }
}

/// Points `(x value, mean, interval, tooltip)` as a line chart.
fn line_chart(
    points: &[(f64, f64, Option<[f64; 2]>, String)],
    x_ticks: Vec<(f64, String)>,
) -> LineChart {
    let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let scale = LineScale { lo, hi };
    let line = points
        .iter()
        .map(|(x, y, _, _)| format!("{:.1},{:.1}", scale.x(*x), scale.y(*y)))
        .collect::<Vec<_>>()
        .join(" ");
    let upper = points.iter().filter_map(|(x, _, ci, _)| {
        ci.map(|[_, hi]| format!("{:.1},{:.1}", scale.x(*x), scale.y(hi)))
    });
    let lower = points.iter().rev().filter_map(|(x, _, ci, _)| {
        ci.map(|[lo, _]| format!("{:.1},{:.1}", scale.x(*x), scale.y(lo)))
    });
    let band = upper.chain(lower).collect::<Vec<_>>().join(" ");
    let dots = if points.len() <= 120 {
        points
            .iter()
            .map(|(x, y, _, title)| Dot {
                x: f(scale.x(*x)),
                y: f(scale.y(*y)),
                class: class_of(*y),
                title: title.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let n = x_ticks.len();
    let x_ticks = x_ticks
        .into_iter()
        .enumerate()
        .map(|(i, (v, label))| Tick {
            x: f(scale.x(v)),
            y: f(HEIGHT - 10.0),
            label,
            anchor: if n > 1 && i == 0 {
                "start"
            } else if n > 1 && i == n - 1 {
                "end"
            } else {
                "middle"
            },
        })
        .collect();
    LineChart {
        points: line,
        band,
        zero_y: f(scale.y(0.0)),
        left: f(LEFT),
        right: f(WIDTH - RIGHT),
        dots,
        x_ticks,
        y_ticks: arc_y_ticks(ArcScale { n: 0 }),
    }
}

/// The first day of a date group's key (`2026-03-14`, `2026-W11`, `2026-03`).
fn period_start(key: &str) -> Option<chrono::NaiveDate> {
    use chrono::NaiveDate;
    if let Some((year, week)) = key.split_once("-W") {
        return NaiveDate::from_isoywd_opt(
            year.parse().ok()?,
            week.parse().ok()?,
            chrono::Weekday::Mon,
        );
    }
    NaiveDate::parse_from_str(key, "%Y-%m-%d")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(&format!("{key}-01"), "%Y-%m-%d").ok())
}

/// The time series of date groups: mean compound per period with its 95 % interval as a band,
/// placed by the period's start so gaps in time show as gaps.
pub fn series(grouping: &Grouping) -> LineChart {
    let placed: Vec<(f64, &Group)> = grouping
        .groups
        .iter()
        .filter_map(|g| Some((period_start(&g.key)?.num_days_from_ce() as f64, g)))
        .collect();
    let points: Vec<(f64, f64, Option<[f64; 2]>, String)> = placed
        .iter()
        .map(|(x, g)| (*x, g.mean_compound, g.ci95, group_title(g)))
        .collect();
    let ticks = match placed.as_slice() {
        [] => vec![],
        [(x, g)] => vec![(*x, g.key.clone())],
        [(x0, first), .., (x1, last)] => vec![(*x0, first.key.clone()), (*x1, last.key.clone())],
    };
    line_chart(&points, ticks)
}

/// Mean compound per rating value.
pub fn rating_chart(agreement: &Agreement) -> LineChart {
    let points: Vec<(f64, f64, Option<[f64; 2]>, String)> = agreement
        .by_rating
        .iter()
        .map(|r| {
            let title = format!(
                "rating {}: mean {:+.3}, {} item{}",
                r.rating,
                r.mean_compound,
                thousands(r.count),
                if r.count == 1 { "" } else { "s" }
            );
            (r.rating, r.mean_compound, None, title)
        })
        .collect();
    let values: Vec<f64> = agreement.by_rating.iter().map(|r| r.rating).collect();
    let ticks = if values.len() <= 11 {
        values.iter().map(|&v| (v, format!("{v}"))).collect()
    } else {
        let (lo, hi) = (values[0], values[values.len() - 1]);
        (0..=4)
            .map(|i| {
                let v = lo + (hi - lo) * f64::from(i) / 4.0;
                (v, format!("{}", (v * 100.0).round() / 100.0))
            })
            .collect()
    };
    line_chart(&points, ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Format;
    use crate::analysis::report::Aggregator;

    fn report(histogram: Vec<u64>, arc: Vec<f64>) -> Report {
        let mut report = Aggregator::new().finish(Format::Text, 1.0);
        report.items = histogram.iter().sum();
        report.histogram = histogram;
        report.arc = arc;
        report
    }

    #[test]
    fn counts_read_with_separators_and_axis_labels_fit_four_characters() {
        assert_eq!(thousands(10_605), "10,605");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        for (n, label) in [
            (725, "725"),
            (1_725, "1.7k"),
            (10_000, "10k"),
            (999_999, "1M"),
            (172_600, "173k"),
            (2_000_000, "2M"),
        ] {
            assert_eq!(compact(n), label, "{n}");
            assert!(compact(n).chars().count() <= 4);
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
