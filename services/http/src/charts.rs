//! Charts as inline SVG strings, drawn from numbers: a bar chart, a line chart and a Pareto chart
//! (bars with a cumulative-share line). Pure functions; every label is escaped here, so a chart
//! can go into a page as it is. Each chart names itself for screen readers (`aria-label`,
//! `<title>`, and a `<desc>` listing the data) and says so plainly when there is nothing to draw.

use std::fmt::{self, Write};

/// An SVG chart, safe to put into HTML unescaped: only this module makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Svg(String);

impl fmt::Display for Svg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl askama::filters::HtmlSafe for Svg {}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 72.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 80.0;
const RIGHT: f64 = 20.0;
/// Room for the Pareto chart's percentage axis.
const RIGHT_AXIS: f64 = 48.0;
/// Longest slanted x label drawn; the full label is in the bar's tooltip and the `<desc>`.
const LABEL_CHARS: usize = 16;
/// Slots at least this wide get upright labels (as many characters as fit).
const UPRIGHT_SLOT: f64 = 80.0;
/// Slanted labels closer than this overlap: only every k-th slot is labelled.
const SLANTED_SLOT: f64 = 20.0;
/// Width of a character of the 11px labels, roughly.
const CHAR_WIDTH: f64 = 6.5;
const BAR: &str = "#4c6ef5";
const LINE: &str = "#e8590c";

/// Bars, one per `(label, value)`, with a value axis in `unit`.
pub fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)]) -> Svg {
    if bars.is_empty() {
        return no_data(title);
    }
    let values = clean(bars);
    let frame = Frame::new(&values, RIGHT);
    let mut out = open(title, unit, bars, &values);
    frame.axes(&mut out, unit);
    draw_bars(&mut out, &frame, bars, &values, unit);
    frame.x_labels(&mut out, bars);
    close(out)
}

/// A line through `(label, value)` points, in order, with a value axis in `unit`.
pub fn line_chart(title: &str, unit: &str, points: &[(String, f64)]) -> Svg {
    if points.is_empty() {
        return no_data(title);
    }
    let values = clean(points);
    let frame = Frame::new(&values, RIGHT);
    let mut out = open(title, unit, points, &values);
    frame.axes(&mut out, unit);
    let xy: Vec<(f64, f64)> = (0..values.len())
        .map(|i| (frame.center(i, values.len()), frame.y(values[i])))
        .collect();
    polyline(&mut out, &xy, LINE);
    for ((x, y), ((label, _), v)) in xy.iter().zip(points.iter().zip(&values)) {
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{LINE}\"><title>{}: {} {}</title></circle>",
            escape(label),
            number(*v),
            escape(unit)
        );
    }
    frame.x_labels(&mut out, points);
    close(out)
}

/// Bars in descending order and the line of their cumulative share of `total` (which may be
/// more than the bars add up to: the rest is the long tail not drawn).
pub fn pareto_chart(title: &str, unit: &str, bars: &[(String, f64)], total: f64) -> Svg {
    if bars.is_empty() {
        return no_data(title);
    }
    let values = clean(bars);
    let sum: f64 = values.iter().sum();
    let total = if total.is_finite() {
        total.max(sum)
    } else {
        sum
    };
    let frame = Frame::new(&values, RIGHT_AXIS);
    let mut out = open(title, unit, bars, &values);
    frame.axes(&mut out, unit);
    draw_bars(&mut out, &frame, bars, &values, unit);
    frame.share_axis(&mut out);
    let mut running = 0.0;
    let xy: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            running += v;
            let share = if total > 0.0 { running / total } else { 0.0 };
            (frame.center(i, values.len()), frame.share_y(share))
        })
        .collect();
    polyline(&mut out, &xy, LINE);
    for (x, y) in &xy {
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{LINE}\"/>"
        );
    }
    frame.x_labels(&mut out, bars);
    close(out)
}

/// Escapes text for HTML and SVG (element content and quoted attributes).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Values fit to draw: negatives, NaN and infinities count as zero.
fn clean(data: &[(String, f64)]) -> Vec<f64> {
    data.iter()
        .map(|(_, v)| if v.is_finite() { v.max(0.0) } else { 0.0 })
        .collect()
}

