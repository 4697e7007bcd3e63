//! Embeds the web UI's built assets (`web/dist/`, committed) in the
//! binary, so that `evault up` serves the UI with no Node.js at run time:
//! generates `ui_assets.rs`, a table of (path, content type, bytes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let dist = manifest_dir.join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files)?;
    }
    files.sort();
    let mut table = String::from("&[\n");
    for (path, file) in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        writeln!(
            table,
            "    ({path:?}, {:?}, include_bytes!({:?})),",
            content_type(path),
            file.display().to_string()
        )?;
    }
    table.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("ui_assets.rs");
    std::fs::write(out, table)?;
    Ok(())
}

/// Every file below `dir`, as (`/`-rooted URL path, file path).
fn collect(
    root: &Path,
    dir: &Path,
    files: &mut Vec<(String, PathBuf)>,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let relative = path.strip_prefix(root)?;
            let url: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push((format!("/{}", url.join("/")), path));
        }
    }
    Ok(())
}

/// The content type of a built asset, by extension; what a Vite build
/// makes, and nothing a browser would sniff into something else.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}
