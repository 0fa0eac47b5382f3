//! Charts drawn as plain SVG: stacked bars over time and a quota meter. Each chart names its
//! series with their totals right above the plot, so no legend has to be hunted for, and every
//! bar carries a tooltip with its exact numbers.

use leptos::prelude::*;

use crate::components::fmt_count;

/// One stacked series: a CSS class for its colour (`series-ok`, `series-bad`, `series-main`).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<u64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// The smallest of 1, 2, 5 × 10ⁿ at or above `max`, so the axis reads in round numbers.
fn nice_ceiling(max: u64) -> u64 {
    if max == 0 {
        return 1;
    }
    let mut step = 1u64;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= max {
                return step * factor;
            }
        }
        step *= 10;
    }
}

fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Stacked bars, one per label (oldest first), with the series stacked bottom-up in order.
#[component]
pub fn BarChart(
    title: &'static str,
    labels: Vec<String>,
    series: Vec<Series>,
    /// Show every n-th label under the axis.
    #[prop(default = 1)]
    label_every: usize,
) -> impl IntoView {
    let n = labels.len().max(1);
    let totals: Vec<u64> =
        (0..n).map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0)).sum()).collect();
    let top = nice_ceiling(totals.iter().copied().max().unwrap_or(0));
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / n as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let y = move |value: u64| TOP + plot_h - plot_h * value as f64 / top as f64;

    let grid = [0, top / 2, top]
        .into_iter()
        .map(|v| {
            let gy = y(v);
            view! {
                <line class="grid" x1=LEFT x2=WIDTH y1=gy y2=gy></line>
                <text class="axis" x=LEFT - 6.0 y=gy + 4.0 text-anchor="end">{short(v)}</text>
            }
        })
        .collect_view();

    let mut bars = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut base = 0u64;
        let tooltip = std::iter::once(label.clone())
            .chain(
                series
                    .iter()
                    .map(|s| format!("{}: {}", s.name, fmt_count(s.values.get(i).copied().unwrap_or(0)))),
            )
            .collect::<Vec<_>>()
            .join("\n");
        for s in &series {
            let value = s.values.get(i).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let (y0, y1) = (y(base), y(base + value));
            base += value;
            bars.push(view! {
                <rect class=s.class x=x y=y1 width=bar_w height=(y0 - y1).max(1.0)>
                    <title>{tooltip.clone()}</title>
                </rect>
            });
        }
    }
    let x_labels = labels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % label_every.max(1) == 0)
        .map(|(i, label)| {
            let x = LEFT + slot * i as f64 + slot / 2.0;
            view! { <text class="axis" x=x y=HEIGHT - 6.0 text-anchor="middle">{label.clone()}</text> }
        })
        .collect_view();

    let legend = series
        .iter()
        .map(|s| {
            let total: u64 = s.values.iter().sum();
            view! {
                <span class="legend-item">
                    <span class=format!("swatch {}", s.class)></span>
                    {s.name}
                    " "
                    <strong>{fmt_count(total)}</strong>
                </span>
            }
        })
        .collect_view();

    view! {
        <figure class="chart">
            <figcaption>
                <span class="chart-title">{title}</span>
                <span class="legend">{legend}</span>
            </figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=title preserveAspectRatio="none">
                {grid}
                {bars}
                {x_labels}
            </svg>
        </figure>
    }
}

/// Used against a limit, as a bar that turns amber at 80 % and red at 100 %.
#[component]
pub fn QuotaMeter(used: u64, limit: u64, label: &'static str) -> impl IntoView {
    let share = if limit == 0 { 1.0 } else { used as f64 / limit as f64 };
    let tone = if share >= 1.0 {
        "meter-bad"
    } else if share >= 0.8 {
        "meter-warn"
    } else {
        "meter-ok"
    };
    let width = format!("width: {:.1}%", (share * 100.0).min(100.0));
    view! {
        <div class="meter-block">
            <div class="meter-caption">
                <span>{label}</span>
                <span>
                    <strong>{fmt_count(used)}</strong>
                    " of "
                    {fmt_count(limit)}
                    {format!(" ({:.0} %)", share * 100.0)}
                </span>
            </div>
            <div class="meter" role="meter" aria-valuemin="0" aria-valuemax=limit aria-valuenow=used aria-label=label>
                <div class=format!("meter-fill {tone}") style=width></div>
            </div>
        </div>
    }
}
