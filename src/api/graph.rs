//! `GET /v1/scenarios/{name}/graph.svg?path=a,b,c`: a scenario's graph (the DOT text of
//! `scenario::graph::to_dot`) with one call's path drawn on it, rendered by Graphviz.
//!
//! The path is the call's `result.path` (node names in visit order; nodes of a
//! sub-dialogue qualified as `sub/node`): each visited node is filled and numbered with
//! its visit order (`1, 4` for a node visited twice), and each edge between two consecutive
//! visits is drawn heavy. Names that are not nodes of the scenario are ignored, so a path
//! from an older version of the scenario still draws what still exists.
//!
//! Only node indices from the compiled scenario reach the DOT text: nothing from the query
//! string is copied into it. Graphviz runs as a child process with a deadline (it is killed
//! if it takes longer).
//!
//! Not here: layout (Graphviz's), the DOT of the scenario itself (`scenario::graph`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::scenario::{NodeKind, Scenario};

/// Longest time `dot` may take for one picture.
pub const RENDER_DEADLINE: Duration = Duration::from_secs(5);

/// A path in node indices: the visit numbers (1-based) of each visited node, and the
/// edges taken (consecutive visits).
struct PathIndices {
    visits: BTreeMap<usize, Vec<usize>>,
    pairs: BTreeSet<(usize, usize)>,
}

/// `path` (node names) in `scenario`'s node indices.
fn path_indices(scenario: &Scenario, path: &[String]) -> PathIndices {
    let index_of = |name: &str| {
        scenario.nodes.iter().position(|n| {
            n.qualified == name
                || n.qualified.replacen('.', "/", 1) == name
                || (n.sub.is_none() && n.name == name)
        })
    };
    let mut visits: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut pairs = BTreeSet::new();
    let mut prev = None;
    for (step, name) in path.iter().enumerate() {
        let Some(i) = index_of(name) else {
            prev = None;
            continue;
        };
        visits.entry(i).or_default().push(step + 1);
        if let Some(p) = prev {
            pairs.insert((p, i));
        }
        prev = Some(i);
    }
    PathIndices { visits, pairs }
}

/// `  nA -> nB…;` → (A, B).
fn edge_ends(line: &str) -> Option<(usize, usize)> {
    let rest = line.trim_start().strip_prefix('n')?;
    let (a, rest) = rest.split_once(" -> n")?;
    let b: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((a.parse().ok()?, b.parse().ok()?))
}

const PATH_COLOUR: &str = "#c2410c";
const VISITED_FILL: &str = "#fed7aa";

/// The scenario's DOT with `path` drawn on it.
pub fn dot_with_path(scenario: &Scenario, path: &[String]) -> String {
    let dot = crate::scenario::graph::to_dot(scenario);
    let PathIndices { visits, pairs } = path_indices(scenario, path);
    let mut out = String::with_capacity(dot.len() + 64 * visits.len());
    let first = path.first().and_then(|_| visits.keys().next().copied());
    for line in dot.lines() {
        if line == "}" {
            for (i, steps) in &visits {
                let style = match scenario.nodes[*i].kind {
                    NodeKind::Ask(_) => "rounded,filled,bold",
                    _ => "filled,bold",
                };
                let order: Vec<String> = steps.iter().map(usize::to_string).collect();
                out.push_str(&format!(
                    "  n{i} [style=\"{style}\", fillcolor=\"{VISITED_FILL}\", color=\"{PATH_COLOUR}\", penwidth=2, xlabel=\"{}\", fontcolor=\"black\"];\n",
                    order.join(", ")
                ));
            }
        }
        let on_path = match edge_ends(line) {
            Some(ends) => pairs.contains(&ends),
            None => first.is_some() && line.trim_start().starts_with("start -> "),
        };
        if on_path && let Some(stripped) = line.strip_suffix(';') {
            let heavy = format!("color=\"{PATH_COLOUR}\", penwidth=3, fontcolor=\"{PATH_COLOUR}\"");
            match stripped.strip_suffix(']') {
                Some(with_attrs) => out.push_str(&format!("{with_attrs}, {heavy}];")),
                None => out.push_str(&format!("{stripped} [{heavy}];")),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    #[error(
        "cannot run Graphviz `dot` ({0}); install it (Debian: apt-get install graphviz) to draw scenario graphs"
    )]
    Missing(std::io::Error),
    #[error("Graphviz `dot` failed: {0}")]
    Failed(String),
    #[error("Graphviz `dot` took longer than {0:?}")]
    Timeout(Duration),
}

/// Render DOT text as SVG with Graphviz (`dot -Tsvg`), killing it after `deadline`.
/// Blocking: call it from a blocking thread.
pub fn render_svg(dot: &str, deadline: Duration) -> Result<Vec<u8>, RenderError> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RenderError::Missing)?;
    let mut stdin = child.stdin.take();
    let input = dot.as_bytes().to_vec();
    // Write and read on their own threads so a large graph cannot deadlock on full pipes.
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&input);
        }
    });
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RenderError::Timeout(deadline));
            }
            Err(e) => return Err(RenderError::Failed(e.to_string())),
        }
    };
    let _ = writer.join();
    let svg = reader.join().unwrap_or_default();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(RenderError::Failed(err.trim().to_owned()));
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> std::sync::Arc<Scenario> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/order-confirmation.yaml");
        std::sync::Arc::new(crate::scenario::load_file(&path).expect("the bundled scenario"))
    }

    #[test]
    fn the_path_is_drawn_and_nothing_else_changes() {
        let s = scenario();
        let plain = crate::scenario::graph::to_dot(&s);
        assert_eq!(dot_with_path(&s, &[]), plain);
        let path: Vec<String> = ["greet", "confirm", "followup", "confirmed", "no-such-node"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let dot = dot_with_path(&s, &path);
        let idx = |name: &str| s.nodes.iter().position(|n| n.name == name).unwrap();
        let (g, c, f, d) = (
            idx("greet"),
            idx("confirm"),
            idx("followup"),
            idx("confirmed"),
        );
        assert!(
            dot.contains(&format!("n{g} [style=\"filled,bold\"")),
            "{dot}"
        );
        assert!(dot.contains(&format!("n{c} [style=\"rounded,filled,bold\"")));
        assert!(dot.contains("xlabel=\"4\""));
        // The edges taken are heavy (and only those); the start arrow too.
        let heavy = |a: usize, b: usize| {
            dot.lines()
                .any(|l| edge_ends(l) == Some((a, b)) && l.contains("penwidth=3"))
        };
        assert!(heavy(g, c) && heavy(c, f) && heavy(f, d), "{dot}");
        assert!(!heavy(c, d) && !heavy(d, g));
        assert!(
            dot.lines()
                .any(|l| l.contains("start -> ") && l.contains("penwidth=3"))
        );
        // Every line but the added ones is the plain graph's (possibly with attributes).
        assert_eq!(dot.matches(" -> ").count(), plain.matches(" -> ").count());
    }

    #[test]
    fn graphviz_renders_svg() {
        let s = scenario();
        let svg = render_svg(
            &dot_with_path(&s, &["greet".to_owned(), "confirm".to_owned()]),
            RENDER_DEADLINE,
        )
        .expect("Graphviz `dot` (scripts/setup.sh installs graphviz)");
        let text = String::from_utf8(svg).unwrap();
        assert!(text.contains("<svg"), "{text}");
        assert!(text.contains("greet"));
        match render_svg("digraph {", RENDER_DEADLINE) {
            Err(RenderError::Failed(_)) => {}
            other => panic!("a broken DOT must fail: {other:?}"),
        }
    }
}