/// A number as a chart prints it: whole when large or whole, one decimal from 1, two
/// significant digits below.
fn number(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        let digits = format!("{v:.*}", decimals(v) + 1);
        digits.trim_end_matches('0').to_string()
    }
}

/// An axis tick: as many decimals as its step needs.
fn tick(v: f64, step: f64) -> String {
    format!("{v:.*}", if step >= 1.0 { 0 } else { decimals(step) })
}

/// Decimals down to the first significant digit of `v` (0 < v < 1).
fn decimals(v: f64) -> usize {
    (-v.log10()).ceil().clamp(1.0, 12.0) as usize
}

fn open(title: &str, unit: &str, data: &[(String, f64)], values: &[f64]) -> String {
    let desc: Vec<String> = data
        .iter()
        .zip(values)
        .map(|((label, _), v)| format!("{}: {} {}", escape(label), number(*v), escape(unit)))
        .collect();
    let title = escape(title);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" class=\"chart\" \
         role=\"img\" aria-label=\"{title}\"><title>{title}</title><desc>{}</desc>\
         <text x=\"{LEFT}\" y=\"18\" class=\"chart-title\" font-size=\"14\" font-weight=\"600\">{title}</text>",
        desc.join("; ")
    )
}

fn close(mut out: String) -> Svg {
    out.push_str("</svg>");
    Svg(out)
}

fn no_data(title: &str) -> Svg {
    let title = escape(title);
    Svg(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} 80\" class=\"chart\" \
         role=\"img\" aria-label=\"{title}: no data\"><title>{title}</title>\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"600\">{title}</text>\
         <text x=\"{LEFT}\" y=\"50\" font-size=\"13\" fill=\"#666\">No data for this period yet.</text></svg>"
    ))
}

fn draw_bars(out: &mut String, frame: &Frame, data: &[(String, f64)], values: &[f64], unit: &str) {
    let n = values.len();
    let show_values = n <= 24;
    for (i, ((label, _), v)) in data.iter().zip(values).enumerate() {
        let (x, w) = frame.band(i, n);
        let y = frame.y(*v);
        let h = frame.base() - y;
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{BAR}\">\
             <title>{}: {} {}</title></rect>",
            escape(label),
            number(*v),
            escape(unit)
        );
        if show_values {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#333\">{}</text>",
                x + w / 2.0,
                y - 3.0,
                number(*v)
            );
        }
    }
}

fn polyline(out: &mut String, xy: &[(f64, f64)], color: &str) {
    let points: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
        points.join(" ")
    );
}

/// The plot area and its value scale (0 up to a round top).
struct Frame {
    right: f64,
    top_value: f64,
    step: f64,
}

impl Frame {
    fn new(values: &[f64], right: f64) -> Frame {
        let max = values.iter().copied().fold(0.0, f64::max);
        let step = nice_step(max / 4.0);
        let top_value = ((max / step).ceil() * step).max(step);
        Frame {
            right,
            top_value,
            step,
        }
    }

    fn base(&self) -> f64 {
        HEIGHT - BOTTOM
    }

    fn plot_width(&self) -> f64 {
        WIDTH - LEFT - self.right
    }

    fn y(&self, v: f64) -> f64 {
        self.base() - v / self.top_value * (self.base() - TOP)
    }

    fn share_y(&self, share: f64) -> f64 {
        self.base() - share.clamp(0.0, 1.0) * (self.base() - TOP)
    }

    /// The x and width of the i-th of n bars.
    fn band(&self, i: usize, n: usize) -> (f64, f64) {
        let slot = self.plot_width() / n as f64;
        (LEFT + slot * i as f64 + slot * 0.15, slot * 0.7)
    }

    fn center(&self, i: usize, n: usize) -> f64 {
        let slot = self.plot_width() / n as f64;
        LEFT + slot * (i as f64 + 0.5)
    }

