//! The shape of the code, as docs/architecture.md draws it: arrows between
//! the top-level modules point one way, the domain knows nothing of HTTP
//! servers, SQL lives in `store`, HTTP clients in `google` and `notify`, and
//! functions stay short enough to read at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest function allowed in `src/`, in lines.
const MAX_FN_LINES: usize = 80;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its text (unit-test modules cut off).
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("src is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
                out.push((path, code));
            }
        }
    }
    assert!(out.len() > 10, "found the sources in {}", dir.display());
    out
}

/// The top-level module a file belongs to (`src/passport/token.rs` → `passport`).
fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("non-empty path");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Lines that are code, not comments.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

/// `a -> {b, …}`: which top-level modules each one names as `crate::b`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(&src());
    let tops: BTreeSet<String> = files.iter().map(|(p, _)| top_module(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        let from = top_module(path);
        for line in code_lines(text) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let mut targets = vec![name];
                if let Some(group) = rest.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or("");
                    targets.extend(
                        inner
                            .split(',')
                            .map(|s| s.trim().split("::").next().unwrap_or("").to_string()),
                    );
                }
                for to in targets {
                    if tops.contains(&to) && to != from {
                        graph.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_module_cycle_among_the_top_level_modules() {
    let graph = module_graph();
    let cycles: Vec<String> = graph
        .iter()
        .flat_map(|(a, bs)| bs.iter().map(move |b| (a, b)))
        .filter(|(a, b)| reaches(&graph, b, a))
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    assert!(cycles.is_empty(), "arrows on a cycle: {cycles:?}");
    // The layering itself: the domain never points back up.
    for low in ["passport", "store", "google", "notify", "crypto", "scopes"] {
        for high in ["http", "startup", "cli", "demo"] {
            assert!(!reaches(&graph, low, high), "{low} reaches {high}");
        }
    }
}

#[test]
fn the_domain_knows_nothing_of_http_servers() {
    for (path, text) in sources(&src().join("passport")) {
        for line in code_lines(&text) {
            for banned in ["crate::http", "crate::startup", "axum", "tower"] {
                assert!(
                    !line.contains(banned),
                    "{} uses {banned}: {line}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn sql_lives_in_store_and_http_clients_in_google_and_notify() {
    for (path, text) in sources(&src()) {
        let top = top_module(&path);
        for line in code_lines(&text) {
            if top != "store" {
                for sql in ["sqlx::query", "query!(", "query_as!(", "query_scalar!("] {
                    assert!(!line.contains(sql), "SQL in {}: {line}", path.display());
                }
            }
            if !["google", "notify"].contains(&top.as_str()) {
                assert!(
                    !line.contains("reqwest"),
                    "an HTTP client in {}: {line}",
                    path.display()
                );
            }
        }
    }
}

/// Length of every `fn` with a body: from its line to the closing brace at
/// the same indentation.
fn function_lengths(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let head = ["pub(crate) ", "pub(super) ", "pub ", "const ", "async "]
            .iter()
            .fold(trimmed, |s, p| s.strip_prefix(p).unwrap_or(s));
        let head = head.strip_prefix("async ").unwrap_or(head);
        let Some(sig) = head.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(len) = lines[i + 1..].iter().position(|l| l.starts_with(&close)) {
            let name: String = sig
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((len + 2, format!("{name} (line {})", i + 1)));
        }
    }
    out
}

#[test]
fn no_function_in_src_is_longer_than_the_limit() {
    let mut long = Vec::new();
    for (path, text) in sources(&src()) {
        for (len, name) in function_lengths(&text) {
            if len > MAX_FN_LINES {
                long.push(format!("{}: {name}: {len} lines", path.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:#?}"
    );
}

#[test]
fn the_length_check_measures_what_it_claims() {
    let text =
        "fn short() {\n    1;\n}\n\n    pub async fn nested(x: u8) -> u8 {\n        x\n    }\n";
    assert_eq!(
        function_lengths(text),
        vec![(3, "short (line 1)".into()), (3, "nested (line 5)".into())]
    );
}
