//! The HTML page: escaping, tables whose cells escape by default, figures (inline SVG, with a PNG
//! copy on request), sections, and one self-contained document with inline CSS and no scripts.

use std::path::{Path, PathBuf};

use super::chart::Chart;
use crate::error::{Error, Result};

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
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

/// A table cell: text (escaped when rendered), a right-aligned number, or markup built here.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Text(String),
    Num(String),
    Html(String),
}

impl Cell {
    /// Plain text.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }
    /// A number with `digits` decimals; a dash when absent or not finite.
    pub fn num(v: Option<f64>, digits: usize) -> Cell {
        Cell::Num(v.filter(|x| x.is_finite()).map_or_else(|| "–".to_string(), |x| format!("{x:.digits$}")))
    }
    /// An integer.
    pub fn int(v: impl std::fmt::Display) -> Cell {
        Cell::Num(v.to_string())
    }
    fn render(&self, tag: &str) -> String {
        match self {
            Cell::Text(s) => format!("<{tag}>{}</{tag}>", esc(s)),
            Cell::Num(s) => format!("<{tag} class=\"num\">{}</{tag}>", esc(s)),
            Cell::Html(s) => format!("<{tag}>{s}</{tag}>"),
        }
    }
}

/// A table with a header row; the first cell of each row is a row header.
pub(crate) fn table(headers: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in headers {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            out.push_str(&c.render(if i == 0 { "th" } else { "td" }));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// A two-column table of names and values.
pub(crate) fn key_values(rows: &[(String, Cell)]) -> String {
    let mut out = String::from("<table class=\"kv\">\n<tbody>\n");
    for (k, v) in rows {
        out.push_str(&format!("<tr><th>{}</th>{}</tr>\n", esc(k), v.render("td")));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// A paragraph of plain text, escaped.
pub(crate) fn note(text: &str) -> String {
    format!("<p class=\"note\">{}</p>\n", esc(text))
}

/// A smaller heading inside a section.
pub(crate) fn subheading(text: &str) -> String {
    format!("<h3>{}</h3>\n", esc(text))
}

/// Renders charts as inline figures and, when asked, as PNG files in one folder.
pub(crate) struct Figures {
    png_dir: Option<PathBuf>,
    /// PNG files written so far.
    pub written: Vec<PathBuf>,
}

impl Figures {
    /// Figures with PNG copies in `png_dir` (created) when given.
    pub fn new(png_dir: Option<&Path>) -> Result<Figures> {
        if let Some(dir) = png_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        Ok(Figures { png_dir: png_dir.map(Path::to_path_buf), written: Vec::new() })
    }

    /// A `<figure>` holding the chart's SVG and a plain-text caption; writes `<slug>.png` too.
    pub fn figure(&mut self, slug: &str, chart: &Chart, caption: &str) -> Result<String> {
        let svg = chart.to_svg()?;
        // Inline SVG needs no namespace, and the page must name no external address.
        let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
        let svg = svg.replacen("<svg ", &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(chart.title())), 1);
        if let Some(dir) = &self.png_dir {
            let path = dir.join(format!("{slug}.png"));
            chart.to_png(&path)?;
            self.written.push(path);
        }
        let caption = if caption.is_empty() { String::new() } else { format!("<figcaption>{}</figcaption>", esc(caption)) };
        Ok(format!("<figure class=\"chart\" id=\"fig-{slug}\">\n{svg}{caption}</figure>\n"))
    }
}

/// A titled part of the page.
pub(crate) struct Section {
    pub id: &'static str,
    pub title: String,
    pub body: String,
}

impl Section {
    /// A section from its anchor, title and body markup.
    pub fn new(id: &'static str, title: impl Into<String>, body: String) -> Section {
        Section { id, title: title.into(), body }
    }
}

/// Wraps figures in a responsive grid.
pub(crate) fn grid(figures: &[String]) -> String {
    format!("<div class=\"grid\">\n{}</div>\n", figures.concat())
}

const CSS: &str = "
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; color: #222; background: #f4f5f7; }
header { background: #1f2d3d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9d3df; }
nav { background: #fff; border-bottom: 1px solid #dde1e6; padding: 8px 32px; position: sticky; top: 0; z-index: 1; }
nav a { color: #1f5fa8; text-decoration: none; margin-right: 16px; font-size: 14px; white-space: nowrap; }
main { max-width: 1320px; margin: 0 auto; padding: 8px 24px 48px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; margin: 18px 0; padding: 6px 22px 18px; }
h2 { font-size: 19px; margin: 14px 0 10px; }
h3 { font-size: 15px; margin: 16px 0 6px; color: #333; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 14px; align-items: start; }
figure.chart { margin: 0; }
figure.chart svg { display: block; width: 100%; height: auto; max-width: 820px; }
figcaption { font-size: 13px; color: #555; margin: 4px 6px 0; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 14px; }
th, td { border-bottom: 1px solid #e3e6ea; padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { background: #f0f2f5; border-bottom: 2px solid #cfd5dc; }
tbody th { font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 16em; color: #444; }
td.text { max-width: 640px; overflow-wrap: anywhere; }
.tables { display: flex; flex-wrap: wrap; gap: 28px; }
p.note { color: #555; margin: 6px 0; }
.status { padding: 8px 12px; border-radius: 4px; background: #eef6ee; border: 1px solid #cfe3cf; }
.status.warn { background: #fff6e5; border-color: #f0d9a8; }
";

/// The whole document.
pub(crate) fn page(title: &str, subtitle: &str, sections: &[Section]) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n", esc(title)));
    out.push_str(&format!("<header>\n<h1>{}</h1>\n<p>{}</p>\n</header>\n<nav>\n", esc(title), esc(subtitle)));
    for s in sections {
        out.push_str(&format!("<a href=\"#{}\">{}</a>\n", s.id, esc(&s.title)));
    }
    out.push_str("</nav>\n<main>\n");
    for s in sections {
        out.push_str(&format!("<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n", s.id, esc(&s.title), s.body));
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// Writes `content` to `path` through a temporary file in the same folder and a rename, so a reader
/// never sees half a page.
pub(crate) fn write_atomic(path: &Path, content: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    }
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, content).map_err(|e| Error::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot rename into place", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("<script>alert(\"x\") & 'y'</script>"), "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;");
    }

    #[test]
    fn tables_escape_text_cells() {
        let t = table(&["a<b"], &[vec![Cell::text("<i>"), Cell::num(Some(0.5), 2), Cell::num(None, 2), Cell::Html("<b>ok</b>".into())]]);
        assert!(t.contains("<th>a&lt;b</th>") && t.contains("<th>&lt;i&gt;</th>"), "{t}");
        assert!(t.contains("<td class=\"num\">0.50</td>") && t.contains("–") && t.contains("<b>ok</b>"), "{t}");
    }

    #[test]
    fn atomic_write_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("report.html");
        write_atomic(&path, "one").expect("write");
        write_atomic(&path, "two").expect("overwrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two");
        assert!(!dir.path().join("report.html.tmp").exists());
    }
}
