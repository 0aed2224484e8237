//! Packaging, on the real binary: `ivrflow init` writes the commented configuration,
//! `serve` reads `./ivrflow.yaml` without being told, and an installed binary finds its
//! scenarios and prompts in `../share/ivrflow` — not in the source tree it was built from.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_udp_port, options_ping, repo};

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ivrflow-init-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn init_writes_a_commented_config_that_serve_reads_by_default() {
    let dir = tmp("serve");
    let run_init = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ivrflow"))
            .arg("init")
            .args(extra)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let o = run_init(&[]);
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(dir.join("ivrflow.yaml")).unwrap();
    assert_eq!(text, ivrflow::cli::CONFIG_TEMPLATE);
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 40
    );
    let cfg = ivrflow::config::Config::load(&dir.join("ivrflow.yaml")).unwrap();
    assert_eq!(cfg, ivrflow::config::Config::default());
    // Never over an existing file without --force.
    let o = run_init(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert!(run_init(&["--force"]).status.success());
    assert!(run_init(&["-o", "sub/dir/x.yaml"]).status.success());
    assert!(dir.join("sub/dir/x.yaml").is_file());

    // `serve` in that directory reads ./ivrflow.yaml (here: a changed data_dir).
    let yaml = text.replace("data_dir: data ", "data_dir: state");
    assert_ne!(yaml, text);
    std::fs::write(dir.join("ivrflow.yaml"), yaml).unwrap();
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let log = dir.join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivrflow"))
        .args(["serve", "--sip-listen", &sip.to_string()])
        .current_dir(&dir)
        .env_remove("IVRFLOW_CONFIG")
        .env_remove("IVRFLOW_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut up = false;
    while Instant::now() < deadline && !up {
        up = options_ping(sip, Duration::from_millis(300)) == Some(200);
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(up, "serve did not start:\n{log}");
    assert!(
        log.contains("configuration read config=ivrflow.yaml"),
        "{log}"
    );
    assert!(dir.join("state/ivrflow.sqlite3").is_file(), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Link (or copy) `from` to `to`.
fn place(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn an_installed_binary_finds_its_assets_next_to_it() {
    let prefix = tmp("prefix");
    let bin = prefix.join("bin/ivrflow");
    place(Path::new(env!("CARGO_BIN_EXE_ivrflow")), &bin);
    let share = prefix.join("share/ivrflow");
    std::fs::create_dir_all(&share).unwrap();
    std::os::unix::fs::symlink(repo().join("scenarios"), share.join("scenarios")).unwrap();
    std::os::unix::fs::symlink(repo().join("audio"), share.join("audio")).unwrap();
    // Run from a directory with no assets: the bundled scenarios are found under
    // PREFIX/share/ivrflow (not ./scenarios, not the source tree).
    let cwd = tmp("cwd");
    let o = Command::new(&bin)
        .arg("validate")
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    let files: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once(": ok").map(|(f, _)| f))
        .collect();
    assert_eq!(files.len(), 5, "{out}");
    for file in files {
        assert!(
            file.starts_with(share.join("scenarios").to_str().unwrap()),
            "{file}"
        );
    }
    // A flat unpack (binary and assets side by side) works too.
    let flat = tmp("flat");
    place(
        Path::new(env!("CARGO_BIN_EXE_ivrflow")),
        &flat.join("ivrflow"),
    );
    std::os::unix::fs::symlink(repo().join("scenarios"), flat.join("scenarios")).unwrap();
    let o = Command::new(flat.join("ivrflow"))
        .args(["validate", "--no-audio"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with(flat.join("scenarios").to_str().unwrap()),
        "{out}"
    );
    for d in [prefix, cwd, flat] {
        let _ = std::fs::remove_dir_all(d);
    }
}
