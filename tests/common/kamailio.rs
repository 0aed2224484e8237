//! A real Kamailio (Debian's `kamailio` package) in front of ivrflow nodes on loopback, with
//! the project's own `deploy/kamailio/kamailio.cfg`; killed with its children on drop.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Kamailio {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
}

impl Kamailio {
    /// Starts Kamailio on a free loopback port dispatching to `nodes` (set 1), and waits
    /// (≤ 10 s) until it answers OPTIONS.
    pub fn start(nodes: &[SocketAddr]) -> Kamailio {
        super::require_tool("kamailio", "kamailio");
        let port = super::free_udp_port();
        let dir =
            std::env::temp_dir().join(format!("ivrflow-kamailio-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("dispatcher.list");
        let lines: String = nodes.iter().map(|n| format!("1 sip:{n}\n")).collect();
        std::fs::write(&list, lines).unwrap();
        let log = dir.join("kamailio.log");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(super::repo().join("deploy/kamailio/kamailio.cfg"))
            .args(["-l", &format!("udp:{addr}"), "-DD", "-E", "-A"])
            .arg(format!("DISPATCHER_LIST=\"{}\"", list.display()))
            .arg("-Y")
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .expect("start kamailio");
        let k = Kamailio {
            child,
            addr,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while super::options_ping(k.addr, Duration::from_millis(300)) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "kamailio did not answer OPTIONS within 10 s; log:\n{}",
                k.log_text()
            );
        }
        k
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // The whole process group: the creator and its forked workers.
        // SAFETY: kill(2) on the group we created.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
