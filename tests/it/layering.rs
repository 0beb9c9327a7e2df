//! The crates' shape, checked from their sources (the product's `src/` and
//! the test kit's `crates/testkit/src/`): the top-level modules follow the
//! dependency order their `lib.rs` documents under `# Layout`, no two
//! modules import each other (directly or round a longer circle), and no
//! module grows past about 400 lines.
//!
//! Every `crate::`, `super::` and `self::` path in code (comments and
//! strings stripped) is resolved to the deepest module *file* it names; an
//! edge A → B means A's file names something in B's. A facade that only
//! declares and re-exports its children imports them, so a child that
//! reached back into its facade would close a circle: children import
//! their siblings instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be.
const MAX_LINES: usize = 420;

/// The product's sources.
fn product() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The test kit's sources.
fn testkit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/testkit/src")
}

/// Returns true if and only if `stem` names a test-only module (declared
/// under `#[cfg(test)]`: `tests.rs`, `*_tests.rs`), which is not part of
/// its parent's dependencies.
fn test_only(stem: &str) -> bool {
    stem == "tests" || stem.ends_with("_tests")
}

/// Every library source file under `src`, by module path (`[]` is the
/// crate root); binaries (`main.rs`, `bin/`) are crates of their own.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if prefix.is_empty() && name == "bin" {
                    continue;
                }
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                if prefix.is_empty() && stem == "main" {
                    continue; // the binary: its own crate
                }
                let mut p = prefix.to_vec();
                if !(prefix.is_empty() && stem == "lib") {
                    p.push(stem);
                }
                out.insert(p, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// `source` with comments, strings and char literals blanked out.
fn code_only(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i + 1..].starts_with(b"\"") || b[i + 1..].starts_with(b"#")) {
            // Raw strings: r"..." and r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let end = format!("\"{}", "#".repeat(hashes));
                let rest = &source[j + 1..];
                i = j + 1 + rest.find(&end).map_or(rest.len(), |k| k + end.len());
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x', '\n', '\''), not a lifetime.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every path in `code` that starts at `crate`, `super` or `self`, with
/// `use` groups (`use a::{b, c::d}`) expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !ident(chars[i - 1]) && chars[i - 1] != ':';
        if starts_word && ident(chars[i]) {
            let mut j = i;
            while j < chars.len() && ident(chars[j]) {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            if matches!(word.as_str(), "crate" | "super" | "self") {
                let (found, end) = expand(&chars, i);
                out.extend(found);
                i = end.max(j);
                continue;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    // A lone `crate`/`super`/`self` is a visibility (`pub(super)`), not a path.
    out.retain(|p| p.len() > 1);
    out
}

/// Expands the path (or `use` tree) starting at `chars[start]`.
fn expand(chars: &[char], start: usize) -> (Vec<Vec<String>>, usize) {
    fn tree(chars: &[char], mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let skip_ws = |mut i: usize| {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            i
        };
        let mut path = prefix;
        loop {
            i = skip_ws(i);
            if i < chars.len() && chars[i] == '{' {
                let mut all = Vec::new();
                i += 1;
                loop {
                    i = skip_ws(i);
                    if i >= chars.len() || chars[i] == '}' {
                        return (all, i + 1);
                    }
                    let (found, next) = tree(chars, i, path.clone());
                    all.extend(found);
                    i = skip_ws(next);
                    if i < chars.len() && chars[i] == ',' {
                        i += 1;
                    }
                }
            }
            let s = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            if s == i {
                return (vec![path], i);
            }
            path.push(chars[s..i].iter().collect());
            let k = skip_ws(i);
            if chars[k..].starts_with(&[':', ':']) {
                i = k + 2;
            } else {
                // `as x` and the rest of a use tree end the path here.
                let mut k = k;
                if chars[k..].starts_with(&['a', 's']) && !ident(*chars.get(k + 2).unwrap_or(&' '))
                {
                    k = skip_ws(k + 2);
                    while k < chars.len() && ident(chars[k]) {
                        k += 1;
                    }
                }
                return (vec![path], k);
            }
        }
    }
    tree(chars, start, Vec::new())
}

/// The module file `path`, seen from module `from`, names.
fn resolve(
    from: &[String],
    path: &[String],
    modules: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let mut base: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "self" => from.to_vec(),
        _ => from.to_vec(),
    };
    let mut rest = &path[1..];
    if path[0] == "super" {
        base.pop()?;
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
    }
    for segment in rest {
        let mut deeper = base.clone();
        deeper.push(segment.clone());
        if modules.contains_key(&deeper) {
            base = deeper;
        } else {
            break;
        }
    }
    Some(base)
}

/// Module → the modules it imports, test-only modules left out.
fn edges(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules = modules(src);
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        if module.last().is_some_and(|m| test_only(m)) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(file).expect("read source"));
        // Unit tests are not part of the module's dependencies.
        // (Only an inline `mod tests { … }`: a `mod tests;` declaration
        // among the others hides nothing.)
        let code = match code.find("#[cfg(test)]\nmod tests {") {
            Some(at) => &code[..at],
            None => &code[..],
        };
        let targets: BTreeSet<Vec<String>> = paths(code)
            .iter()
            .filter_map(|p| resolve(module, p, &modules))
            .filter(|t| t != module && !t.last().is_some_and(|m| test_only(m)))
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct T<'g> {
        graph: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'g Vec<String>, usize>,
        low: BTreeMap<&'g Vec<String>, usize>,
        stack: Vec<&'g Vec<String>>,
        on: BTreeSet<&'g Vec<String>>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g Vec<String>) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = t.graph.get_key_value(w) else {
                continue;
            };
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.join("::"));
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn the_checker_sees_imports_and_circles() {
    let code = code_only(
        "use crate::{a::{b, c as d}, e};\n// crate::f in a comment\nlet s = \"crate::g\";\nsuper::h::X; self::i::Y; pub(super) fn f() {}",
    );
    let found = paths(&code);
    let want: Vec<Vec<String>> = [
        &["crate", "a", "b"][..],
        &["crate", "a", "c"],
        &["crate", "e"],
        &["super", "h", "X"],
        &["self", "i", "Y"],
    ]
    .iter()
    .map(|p| p.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(found, want);
    let m = |s: &str| -> Vec<String> {
        s.split("::")
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut graph = BTreeMap::new();
    graph.insert(m("a"), BTreeSet::from([m("b")]));
    graph.insert(m("b"), BTreeSet::from([m("c")]));
    graph.insert(m("c"), BTreeSet::from([m("a")]));
    graph.insert(m("d"), BTreeSet::from([m("a")]));
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}

/// The layers `lib.rs` documents under `# Layout`: each numbered item's
/// backquoted names before its first `:`, lowest layer first.
fn documented_layers(src: &Path) -> Vec<Vec<String>> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let mut in_layout = false;
    let mut layers = Vec::new();
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with('#') {
            in_layout = doc == "# Layout";
            continue;
        }
        let numbered = doc
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let Some((_, item)) = numbered.filter(|_| in_layout) else {
            continue;
        };
        let head = item.split(':').next().unwrap_or("");
        let names: Vec<String> = head
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|n| n.trim_matches(|c| c == '[' || c == ']').to_owned())
            .collect();
        layers.push(names);
    }
    layers
}

