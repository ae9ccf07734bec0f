//! Charts as plain descriptions (line plots with bars and reference lines, grouped bar charts,
//! heatmaps) and their drawing with plotters as SVG text for the page; PNG files for slides are that
//! SVG rendered by resvg.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{self, FAMILY};
use super::series::Points;
use crate::error::{Error, Result};

/// Colours of series, in order (the "tab10" palette).
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Grey of reference lines.
pub(crate) const GREY: RGBColor = RGBColor(120, 120, 120);

/// A data series drawn as a line.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub name: String,
    pub points: Points,
    pub color: RGBColor,
    pub dashed: bool,
    /// Dots at the data points (for sparse series).
    pub markers: bool,
    /// Stroke width in pixels.
    pub width: f64,
}

impl Line {
    /// A solid line of width 2, with markers when it has few points.
    pub fn new(name: impl Into<String>, points: Points, color: RGBColor) -> Line {
        let points: Points = points.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        let markers = points.len() <= 40;
        Line { name: name.into(), points, color, dashed: false, markers, width: 2.0 }
    }
}

/// A dashed straight line in data coordinates (a diagonal, a cut, a base rate).
#[derive(Debug, Clone)]
pub(crate) struct RefLine {
    pub from: (f64, f64),
    pub to: (f64, f64),
    pub label: Option<String>,
    pub color: RGBColor,
}

/// A highlighted point with a note.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub at: (f64, f64),
    pub label: String,
}

/// Where the legend goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Corner {
    UpperRight,
    LowerRight,
}

/// A plot on numeric axes: lines, histogram bars `(from, to, height)`, reference lines, marks.
#[derive(Debug, Clone)]
pub(crate) struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    pub bars: Vec<(f64, f64, f64)>,
    pub refs: Vec<RefLine>,
    pub marks: Vec<Mark>,
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub legend: Corner,
}

impl Plot {
    /// An empty plot with titles.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Plot {
        Plot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            lines: Vec::new(),
            bars: Vec::new(),
            refs: Vec::new(),
            marks: Vec::new(),
            x_range: None,
            y_range: None,
            legend: Corner::UpperRight,
        }
    }
}

/// Grouped bars over named categories.
#[derive(Debug, Clone)]
pub(crate) struct Bars {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// `(group name, value per category)`.
    pub groups: Vec<(String, Vec<f64>)>,
    /// Values are shares, shown as percentages.
    pub percent: bool,
}

/// A matrix of cells coloured by intensity (0..=1), with a text in each.
#[derive(Debug, Clone)]
pub(crate) struct Heatmap {
    pub title: String,
    pub labels: Vec<String>,
    pub intensity: Vec<Vec<f64>>,
    pub cells: Vec<Vec<String>>,
    /// Axis names: (columns, rows), e.g. ("predicted", "gold").
    pub axes: (&'static str, &'static str),
}

/// Any chart.
#[derive(Debug, Clone)]
pub(crate) enum Chart {
    Plot(Plot),
    Bars(Bars),
    Heatmap(Heatmap),
}

type Drawn = std::result::Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Chart {
    /// Size in SVG pixels (PNGs are drawn at twice this).
    pub fn size(&self) -> (u32, u32) {
        match self {
            Chart::Plot(_) | Chart::Bars(_) => (640, 380),
            Chart::Heatmap(h) => {
                let side = (h.labels.len() as u32 * 48).clamp(300, 620);
                (side + 170, side + 140)
            }
        }
    }

    /// The chart's title.
    pub fn title(&self) -> &str {
        match self {
            Chart::Plot(p) => &p.title,
            Chart::Bars(b) => &b.title,
            Chart::Heatmap(h) => &h.title,
        }
    }

    /// The chart as an `<svg>` element.
    pub fn to_svg(&self) -> Result<String> {
        font::ensure_registered()?;
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, self.size()).into_drawing_area();
            self.draw(&root)
                .and_then(|_| root.present().map_err(err))
                .map_err(|m| Error::io("cannot draw chart", self.title(), std::io::Error::other(m)))?;
        }
        Ok(buf)
    }

    /// The chart as a PNG file at twice the SVG size: the SVG drawn by resvg with the embedded font,
    /// so the file looks like the page.
    pub fn to_png(&self, path: &Path) -> Result<()> {
        let fail = |msg: String| Error::io("cannot write chart", path, std::io::Error::other(msg));
        let svg = self.to_svg()?;
        let mut opt = resvg::usvg::Options { font_family: "DejaVu Sans".into(), ..Default::default() };
        opt.fontdb = font::database();
        let tree = resvg::usvg::Tree::from_str(&svg, &opt).map_err(|e| fail(format!("cannot read the chart's SVG: {e}")))?;
        let (w, h) = self.size();
        let mut pixmap = resvg::tiny_skia::Pixmap::new(w * 2, h * 2).ok_or_else(|| fail("empty image".into()))?;
        pixmap.fill(resvg::tiny_skia::Color::WHITE);
        resvg::render(&tree, resvg::tiny_skia::Transform::from_scale(2.0, 2.0), &mut pixmap.as_mut());
        let png = pixmap.encode_png().map_err(|e| fail(e.to_string()))?;
        std::fs::write(path, png).map_err(|e| Error::io("cannot write", path, e))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        match self {
            Chart::Plot(p) => draw_plot(p, root),
            Chart::Bars(b) => draw_bars(b, root),
            Chart::Heatmap(h) => draw_heatmap(h, root),
        }
    }
}

