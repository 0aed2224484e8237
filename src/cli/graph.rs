//! `ivrflow graph SCENARIO --format dot|mermaid|svg|png`: draw a scenario.
//!
//! DOT and Mermaid text come from `scenario::graph`; SVG and PNG are DOT rendered by
//! Graphviz's `dot` (the Debian package `graphviz`, installed by `scripts/setup.sh`).
//!
//! Not here: layout of our own — Graphviz and Mermaid do it better.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE};
use crate::scenario::{graph, load_file};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Dot,
    Mermaid,
    Svg,
    Png,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dot" => Ok(Format::Dot),
            "mermaid" => Ok(Format::Mermaid),
            "svg" => Ok(Format::Svg),
            "png" => Ok(Format::Png),
            other => Err(format!("unknown format `{other}` (dot, mermaid, svg, png)")),
        }
    }
}

/// Arguments of `ivrflow graph`.
#[derive(Debug, Clone)]
pub struct GraphArgs {
    pub scenario: PathBuf,
    pub format: Format,
    /// Write here instead of standard output.
    pub output: Option<PathBuf>,
}

/// Renders DOT text with Graphviz.
pub fn render_with_dot(dot: &str, format: &str) -> Result<Vec<u8>, String> {
    let mut child = Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run Graphviz `dot` ({e}); install graphviz (scripts/setup.sh) or use --format dot/mermaid")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| format!("cannot write to `dot`: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("`dot` failed: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`dot` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

pub fn run(args: &GraphArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let scenario = match load_file(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_PROBLEMS;
        }
    };
    let bytes = match args.format {
        Format::Dot => graph::to_dot(&scenario).into_bytes(),
        Format::Mermaid => graph::to_mermaid(&scenario).into_bytes(),
        Format::Svg | Format::Png => {
            let fmt = if args.format == Format::Svg {
                "svg"
            } else {
                "png"
            };
            match render_with_dot(&graph::to_dot(&scenario), fmt) {
                Ok(b) => b,
                Err(e) => {
                    let _ = writeln!(err, "error: {e}");
                    return EXIT_USAGE;
                }
            }
        }
    };
    let written = match &args.output {
        Some(path) => std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display())),
        None => out.write_all(&bytes).map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "error: cannot write the graph: {e}");
            EXIT_USAGE
        }
    }
}