/// The checks of [`modules_follow_their_documented_order`] for one crate:
/// every top-level module is documented exactly once, and imports only
/// from earlier layers.
fn check_order(src: &Path) -> Vec<String> {
    let layers = documented_layers(src);
    let mut layer_of = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, names) in layers.iter().enumerate() {
        for name in names {
            if layer_of.insert(name.clone(), i).is_some() {
                problems.push(format!("{name} is listed twice in lib.rs"));
            }
        }
    }
    let graph = edges(src);
    let tops: BTreeSet<String> = graph.keys().filter_map(|m| m.first().cloned()).collect();
    for top in &tops {
        if !layer_of.contains_key(top) {
            problems.push(format!("{top} is not in lib.rs's # Layout"));
        }
    }
    for name in layer_of.keys() {
        if !tops.contains(name) {
            problems.push(format!("lib.rs lists {name}, which is not a module"));
        }
    }
    for (module, targets) in &graph {
        let Some(from) = module.first() else { continue };
        for t in targets {
            let Some(to) = t.first() else { continue };
            match (layer_of.get(from), layer_of.get(to)) {
                (Some(a), Some(b)) if from != to && b >= a => problems.push(format!(
                    "{} imports {} (layer {} imports layer {}): lib.rs puts {to} after {from}",
                    module.join("::"),
                    t.join("::"),
                    a + 1,
                    b + 1
                )),
                _ => {}
            }
        }
    }
    problems
}

