//! `echoloop report --html OUT.html`: one self-contained page (inline SVG
//! drawn with plotters, no scripts, no network fetches) with the merged
//! run: msgs/s over time per tag and in total, latency p50/p99/max over
//! time, the latency percentile spectrum on HdrHistogram's "nines" axis,
//! errors over time, and the runs' parameters.

use std::fmt::Write as _;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use super::compare::Run;
use super::{Merged, Step, quantile};

/// Chart size, pixels.
const SIZE: (u32, u32) = (900, 360);

/// The nines the spectrum is drawn at: 0%, 50%, 90%, 99%, … 99.999%.
const NINES: [f64; 7] = [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999];

/// Tags drawn as their own line in the msgs/s chart (the total is always
/// drawn; the table lists every tag).
const MAX_TAG_LINES: usize = 12;

/// The page's head, its style and its title.
fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:960px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\
         h2{{margin-top:1.5em}}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    )
}

/// Each chart under its heading (or why it could not be drawn).
fn sections(out: &mut String, sections: Vec<(&str, Drawn)>) {
    for (heading, svg) in sections {
        let _ = write!(
            out,
            "<h2>{heading}</h2>\n{}\n",
            svg.unwrap_or_else(|e| format!("<p>(no chart: {e})</p>"))
        );
    }
}

