//! Serves the built dashboard (a client-side Leptos app) from a directory: files by path, and
//! `index.html` for any other non-API path so the app's own router handles it.

use std::path::{Component, Path, PathBuf};

use actix_web::{HttpRequest, HttpResponse, web};

#[derive(Clone)]
pub struct DashboardDir(pub PathBuf);

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Maps a URL path onto a file below `root`, refusing anything but plain path segments.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let candidate = root.join(relative);
    candidate.is_file().then_some(candidate)
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hookline</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2937}
code{background:#f3f4f6;padding:.1rem .3rem;border-radius:.25rem}</style></head>
<body><h1>Hookline is running</h1>
<p>The API is up. The dashboard has not been built in this checkout: run <code>./scripts/run.sh</code>
(it builds the dashboard), or build it alone with <code>bash -c 'source scripts/lib.sh; build_dashboard'</code>.</p>
<p>API reference: <a href="/api/docs">/api/docs</a> · document: <a href="/api/openapi.json">/api/openapi.json</a></p>
</body></html>
"#;

pub async fn serve(req: HttpRequest, dir: web::Data<DashboardDir>) -> HttpResponse {
    let root = &dir.0;
    let file = resolve(root, req.path()).or_else(|| resolve(root, "index.html"));
    match file {
        Some(file) => match std::fs::read(&file) {
            Ok(bytes) => {
                let mut response = HttpResponse::Ok();
                response.content_type(content_type(&file));
                // index.html must be re-fetched so a new build is picked up; hashed assets may be cached.
                if file.file_name().is_some_and(|n| n == "index.html") {
                    response.insert_header(("Cache-Control", "no-cache"));
                }
                response.body(bytes)
            }
            Err(_) => HttpResponse::InternalServerError().finish(),
        },
        None => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(NOT_BUILT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_dashboard_are_refused() {
        let dir = std::env::temp_dir();
        assert!(resolve(&dir, "/../etc/passwd").is_none());
        assert!(resolve(&dir, "/a/../../etc/passwd").is_none());
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
    }
}