/// A length in whole pixels.
fn px(v: f64) -> i32 {
    v.round() as i32
}

fn text(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&RGBColor(40, 40, 40))
}

fn title_style() -> TextStyle<'static> {
    (FAMILY, 17.0, FontStyle::Bold).into_font().color(&BLACK)
}

/// Formats tick values of a range: scientific notation for tiny values, else enough decimals for
/// the span.
fn tick_format(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let span = (hi - lo).abs().max(f64::MIN_POSITIVE);
    let tiny = lo.abs().max(hi.abs()) < 1e-2 && hi != lo;
    let decimals = (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize;
    move |v: &f64| {
        if tiny && *v == 0.0 {
            "0".to_string()
        } else if tiny {
            format!("{v:.1e}")
        } else {
            format!("{v:.decimals$}")
        }
    }
}

/// Finite `(min, max)` of values, padded by `pad` of the span (or ±0.5 for a single value).
fn bounds(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let d = if lo.abs() > 1e-9 { lo.abs() * 0.1 } else { 0.5 };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * pad;
    (lo - d, hi + d)
}

/// The series legend in a white box at `pos`.
fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, pos: SeriesLabelPosition) -> Drawn
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(pos)
        .label_font(text(12.0))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .margin(px(8.0))
        .draw()
        .map_err(err)
}

fn draw_plot<DB: DrawingBackend>(p: &Plot, root: &DrawingArea<DB, Shift>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let xs = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.0)).chain(p.bars.iter().flat_map(|b| [b.0, b.1]));
    let (x0, x1) = p.x_range.unwrap_or_else(|| bounds(xs.chain(p.marks.iter().map(|m| m.at.0)), 0.02));
    let ys = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.1)).chain(p.bars.iter().flat_map(|b| [0.0, b.2]));
    let (y0, y1) = p.y_range.unwrap_or_else(|| bounds(ys.chain(p.marks.iter().map(|m| m.at.1)), 0.06));
    let mut chart = ChartBuilder::on(root)
        .caption(&p.title, title_style())
        .margin(px(12.0))
        .x_label_area_size(px(46.0))
        .y_label_area_size(px(70.0))
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let (xf, yf) = (tick_format(x0, x1), tick_format(y0, y1));
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .label_style(text(12.0))
        .axis_desc_style(text(13.0))
        .bold_line_style(RGBColor(220, 220, 220))
        .light_line_style(RGBColor(242, 242, 242))
        .x_labels(8)
        .y_labels(7)
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .draw()
        .map_err(err)?;
    let mut labelled = false;
    if !p.bars.is_empty() {
        let fill = PALETTE[0].mix(0.75).filled();
        chart.draw_series(p.bars.iter().map(|&(a, b, h)| Rectangle::new([(a, 0.0), (b, h)], fill))).map_err(err)?;
        let edge = WHITE.stroke_width(px(1.0).max(1) as u32);
        chart.draw_series(p.bars.iter().map(|&(a, b, h)| Rectangle::new([(a, 0.0), (b, h)], edge))).map_err(err)?;
    }
    for r in &p.refs {
        let style = r.color.stroke_width(px(1.5) as u32);
        let anno = chart
            .draw_series(DashedLineSeries::new(vec![r.from, r.to], px(6.0), px(4.0), style))
            .map_err(err)?;
        if let Some(label) = &r.label {
            labelled = true;
            let w = px(22.0);
            anno.label(label.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + w, y)], style));
        }
    }
    for l in &p.lines {
        let style = l.color.stroke_width(px(l.width).max(1) as u32);
        // width 0: markers only (a scatter)
        let points = if l.width > 0.0 { l.points.clone() } else { Vec::new() };
        let anno = if l.dashed {
            chart.draw_series(DashedLineSeries::new(points, px(7.0), px(4.0), style)).map_err(err)?
        } else {
            chart.draw_series(LineSeries::new(points, style)).map_err(err)?
        };
        if !l.name.is_empty() {
            labelled = true;
            let w = px(22.0);
            anno.label(l.name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + w, y)], style));
        }
        if l.markers {
            let r = px(3.0);
            chart.draw_series(l.points.iter().map(|&q| Circle::new(q, r, l.color.filled()))).map_err(err)?;
        }
    }
    for m in &p.marks {
        let right_half = m.at.0 > (x0 + x1) / 2.0;
        let upper_half = m.at.1 > (y0 + y1) / 2.0;
        let (dx, h) = if right_half { (-px(11.0), HPos::Right) } else { (px(11.0), HPos::Left) };
        let dy = if upper_half { px(16.0) } else { -px(16.0) };
        let style = text(12.0).color(&BLACK).pos(Pos::new(h, VPos::Center));
        let ring = Circle::new((0, 0), px(7.0), BLACK.stroke_width(px(2.0) as u32));
        let note = Text::new(m.label.clone(), (dx, dy), style);
        chart.draw_series(std::iter::once(EmptyElement::at(m.at) + ring + note)).map_err(err)?;
    }
    if labelled {
        let pos = match p.legend {
            Corner::UpperRight => SeriesLabelPosition::UpperRight,
            Corner::LowerRight => SeriesLabelPosition::LowerRight,
        };
        legend(&mut chart, pos)?;
    }
    Ok(())
}