/// The page, as text.
pub fn page(merged: &Merged) -> String {
    let mut out = head("echoloop report");
    let t = &merged.total;
    let _ = writeln!(
        out,
        "<p id=\"summary\">{} messages over {:.1} s ({:.1} msgs/s); latency µs p50 {}, p99 {}, p99.9 {}, max {}.</p>",
        t.len(),
        merged.span(),
        t.len() as f64 / merged.span().max(1e-9),
        quantile(t, 0.5),
        quantile(t, 0.99),
        quantile(t, 0.999),
        t.max()
    );
    if merged.apart() {
        out.push_str(
            "<p id=\"apart\">The logs do not all overlap in time: each line breaks \
             where no log has data. To compare separate runs, use \
             <code>echoloop report --compare</code>.</p>\n",
        );
    }
    sections(
        &mut out,
        vec![
            ("Messages per second", throughput(merged)),
            ("Latency over time (µs)", latency(merged)),
            (
                "Latency by percentile (µs)",
                spectrum(vec![("all".into(), &merged.total)]),
            ),
            ("Errors per interval", errors_chart(merged)),
        ],
    );
    if merged.offered {
        sections(
            &mut out,
            vec![("Latency against offered rate (µs)", knee(merged))],
        );
    }
    out.push_str("<h2>Runs</h2>\n<table>\n<tr><th>log</th></tr>\n");
    for file in &merged.files {
        let _ = writeln!(
            out,
            "<tr><td>{}</td></tr>",
            escape(&file.display().to_string())
        );
    }
    for comment in &merged.comments {
        let _ = writeln!(out, "<tr><td>{}</td></tr>", escape(comment));
    }
    out.push_str("</table>\n<h2>Tags</h2>\n<table>\n<tr><th>tag</th><th>messages</th><th>p50 µs</th><th>p99 µs</th><th>max µs</th></tr>\n");
    for (tag, run) in &merged.tags {
        let h = &run.latency;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(tag),
            h.len(),
            quantile(h, 0.5),
            quantile(h, 0.99),
            h.max()
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

/// `<`, `>`, `&` and quotes as entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

type Drawn = Result<String, String>;

/// msgs/s over time: the total, and one line per tag (the first
/// [`MAX_TAG_LINES`] of them).
fn throughput(merged: &Merged) -> Drawn {
    let per_s = |n: u64| n as f64 / merged.step;
    let total = stretches(merged, |s| per_s(s.latency.len()));
    let mut series: Vec<Series> = vec![("total".into(), total)];
    for (i, tag) in merged.tags.keys().enumerate().take(MAX_TAG_LINES) {
        let points = stretches(merged, |s| per_s(s.per_tag.get(i).copied().unwrap_or(0)));
        series.push((tag.clone(), points));
    }
    lines(series, "msgs/s", false)
}

/// One line of a chart: its name, and its points in stretches without a
/// gap (a line never bridges a stretch of time with no data).
type Series = (String, Stretches);

/// Points (x, y) in stretches without a gap.
type Stretches = Vec<Vec<(f64, f64)>>;

/// `f` of each step of `merged` that holds data, at the step's end time
/// (seconds from the run's start), cut into stretches at the steps with
/// none.
fn stretches(merged: &Merged, f: impl Fn(&Step) -> f64) -> Stretches {
    let mut all = Vec::new();
    let mut stretch = Vec::new();
    for (i, step) in merged.steps.iter().enumerate() {
        match step {
            Some(s) => stretch.push(((i + 1) as f64 * merged.step, f(s))),
            None if stretch.is_empty() => {}
            None => all.push(std::mem::take(&mut stretch)),
        }
    }
    if !stretch.is_empty() {
        all.push(stretch);
    }
    all
}

/// p50, p99 and max of each step.
fn latency(merged: &Merged) -> Drawn {
    let pick = |q: Option<f64>| at_quantile(merged, q);
    lines(
        vec![
            ("p50".into(), pick(Some(0.5))),
            ("p99".into(), pick(Some(0.99))),
            ("max".into(), pick(None)),
        ],
        "µs",
        true,
    )
}

/// Each step's latency at quantile `q` (`None`: its max), at least 1 µs
/// for the log axis.
fn at_quantile(merged: &Merged, q: Option<f64>) -> Stretches {
    stretches(merged, |s| {
        let h = &s.latency;
        q.map_or(h.max(), |q| quantile(h, q)).max(1) as f64
    })
}

/// The knee: p50, p99 and max against the rate offered, lowest rate
/// first. The steps offered the same rate (the intervals of one of
/// `--rate-steps`, within 0.5%) are one point, their histograms added;
/// each piece of a ramp is a point of its own. Where the latency turns up
/// is the rate the target (or the path) stops keeping up with.
fn knee(merged: &Merged) -> Drawn {
    let mut steps: Vec<(f64, &Step)> = merged
        .steps
        .iter()
        .flatten()
        .map(|s| (s.offered(merged.step), s))
        .filter(|(rate, _)| *rate > 0.0)
        .collect();
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut points: Vec<(f64, hdrhistogram::Histogram<u64>)> = Vec::new();
    for (rate, step) in steps {
        match points.last_mut() {
            Some((at, h)) if rate - *at <= *at * 0.005 => {
                // Both grow as needed: adding cannot fail.
                let _ = h.add(&step.latency);
            }
            _ => points.push((rate, step.latency.clone())),
        }
    }
    let pick = |q: Option<f64>| -> Stretches {
        let line = points
            .iter()
            .map(|(rate, h)| (*rate, q.map_or(h.max(), |q| quantile(h, q)).max(1) as f64))
            .collect();
        vec![line]
    };
    lines_over(
        vec![
            ("p50".into(), pick(Some(0.5))),
            ("p99".into(), pick(Some(0.99))),
            ("max".into(), pick(None)),
        ],
        "msgs/s offered",
        "µs",
        true,
    )
}

/// Errors per step, from the logs' `echoloop-interval` comments.
fn errors_chart(merged: &Merged) -> Drawn {
    let points = stretches(merged, |s| s.errors as f64);
    lines(vec![("errors".into(), points)], "errors", false)
}

/// Lines over time (seconds), `log` for a logarithmic y axis.
fn lines(series: Vec<Series>, y_label: &str, log: bool) -> Drawn {
    lines_over(series, "seconds", y_label, log)
}

/// Lines over any x axis (`x_label`), `log` for a logarithmic y axis.
fn lines_over(series: Vec<Series>, x_label: &str, y_label: &str, log: bool) -> Drawn {
    let points = || series.iter().flat_map(|(_, s)| s.iter().flatten());
    let x_max = points().map(|(x, _)| *x).fold(1.0, f64::max);
    let y_max = points().map(|(_, y)| *y).fold(1.0, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70);
        if log {
            let chart = builder
                .build_cartesian_2d(0f64..x_max, (1f64..y_max).log_scale())
                .map_err(|e| e.to_string())?;
            draw(chart, series, x_label, y_label)?;
        } else {
            let chart = builder
                .build_cartesian_2d(0f64..x_max, 0f64..y_max)
                .map_err(|e| e.to_string())?;
            draw(chart, series, x_label, y_label)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Draws the mesh, one line per series, and the legend, on either axis.
fn draw<'a, X, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: Vec<Series>,
    x_label: &str,
    y_label: &str,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| e.to_string())?;
    for (k, (name, stretches)) in series.into_iter().enumerate() {
        let color = colors[k % colors.len()];
        for (j, points) in stretches.into_iter().enumerate() {
            // A stretch of one step is a dot: a line needs two points.
            let dots = if points.len() == 1 {
                points.clone()
            } else {
                vec![]
            };
            chart
                .draw_series(dots.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
            let drawn = chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?;
            if j == 0 {
                let legend = move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color);
                drawn.label(name.clone()).legend(legend);
            }
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Latency by percentile, one line per histogram, on the "nines" axis: x
/// is -log10(1 − q), so 90%, 99%, 99.9% … are evenly spaced; y is log
/// scale.
fn spectrum(histograms: Vec<(String, &hdrhistogram::Histogram<u64>)>) -> Drawn {
    let nines = |q: f64| -(1.0 - q).log10();
    let x_max = nines(*NINES.last().unwrap_or(&0.99999));
    let series: Vec<Series> = histograms
        .iter()
        .map(|(name, h)| {
            let points = (0..=500)
                .map(|i| {
                    let x = x_max * i as f64 / 500.0;
                    let q = 1.0 - 10f64.powf(-x);
                    (x, quantile(h, q).max(1) as f64)
                })
                .collect();
            (name.clone(), vec![points])
        })
        .collect();
    let y_max = (histograms
        .iter()
        .map(|(_, h)| h.max())
        .max()
        .unwrap_or(0)
        .max(2) as f64)
        * 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, (1f64..y_max).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("µs")
            .x_labels(NINES.len())
            .x_label_formatter(&|x| {
                let q = 1.0 - 10f64.powf(-x);
                format!("{}%", (q * 100.0 * 1000.0).round() / 1000.0)
            })
            .draw()
            .map_err(|e| e.to_string())?;
        let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        let many = series.len() > 1;
        for (k, (name, stretches)) in series.into_iter().enumerate() {
            let color = colors[k % colors.len()];
            for points in stretches {
                let drawn = chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(|e| e.to_string())?;
                if many {
                    let legend = move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color);
                    drawn.label(name.clone()).legend(legend);
                }
            }
        }
        if many {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// `--compare --html`: the runs side by side. Every chart has one line
/// per run, each on its own time axis (seconds from its own start), and
/// the percentile spectra are overlaid.
pub fn compare_page(runs: &[Run]) -> String {
    let mut out = head("echoloop report: compare");
    let names: Vec<String> = runs.iter().map(|r| escape(&r.name)).collect();
    let _ = writeln!(
        out,
        "<p id=\"summary\">{} runs: {}; ratios to {}. Each run is drawn from its own start.</p>",
        runs.len(),
        names.join(", "),
        names.first().map_or("", String::as_str)
    );
    out.push_str("<pre id=\"table\">");
    out.push_str(&escape(&super::compare::to_human(runs)));
    out.push_str("</pre>\n");
    let per_run = |f: &dyn Fn(&Merged) -> Stretches| -> Vec<Series> {
        runs.iter()
            .map(|r| (r.name.clone(), f(&r.merged)))
            .collect()
    };
    let msgs = per_run(&|m| stretches(m, |s| s.latency.len() as f64 / m.step));
    let p50 = per_run(&|m| at_quantile(m, Some(0.5)));
    let p99 = per_run(&|m| at_quantile(m, Some(0.99)));
    let errors = per_run(&|m| stretches(m, |s| s.errors as f64));
    let spectra = runs
        .iter()
        .map(|r| (r.name.clone(), &r.merged.total))
        .collect();
    sections(
        &mut out,
        vec![
            ("Messages per second", lines(msgs, "msgs/s", false)),
            ("Latency p50 over time (µs)", lines(p50, "µs", true)),
            ("Latency p99 over time (µs)", lines(p99, "µs", true)),
            ("Latency by percentile (µs)", spectrum(spectra)),
            ("Errors per interval", lines(errors, "errors", false)),
        ],
    );
    out.push_str("<h2>Runs</h2>\n<table>\n<tr><th>run</th><th>logs</th></tr>\n");
    for run in runs {
        let files: Vec<String> = run
            .merged
            .files
            .iter()
            .map(|f| escape(&f.display().to_string()))
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&run.name),
            files.join("<br>")
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}
