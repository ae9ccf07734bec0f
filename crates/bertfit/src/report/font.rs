//! The charts' font: DejaVu Sans, compiled into the library (from the `dejavu` crate). Plotters lays
//! out SVG labels with it (its `ab_glyph` renderer) and resvg draws PNG text with it, so charts need
//! no font installed on the machine.

use std::sync::{Arc, OnceLock};

use plotters::style::{register_font, FontStyle};
use resvg::usvg::fontdb;

use crate::error::{Error, Result};

/// The family name charts ask for; SVG viewers draw it with their own sans-serif font.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the font with plotters once per process; every chart calls this before drawing.
pub(crate) fn ensure_registered() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::config("report", "the embedded chart font (DejaVu Sans) could not be loaded"))
    }
}

/// A font database holding only the embedded font, which also answers for `sans-serif`.
pub(crate) fn database() -> Arc<fontdb::Database> {
    static DB: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = fontdb::Database::new();
        db.load_font_source(fontdb::Source::Binary(Arc::new(dejavu::sans::regular())));
        db.load_font_source(fontdb::Source::Binary(Arc::new(dejavu::sans::bold())));
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    })
    .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_font_registers_and_answers_for_sans_serif() {
        super::ensure_registered().expect("DejaVu Sans parses");
        super::ensure_registered().expect("registering twice is fine");
        let db = super::database();
        assert_eq!(db.len(), 2);
        let query = resvg::usvg::fontdb::Query { families: &[resvg::usvg::fontdb::Family::SansSerif], ..Default::default() };
        assert!(db.query(&query).is_some());
    }
}