    /// Grid lines, value ticks and the unit.
    fn axes(&self, out: &mut String, unit: &str) {
        let ticks = (self.top_value / self.step).round() as usize;
        for k in 0..=ticks {
            let v = self.step * k as f64;
            let y = self.y(v);
            let _ = write!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e3e3\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">{}</text>",
                WIDTH - self.right,
                LEFT - 6.0,
                y + 4.0,
                tick(v, self.step)
            );
        }
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#999\"/>\
             <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">{}</text>",
            self.base(),
            (TOP + self.base()) / 2.0,
            escape(unit)
        );
    }

    /// The cumulative-share axis on the right, 0 to 100 %, with the 80 % line.
    fn share_axis(&self, out: &mut String) {
        let x = WIDTH - self.right;
        for pct in [0, 20, 40, 60, 80, 100] {
            let y = self.share_y(f64::from(pct) / 100.0);
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{LINE}\">{pct}%</text>",
                x + 6.0,
                y + 4.0
            );
        }
        let y80 = self.share_y(0.8);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{x:.1}\" y1=\"{y80:.1}\" y2=\"{y80:.1}\" stroke=\"{LINE}\" \
             stroke-dasharray=\"4 3\" stroke-opacity=\"0.6\"/>\
             <line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"{LINE}\"/>",
            self.base()
        );
    }

    /// A label under each slot: upright when the slots are wide, else slanted (and only under
    /// every k-th slot when they are too narrow for each to have one).
    fn x_labels(&self, out: &mut String, data: &[(String, f64)]) {
        let n = data.len();
        let slot = self.plot_width() / n as f64;
        let y = self.base() + 14.0;
        let (every, chars, turn) = if slot >= UPRIGHT_SLOT {
            (1, (slot / CHAR_WIDTH) as usize, "")
        } else {
            let every = (SLANTED_SLOT / slot).ceil() as usize;
            (every, LABEL_CHARS, " rotate(-45)")
        };
        let anchor = if turn.is_empty() { "middle" } else { "end" };
        for (i, (label, _)) in data.iter().enumerate().step_by(every) {
            let x = self.center(i, n);
            let _ = write!(
                out,
                "<text transform=\"translate({x:.1} {y:.1}){turn}\" text-anchor=\"{anchor}\" \
                 font-size=\"11\" fill=\"#333\">{}</text>",
                escape(&shorten(label, chars))
            );
        }
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
            WIDTH - self.right,
            self.base(),
            self.base()
        );
    }
}

