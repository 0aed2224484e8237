//! Packaging as an operator meets it: scripts/release.sh makes a tarball (here around the
//! test build's binary, so no release build is needed), its install.sh puts it in place
//! under a root directory, and the installed binary finds its scenarios and prompts and the
//! config it was given; the systemd unit passes `systemd-analyze verify`, is `Type=notify`,
//! restarts on failure and waits longer than the drain before SIGKILL.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::repo;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ivrflow-release-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run");
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `Key=value` lines of a unit's [Service] section.
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
}

#[test]
fn the_systemd_unit_is_valid_and_outlasts_the_drain() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/ivrflow.service")).unwrap();
    assert_eq!(unit_value(&unit, "Type"), Some("notify"));
    assert_eq!(unit_value(&unit, "Restart"), Some("on-failure"));
    assert_eq!(unit_value(&unit, "KillSignal"), Some("SIGTERM"));
    let stop: u64 = unit_value(&unit, "TimeoutStopSec")
        .unwrap()
        .parse()
        .unwrap();
    let drain = ivrflow::config::Config::default().drain_timeout().unwrap();
    assert!(
        Duration::from_secs(stop) > drain + Duration::from_secs(10),
        "TimeoutStopSec={stop} must exceed the default drain ({drain:?}) with room to store"
    );
    let exec = unit_value(&unit, "ExecStart").unwrap();
    assert!(exec.contains(" serve ") && exec.contains(ivrflow::config::SYSTEM_CONFIG));

    common::require_tool("systemd-analyze", "systemd");
    let dir = tmp("unit");
    let local = unit.replace("/usr/local/bin/ivrflow", env!("CARGO_BIN_EXE_ivrflow"));
    std::fs::write(dir.join("ivrflow.service"), local).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("ivrflow.service"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("ivrflow.service:"),
        "systemd-analyze verify:\n{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_release_tarball_installs_and_runs_from_anywhere() {
    let out = tmp("dist");
    run(Command::new(repo().join("scripts/release.sh"))
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_ivrflow"),
            "--without-model",
            "--out",
        ])
        .arg(&out)
        .current_dir(repo()));
    let tarball = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("a tarball");
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("ivrflow-{}-", env!("CARGO_PKG_VERSION"))));
    run(Command::new("sha256sum")
        .args(["-c", &format!("{name}.sha256")])
        .current_dir(&out));

    let unpacked = tmp("unpacked");
    run(Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&unpacked));
    let top = unpacked.join(name.trim_end_matches(".tar.gz"));
    for p in [
        "bin/ivrflow",
        "install.sh",
        "etc/ivrflow/ivrflow.yaml",
        "etc/ivrflow/env.example",
        "lib/systemd/system/ivrflow.service",
        "share/ivrflow/scenarios/order-confirmation.yaml",
        "share/ivrflow/audio/en",
        "share/ivrflow/scripts/fetch-model.sh",
        "share/ivrflow/deploy/grafana/ivrflow-dashboard.json",
        "share/ivrflow/deploy/prometheus/ivrflow-alerts.yml",
        "share/doc/ivrflow/operations.md",
        "share/doc/ivrflow/openapi.yaml",
    ] {
        assert!(top.join(p).exists(), "{p} missing from the tarball");
    }
    assert_eq!(
        std::fs::read_to_string(top.join("etc/ivrflow/ivrflow.yaml")).unwrap(),
        ivrflow::cli::CONFIG_TEMPLATE
    );

    // install.sh into a root directory (as a package build would), then the installed
    // binary, run from `/`, finds the installed assets.
    let root = tmp("root");
    run(Command::new(top.join("install.sh"))
        .arg("--root")
        .arg(&root)
        .args(["--prefix", "/opt/ivrflow"]));
    let bin = root.join("opt/ivrflow/bin/ivrflow");
    let listing = run(Command::new(&bin).arg("validate").current_dir("/"));
    let share = root.join("opt/ivrflow/share/ivrflow/scenarios");
    assert!(
        listing
            .lines()
            .filter(|l| l.contains(": ok"))
            .all(|l| l.starts_with(share.to_str().unwrap())),
        "{listing}"
    );
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/ivrflow.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/opt/ivrflow/bin/ivrflow serve"),
        "{unit}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("etc/ivrflow/env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the secrets file is private");
    // A second install keeps the operator's config.
    std::fs::write(root.join("etc/ivrflow/ivrflow.yaml"), "max_calls: 7\n").unwrap();
    run(Command::new(top.join("install.sh"))
        .arg("--root")
        .arg(&root)
        .args(["--prefix", "/opt/ivrflow"]));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/ivrflow/ivrflow.yaml")).unwrap(),
        "max_calls: 7\n"
    );
    for d in [&out, &unpacked, &root] {
        let _ = std::fs::remove_dir_all(d);
    }
    assert!(!Path::new(&out).exists());
}