/// Shortens a label to `max` characters with an ellipsis.
pub(crate) fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Draws category names under the x axis at the given pixel centres: level when they fit, else
/// turned to read downwards.
fn category_labels<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, names: &[String], centres: &[(i32, i32)], slot: f64) -> Drawn
where
    DB::ErrorType: 'static,
{
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let level = (longest as f64) * 7.0 <= slot;
    for (name, &(x, y)) in names.iter().zip(centres) {
        if level {
            let style = text(12.0).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(name.clone(), (x, y + px(6.0)), style)).map_err(err)?;
        } else {
            let style = text(11.0).pos(Pos::new(HPos::Left, VPos::Center)).transform(FontTransform::Rotate90);
            root.draw(&Text::new(shorten(name, 14), (x, y + px(6.0)), style)).map_err(err)?;
        }
    }
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(b: &Bars, root: &DrawingArea<DB, Shift>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let n = b.categories.len().max(1) as f64;
    let top = b.groups.iter().flat_map(|g| g.1.iter().copied()).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let y1 = if top > 0.0 { top * 1.15 } else { 1.0 };
    let longest = b.categories.iter().map(|c| c.chars().count().min(14)).max().unwrap_or(1) as f64;
    let slot = (640.0 - 100.0) / n;
    let below = if longest * 7.0 <= slot { 30.0 } else { longest * 7.0 + 16.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(&b.title, title_style())
        .margin(px(12.0))
        .x_label_area_size(px(below))
        .y_label_area_size(px(70.0))
        .build_cartesian_2d(0.0..n, 0.0..y1)
        .map_err(err)?;
    let percent = b.percent;
    let decimals = if y1 <= 2.0 { 2 } else { 0 };
    let yf = move |v: &f64| if percent { format!("{:.0}%", v * 100.0) } else { format!("{v:.decimals$}") };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(&b.y_label)
        .label_style(text(12.0))
        .axis_desc_style(text(13.0))
        .bold_line_style(RGBColor(220, 220, 220))
        .light_line_style(RGBColor(242, 242, 242))
        .y_label_formatter(&yf)
        .draw()
        .map_err(err)?;
    let g = b.groups.len().max(1) as f64;
    let width = 0.8 / g;
    for (k, (name, values)) in b.groups.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let rects = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(i, &v)| {
            let left = i as f64 + 0.1 + k as f64 * width;
            Rectangle::new([(left, 0.0), (left + width * 0.92, v)], color.filled())
        });
        let anno = chart.draw_series(rects).map_err(err)?;
        if b.groups.len() > 1 {
            let w = px(12.0);
            anno.label(name.as_str()).legend(move |(x, y)| Rectangle::new([(x, y - w / 2), (x + w, y + w / 2)], color.filled()));
        }
    }
    if b.groups.len() > 1 {
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    let centres: Vec<(i32, i32)> = (0..b.categories.len()).map(|i| chart.backend_coord(&(i as f64 + 0.5, 0.0))).collect();
    category_labels(root, &b.categories, &centres, slot)
}

/// White-to-blue shade of an intensity in 0..=1.
fn shade(v: f64) -> RGBColor {
    let t = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
    let mix = |lo: f64, hi: f64| (lo + (hi - lo) * t).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}