fn shorten(label: &str, chars: usize) -> String {
    if label.chars().count() <= chars {
        return label.to_string();
    }
    let mut short: String = label.chars().take(chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// A round step (1, 2 or 5 times a power of ten) at least `raw`; 1 for nothing to scale.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(l, v)| (l.to_string(), *v)).collect()
    }

    /// The heights of the chart's bars, in order.
    fn bar_heights(svg: &Svg) -> Vec<f64> {
        svg.0
            .split("<rect ")
            .skip(1)
            .map(|r| {
                let h = r.split("height=\"").nth(1).expect("height");
                h[..h.find('"').expect("end")].parse().expect("number")
            })
            .collect()
    }

    #[test]
    fn bars_are_proportional_to_their_values() {
        let svg = bar_chart(
            "MTTA",
            "minutes",
            &data(&[("a", 10.0), ("b", 20.0), ("c", 5.0)]),
        );
        let h = bar_heights(&svg);
        assert_eq!(h.len(), 3);
        assert!((h[1] / h[0] - 2.0).abs() < 0.02, "{h:?}");
        assert!((h[0] / h[2] - 2.0).abs() < 0.02, "{h:?}");
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let evil = "<script>alert('x')</script>&\"";
        for svg in [
            bar_chart(evil, evil, &data(&[(evil, 1.0)])),
            line_chart(evil, evil, &data(&[(evil, 1.0), ("b", 2.0)])),
            pareto_chart(evil, evil, &data(&[(evil, 3.0)]), 4.0),
            bar_chart(evil, "", &[]),
        ] {
            let s = svg.0;
            assert!(!s.contains("<script"), "{s}");
            assert!(!s.contains("'x'"), "{s}");
            assert!(s.contains("&lt;script&gt;"), "{s}");
        }
    }

    #[test]
    fn empty_data_says_so_instead_of_drawing_an_empty_frame() {
        for svg in [
            bar_chart("Open SEVs", "SEVs", &[]),
            line_chart("Tickets", "tickets", &[]),
            pareto_chart("Pareto", "tickets", &[], 0.0),
        ] {
            assert!(svg.0.contains("No data"), "{svg}");
            assert!(svg.0.contains("aria-label"), "{svg}");
        }
    }

    #[test]
    fn nothing_that_is_not_a_number_reaches_the_svg() {
        let weird = data(&[
            ("a", f64::NAN),
            ("b", f64::INFINITY),
            ("c", -3.0),
            ("d", 0.0),
        ]);
        let zeros = data(&[("a", 0.0), ("b", 0.0)]);
        for svg in [
            bar_chart("t", "u", &weird),
            line_chart("t", "u", &weird),
            pareto_chart("t", "u", &weird, f64::NAN),
            bar_chart("t", "u", &zeros),
            pareto_chart("t", "u", &zeros, 0.0),
        ] {
            let s = svg.0.to_lowercase();
            assert!(!s.contains("nan") && !s.contains("inf"), "{s}");
        }
    }

    #[test]
    fn the_pareto_line_climbs_to_the_share_of_the_total_the_bars_cover() {
        let svg = pareto_chart("p", "tickets", &data(&[("a", 50.0), ("b", 30.0)]), 100.0);
        let s = svg.0;
        let points = s.split("<polyline points=\"").nth(1).expect("line");
        let points: Vec<f64> = points[..points.find('"').expect("end")]
            .split(' ')
            .map(|p| p.split(',').nth(1).expect("y").parse().expect("number"))
            .collect();
        let frame = Frame::new(&[50.0, 30.0], RIGHT_AXIS);
        assert!((points[0] - frame.share_y(0.5)).abs() < 0.1, "{points:?}");
        assert!((points[1] - frame.share_y(0.8)).abs() < 0.1, "{points:?}");
        assert!(s.contains("100%") && s.contains("role=\"img\""));
    }

    #[test]
    fn small_values_keep_their_significant_digits() {
        assert_eq!(number(0.067), "0.067");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(2.25), "2.2");
        assert_eq!(number(250.4), "250");
        assert_eq!(
            (tick(0.04, 0.02), tick(0.5, 0.5), tick(20.0, 10.0)),
            ("0.04".into(), "0.5".into(), "20".into())
        );
        let svg = bar_chart("t", "u", &data(&[("a", 0.067)]));
        assert!(
            svg.0.contains(">0.08<") && !svg.0.contains(">0.0<"),
            "{svg}"
        );
    }

    #[test]
    fn value_axes_use_round_steps() {
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
        assert_eq!(nice_step(3.2), 5.0);
        assert_eq!(nice_step(17.0), 20.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(250.0), 500.0);
    }

    #[test]
    fn long_labels_are_shortened_but_kept_whole_in_the_tooltip() {
        let long = "card declined at checkout abroad";
        let many: Vec<(String, f64)> = (0..10).map(|i| (format!("{long} {i}"), 1.0)).collect();
        let svg = bar_chart("t", "u", &many);
        assert!(svg.0.contains(&format!("<title>{long} 0: 1 u</title>")));
        assert!(svg.0.contains(">card declined a…<"), "{svg}");
        let few = bar_chart("t", "u", &data(&[(long, 1.0), ("b", 2.0)]));
        assert!(
            few.0.contains(&format!(">{long}<")),
            "wide slots keep whole labels"
        );
    }

    #[test]
    fn crowded_axes_label_only_every_few_slots() {
        let points: Vec<(String, f64)> = (0..48).map(|i| (format!("h{i}"), 1.0)).collect();
        let svg = bar_chart("t", "u", &points);
        assert!(svg.0.contains(">h0<") && !svg.0.contains(">h1<") && svg.0.contains(">h2<"));
        assert_eq!(svg.0.matches("rotate(-45)").count(), 24, "every other slot");
    }
}
