//! The web UI's files, embedded in the binary (no CDN, works offline):
//! `GET /` (for a browser: a request whose `Accept` names `text/html`),
//! `GET /app` and `GET /static/<file>`.
//!
//! To add an asset, put the file under `master/src/netapi/ui/` and add a
//! row to [`ASSETS`].

/// `(path under /static/, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("ui/style.css"),
    ),
];

/// The page served at `/` and `/app`.
pub(crate) fn index() -> (&'static str, &'static [u8]) {
    asset("index.html").unwrap_or(("text/plain", b"web UI missing"))
}

/// The asset at `/static/<path>`, if there is one.
pub(crate) fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_embedded() {
        assert!(index().0.starts_with("text/html"));
        assert!(asset("app.js").is_some());
        assert!(asset("../Cargo.toml").is_none());
    }
}