#[test]
fn the_order_checker_reads_layers_and_finds_upward_imports() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(
        src.join("lib.rs"),
        "//! # Layout\n//!\n//! 1. `a`, [`b`]: low.\n//! 2. `c`: uses `a`.\n//!\n//! # Other\n//! 3. `x`: not layout\nmod a; mod b; mod c;\n",
    )
    .unwrap();
    std::fs::write(src.join("a.rs"), "use crate::c::X;\n").unwrap();
    std::fs::write(src.join("b.rs"), "").unwrap();
    std::fs::write(src.join("c.rs"), "use crate::a::Y; use crate::b::Z;\n").unwrap();
    std::fs::write(src.join("d.rs"), "").unwrap();
    assert_eq!(
        documented_layers(src),
        vec![vec!["a".to_owned(), "b".to_owned()], vec!["c".to_owned()]]
    );
    let problems = check_order(src);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("d is not in lib.rs"), "{problems:?}");
    assert!(problems[1].starts_with("a imports c"), "{problems:?}");
}

#[test]
fn modules_follow_their_documented_order() {
    for src in [product(), testkit()] {
        let problems = check_order(&src);
        assert!(
            problems.is_empty(),
            "{}: the modules and lib.rs's # Layout disagree:\n{}",
            src.display(),
            problems.join("\n")
        );
    }
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = edges(&product());
    assert!(graph.len() > 40, "found only {} modules", graph.len());
    // The checker must see the imports that are there.
    let has = |from: &str, to: &str| {
        let f: Vec<String> = from.split("::").map(str::to_owned).collect();
        let t: Vec<String> = to.split("::").map(str::to_owned).collect();
        graph.get(&f).is_some_and(|ts| ts.contains(&t))
    };
    assert!(has("refresh::engine", "exchange"), "{graph:?}");
    assert!(has("wire", "credentials"));
    assert!(!has("credentials", "wire"));
    for src in [product(), testkit()] {
        let found = circles(&edges(&src));
        assert!(
            found.is_empty(),
            "{}: modules that import each other: {found:?}",
            src.display()
        );
    }
}

/// The configuration layer is `config` (value types and runtime structs)
/// under `cli` (the clap `Args` structs): `config` imports nothing else of
/// the crate but the foundations (layer 1: bounded file reads and the
/// like), `cli` nothing but those and `config`, so any stage can import
/// either without a circle.
#[test]
fn configuration_depends_on_nothing_it_configures() {
    let graph = edges(&product());
    let foundations = documented_layers(&product()).remove(0);
    assert!(foundations.iter().any(|m| m == "fsread"), "{foundations:?}");
    let mut seen = 0;
    for (module, targets) in &graph {
        let own: &[&str] = match module.first().map(String::as_str) {
            Some("config") => &["config"],
            Some("cli") => &["cli", "config"],
            _ => continue,
        };
        let allowed: Vec<&str> = own
            .iter()
            .copied()
            .chain(foundations.iter().map(String::as_str))
            .collect();
        seen += 1;
        for t in targets {
            let top = t.first().map(String::as_str).unwrap_or("");
            assert!(
                allowed.contains(&top),
                "{} imports {}: configuration may depend only on {allowed:?}",
                module.join("::"),
                t.join("::")
            );
        }
    }
    assert!(seen > 10, "found only {seen} configuration modules");
    let has = |from: &str, to: &str| {
        let f: Vec<String> = from.split("::").map(str::to_owned).collect();
        graph
            .get(&f)
            .is_some_and(|ts| ts.iter().any(|t| t.first().map(String::as_str) == Some(to)))
    };
    // The checker sees the layer's one direction.
    assert!(has("cli::inject", "config"));
    assert!(has("webhook::mutate::items", "cli"));
}

#[test]
fn no_module_is_over_about_400_lines() {
    for src in [product(), testkit()] {
        for (module, file) in modules(&src) {
            let lines = std::fs::read_to_string(&file)
                .expect("read")
                .lines()
                .count();
            assert!(
                lines <= MAX_LINES,
                "{} ({}) has {lines} lines; split it by responsibility",
                module.join("::"),
                file.display()
            );
        }
    }
}
