//! The authoring commands behind `ivrflow validate`, `simulate`, `test`, `graph` and
//! `explain`, and `ivrflow init` (a commented configuration file to start from).
//!
//! Each command is a function that takes its parsed arguments and writers for standard
//! output and standard error, and returns the process exit status — so the binary stays a
//! thin clap layer and tests can run the commands in-process. Output is for people:
//! `file:line:col: error: …` diagnostics, timelines, coverage tables.
//!
//! Deliberately not here: argument parsing (`main.rs`), the SIP runtime (`serve`), and any
//! logic the library already has (loading, linting, simulating, drawing live in
//! `scenario` and `sim`; this module wires them to files and prints).

pub mod explain;
pub mod graph;
pub mod simulate;
pub mod test;
pub mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: problems were found (scenario errors, failed calls).
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit status: the command could not run (unreadable files, bad arguments).
pub const EXIT_USAGE: u8 = 2;

/// Whether `path` names a caller script (`*.test.yaml` / `*.test.yml`).
pub fn is_script(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Expands `paths` (files and directories; `default` when empty) into YAML files, sorted,
/// directories not recursed. Directory entries that are caller scripts go to the second
/// list, the rest to the first; files named explicitly are sorted the same way.
pub fn yaml_files(paths: &[PathBuf], default: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let paths: Vec<PathBuf> = if paths.is_empty() {
        vec![default.to_path_buf()]
    } else {
        paths.to_vec()
    };
    let mut scenarios = Vec::new();
    let mut scripts = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|f| f.is_file() && is_yaml(f))
                        .collect()
                })
                .unwrap_or_default();
            entries.sort();
            for e in entries {
                if is_script(&e) {
                    scripts.push(e);
                } else {
                    scenarios.push(e);
                }
            }
        } else if is_script(&p) {
            scripts.push(p);
        } else {
            scenarios.push(p);
        }
    }
    (scenarios, scripts)
}

/// The bundled audio directory (`audio/` here, else next to the sources).
pub fn default_audio() -> PathBuf {
    crate::config::Config::default().audio
}

/// The bundled scenario directory.
pub fn default_scenarios() -> PathBuf {
    crate::config::Config::default().scenarios
}

/// The commented configuration `ivrflow init` writes: every key with its default.
pub const CONFIG_TEMPLATE: &str = include_str!("../../deploy/ivrflow.yaml");

/// `ivrflow init [-o FILE] [--force]`: write [`CONFIG_TEMPLATE`] (never over an existing
/// file without `force`).
pub fn init(output: &Path, force: bool, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if output.exists() && !force {
        let _ = writeln!(
            err,
            "error: {} exists; pass --force to replace it, or -o to write elsewhere",
            output.display()
        );
        return EXIT_USAGE;
    }
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        let _ = writeln!(err, "error: cannot create {}: {e}", dir.display());
        return EXIT_USAGE;
    }
    match std::fs::write(output, CONFIG_TEMPLATE) {
        Ok(()) => {
            let _ = writeln!(
                out,
                "wrote {}; edit it, then: IVRFLOW_API_TOKEN=… ivrflow serve --config {}",
                output.display(),
                output.display()
            );
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "error: cannot write {}: {e}", output.display());
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_init_template_is_the_defaults() {
        let c = crate::config::Config::from_yaml("ivrflow.yaml", super::CONFIG_TEMPLATE)
            .expect("the template parses");
        assert_eq!(c, crate::config::Config::default());
    }
}
