//! The dependency direction inside `hookline-core` (see `src/lib.rs`): each capability folder is a
//! layer that may use only the layers before it. This reads the sources and fails on a `crate::`
//! path (in code, not in comments or test modules) that reaches a later layer.

use std::path::{Path, PathBuf};

/// The layers, first to last. A root file not named here (`lib.rs`) is the composition root and
/// may use everything.
const LAYERS: &[&[&str]] = &[
    &["domain", "ids", "error", "config", "crypto", "metrics"],
    &["store"],
    &["objects"],
    &["tenancy"],
    &["routing"],
    &["transform"],
    &["handshake"],
    &["catalog"],
    &["billing"],
    &["delivery"],
    &["thin"],
    &["ingest"],
    &["sources"],
    &["logs"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (doc links to later layers are allowed) and without its test
/// module (tests may build fixtures with a later layer's statements).
fn code(source: &str) -> String {
    let source = source.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `crate::…` path, including the items of `crate::{…}` groups.
fn crate_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // The group's top-level items.
            let (mut depth, mut item, mut end) = (0, String::new(), group.len());
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.push(first_segment(&item));
            rest = &group[end..];
        } else {
            found.push(first_segment(after));
            rest = after;
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

#[test]
fn no_module_of_hookline_core_uses_a_later_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let own = first.trim_end_matches(".rs");
        let Some(own_layer) = layer_of(own) else {
            continue; // lib.rs, the composition root
        };
        let source = std::fs::read_to_string(file).unwrap();
        for module in crate_modules(&code(&source)) {
            if let Some(layer) = layer_of(&module)
                && layer > own_layer
            {
                violations.push(format!("{} uses crate::{module}", relative.display()));
            }
        }
    }
    assert!(files.len() > 40, "read {} files", files.len());
    violations.sort();
    violations.dedup();
    assert!(violations.is_empty(), "later layers used:\n{}", violations.join("\n"));
}

#[test]
fn the_layer_check_sees_paths_and_groups() {
    let code = code(
        "use crate::{\n    Context,\n    store::db,\n    ingest::{a, b},\n};\n// crate::logs in a comment\nlet x = crate::delivery::f();",
    );
    assert_eq!(crate_modules(&code), ["Context", "store", "ingest", "delivery"]);
}
