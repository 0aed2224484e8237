//! The crate's top-level modules form no cycle (issue 13): each module's non-test code
//! names `crate::other` only for modules below it. A newcomer can read the layers bottom
//! up; a change in a lower layer never needs the upper one. This test reads `src/` and
//! fails naming the cycle and where each of its edges is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of code that is not a test: comments, `#[cfg(test)] mod x { … }` blocks skipped.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut in_test_block = false;
    let mut depth = 0i32;
    let mut pending_cfg_test = false;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if in_test_block {
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            if depth <= 0 {
                in_test_block = false;
            }
            continue;
        }
        if pending_cfg_test && !l.is_empty() {
            pending_cfg_test = false;
            if l.starts_with("mod ") && l.ends_with('{') {
                in_test_block = true;
                depth = 1;
                continue;
            }
        }
        if l.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        if l.starts_with("//") {
            continue;
        }
        out.push((i + 1, l));
    }
    out
}

/// `crate::name` references in the code that is not a test.
fn references(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line, code) in code_lines(text) {
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push((line, name));
            rest = &rest[at + 7..];
        }
    }
    out
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top = |p: &Path| -> Option<String> {
        let rel = p.strip_prefix(&src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
        Some(first.trim_end_matches(".rs").to_owned())
    };
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|p| top(p))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    // module -> dependency -> first place it is named
    let mut deps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for p in &files {
        let Some(m) = top(p) else { continue };
        let name = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
        let test_file = name.contains("test") || p.components().any(|c| c.as_os_str() == "tests");
        if !modules.contains(&m) || test_file {
            continue;
        }
        let text = std::fs::read_to_string(p).unwrap();
        for (line, dep) in references(&text) {
            if dep != m && modules.contains(&dep) {
                deps.entry(m.clone())
                    .or_default()
                    .entry(dep)
                    .or_insert_with(|| {
                        format!("{}:{line}", p.strip_prefix(&src).unwrap().display())
                    });
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeMap<String, String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_owned());
        for d in deps
            .get(m)
            .map(|d| d.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if let Some(c) = visit(&d, deps, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        if let Some(cycle) = visit(m, &deps, &mut Vec::new(), &mut done) {
            let edges: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], deps[&w[0]][&w[1]]))
                .collect();
            panic!("module cycle: {}\n{}", cycle.join(" -> "), edges.join("\n"));
        }
    }
    // The sans-IO core: no runtime, no I/O crate, no clock of its own (issue 13: the
    // compiler does not keep this boundary within one crate, so this test does).
    let core = [
        "engine", "node", "call", "dialogue", "scenario", "sip", "media", "nlu", "dialer", "crm",
        "delivery", "sayas", "timers", "pii",
    ];
    let forbidden = [
        "tokio::",
        "reqwest::",
        "rusqlite::",
        "whisper_rs::",
        "UdpSocket",
        "TcpStream",
        "Instant::now()",
        "SystemTime::now()",
        "thread::spawn",
        "thread::sleep",
    ];
    for p in &files {
        let Some(m) = top(p) else { continue };
        let name = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
        let test_file = name.contains("test") || p.components().any(|c| c.as_os_str() == "tests");
        if !core.contains(&m.as_str()) || test_file {
            continue;
        }
        let text = std::fs::read_to_string(p).unwrap();
        for (line, code) in code_lines(&text) {
            for f in forbidden {
                assert!(
                    !code.contains(f),
                    "{}:{line}: the sans-IO core uses `{f}`: {code}",
                    p.strip_prefix(&src).unwrap().display()
                );
            }
        }
    }
    // The layers that must stay below the runtime.
    for core in [
        "engine", "node", "call", "dialogue", "scenario", "sip", "media", "sim",
    ] {
        for io in ["rt", "api"] {
            assert!(
                !deps.get(core).is_some_and(|d| d.contains_key(io)),
                "{core} depends on {io} ({})",
                deps[core][io]
            );
        }
    }
}