fn draw_heatmap<DB: DrawingBackend>(h: &Heatmap, root: &DrawingArea<DB, Shift>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let n = h.labels.len();
    if n == 0 {
        return Ok(());
    }
    let nf = n as f64;
    let names: Vec<String> = h.labels.iter().map(|l| shorten(l, 14)).collect();
    let longest = names.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
    let (w, _) = Chart::Heatmap(h.clone()).size();
    let slot = (w as f64 - 170.0) / nf;
    let below = if longest * 7.0 <= slot { 50.0 } else { longest * 7.0 + 40.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(&h.title, title_style())
        .margin(px(12.0))
        .margin_right(px(40.0))
        .x_label_area_size(px(below))
        .y_label_area_size(px((longest * 7.0 + 40.0).clamp(60.0, 140.0)))
        .build_cartesian_2d(0.0..nf, 0.0..nf)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc(h.axes.0)
        .y_desc(h.axes.1)
        .axis_desc_style(text(13.0))
        .draw()
        .map_err(err)?;
    // Row 0 (the first gold class) at the top.
    let cell = |i: usize, j: usize| [(j as f64, nf - i as f64), (j as f64 + 1.0, nf - i as f64 - 1.0)];
    for (i, row) in h.intensity.iter().enumerate().take(n) {
        chart
            .draw_series(row.iter().enumerate().take(n).map(|(j, &v)| Rectangle::new(cell(i, j), shade(v).filled())))
            .map_err(err)?;
    }
    let size = if n <= 6 { 14.0 } else if n <= 12 { 11.0 } else { 0.0 };
    if size > 0.0 {
        for (i, row) in h.cells.iter().enumerate().take(n) {
            for (j, label) in row.iter().enumerate().take(n) {
                let dark = h.intensity.get(i).and_then(|r| r.get(j)).is_some_and(|&v| v > 0.55);
                let color = if dark { WHITE } else { RGBColor(30, 30, 30) };
                let style = text(size).color(&color).pos(Pos::new(HPos::Center, VPos::Center));
                let at = chart.backend_coord(&(j as f64 + 0.5, nf - i as f64 - 0.5));
                root.draw(&Text::new(label.clone(), at, style)).map_err(err)?;
            }
        }
    }
    let edge = RGBColor(180, 180, 180).stroke_width(1);
    chart.draw_series(std::iter::once(Rectangle::new([(0.0, 0.0), (nf, nf)], edge))).map_err(err)?;
    for (i, name) in names.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, nf - i as f64 - 0.5));
        let style = text(12.0).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(name.clone(), (x - px(6.0), y), style)).map_err(err)?;
    }
    let centres: Vec<(i32, i32)> = (0..n).map(|j| chart.backend_coord(&(j as f64 + 0.5, 0.0))).collect();
    category_labels(root, &names, &centres, slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_bounds_and_shortening() {
        assert_eq!(tick_format(0.0, 1.0)(&0.25), "0.2");
        assert_eq!(tick_format(0.0, 0.2)(&0.05), "0.05");
        assert_eq!(tick_format(0.0, 5e-5)(&2e-5), "2.0e-5");
        assert_eq!(tick_format(0.0, 5e-5)(&0.0), "0");
        assert_eq!(tick_format(0.0, 500.0)(&200.0), "200");
        assert_eq!(bounds([2.0, 2.0].into_iter(), 0.1), (1.8, 2.2));
        assert_eq!(bounds(std::iter::empty(), 0.1), (0.0, 1.0));
        assert_eq!(bounds([0.0, 10.0, f64::NAN].into_iter(), 0.1), (-1.0, 11.0));
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }

    #[test]
    fn every_kind_renders_to_svg() {
        let mut p = Plot::new("loss", "epoch", "loss");
        p.lines.push(Line::new("train", vec![(0.0, 1.0), (1.0, 0.5)], PALETTE[0]));
        p.marks.push(Mark { at: (1.0, 0.5), label: "best".into() });
        p.refs.push(RefLine { from: (0.0, 0.0), to: (1.0, 1.0), label: Some("chance".into()), color: GREY });
        let bars = Bars { title: "labels".into(), y_label: "share".into(), categories: vec!["a".into(), "b<".into()], groups: vec![("train".into(), vec![0.4, 0.6])], percent: true };
        let heat = Heatmap { title: "cm".into(), labels: vec!["x".into(), "y".into()], intensity: vec![vec![1.0, 0.0], vec![0.5, 0.5]], cells: vec![vec!["3".into(), "0".into()], vec!["1".into(), "1".into()]], axes: ("predicted", "gold") };
        for c in [Chart::Plot(p), Chart::Bars(bars), Chart::Heatmap(heat)] {
            let svg = c.to_svg().expect("draws");
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        }
    }
}
