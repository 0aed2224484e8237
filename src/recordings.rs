//! The callers' recordings on disk: `record` nodes' audio as WAV files under
//! `<data_dir>/recordings/<call_ref>/<name>.wav`, written before the event that names them
//! is committed, served by the API (`GET /v1/calls/{id}/recordings/{name}`) and deleted
//! after the configured retention.
//!
//! A recording travels with the call's records: the node attaches it to the commit that
//! follows (`node::commit`), and the store thread writes it (temporary file, fsync, rename,
//! fsync of the directory) before it commits that batch — if the disk refuses, the batch
//! fails like any other commit: retried, and the node says no to new calls meanwhile.
//!
//! Names come from the scenario (the `record` node) and ids from the node, never from the
//! wire; both are still checked here ([`safe_component`]) because the API reads them from
//! a URL.
//!
//! Not here: capturing the audio (`asr::listen`), when the CRM hears of it (`node::records`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The sample rate of recordings (what the call's audio is decoded to).
pub const RATE: u32 = 8000;

/// One recording to store with a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The call's id (`call_ref`): the recording's folder.
    pub call_ref: String,
    /// The file name, `<node>.wav`.
    pub file: String,
    /// What the caller said (8 kHz mono); encoded as WAV where it is written, on the
    /// store thread, not on the thread that paces RTP.
    pub audio: Arc<Vec<i16>>,
}

/// The file name of a recording made at the node answering to `answer_key` (the key of the
/// call's `answers`): `describe.wav`, `survey.ask.wav` (`/` of sub-dialogues becomes `.`).
pub fn file_name(answer_key: &str) -> String {
    let mut s: String = answer_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '.'
            }
        })
        .collect();
    s.truncate(100);
    let s = s.trim_matches('.');
    if s.is_empty() {
        "recording.wav".to_owned()
    } else {
        format!("{s}.wav")
    }
}

/// Whether `s` may name a folder or file under the recordings directory: 1–128 ASCII
/// letters, digits, `-`, `_`, `.`, not starting with a dot (no `..`, no hidden files, no
/// separators).
pub fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// 16-bit mono PCM at [`RATE`] as a WAV file.
pub fn wav(samples: &[i16]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        // Writing to memory cannot fail but for a file over 4 GiB (a recording is
        // bounded by `max_length`).
        let Ok(mut w) = hound::WavWriter::new(&mut out, spec) else {
            return Vec::new();
        };
        for &s in samples {
            if w.write_sample(s).is_err() {
                break;
            }
        }
        let _ = w.finalize();
    }
    out.into_inner()
}

/// Where the recording `file` of call `call_ref` lives under `root`; `None` when either
/// is not a safe name.
pub fn path(root: &Path, call_ref: &str, file: &str) -> Option<PathBuf> {
    (safe_component(call_ref) && safe_component(file)).then(|| root.join(call_ref).join(file))
}

/// Writes `a` under `root` durably: a temporary file, fsync, rename over the final name,
/// fsync of the folder. An existing file of that name (the same node visited twice) is
/// replaced, as its answer is.
pub fn write(root: &Path, a: &Attachment) -> std::io::Result<()> {
    let Some(dest) = path(root, &a.call_ref, &a.file) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("unsafe recording name {:?}/{:?}", a.call_ref, a.file),
        ));
    };
    let dir = root.join(&a.call_ref);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{}.tmp", a.file));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&wav(&a.audio))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &dest)?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

/// What a retention sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub deleted: usize,
    pub kept: usize,
    pub errors: usize,
}

/// Deletes every recording under `root` last written more than `keep` before `now`, and
/// the call folders left empty. A missing `root` is an empty one.
pub fn sweep(root: &Path, now: SystemTime, keep: Duration) -> Swept {
    let mut out = Swept::default();
    let Ok(calls) = std::fs::read_dir(root) else {
        return out;
    };
    for call in calls.flatten() {
        let dir = call.path();
        if !dir.is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(&dir) else {
            out.errors += 1;
            continue;
        };
        let mut left = 0;
        for f in files.flatten() {
            let age = f
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default());
            match age {
                Ok(age) if age > keep => match std::fs::remove_file(f.path()) {
                    Ok(()) => out.deleted += 1,
                    Err(_) => {
                        out.errors += 1;
                        left += 1;
                    }
                },
                Ok(_) => {
                    out.kept += 1;
                    left += 1;
                }
                Err(_) => {
                    out.errors += 1;
                    left += 1;
                }
            }
        }
        if left == 0 {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ivrflow-rec-{name}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_are_safe_whatever_the_node_is_called() {
        assert_eq!(file_name("describe"), "describe.wav");
        assert_eq!(file_name("survey/ask"), "survey.ask.wav");
        assert_eq!(file_name("../../etc/passwd"), "etc.passwd.wav");
        assert_eq!(file_name("жалоба"), "recording.wav");
        for good in ["describe.wav", "3f2a-11", "a_b.c"] {
            assert!(safe_component(good), "{good}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "%2e%2e",
            &"x".repeat(129),
        ] {
            assert!(!safe_component(bad), "{bad}");
        }
        assert_eq!(path(Path::new("/r"), "..", "x.wav"), None);
        assert_eq!(
            path(Path::new("/r"), "c1", "x.wav"),
            Some(PathBuf::from("/r/c1/x.wav"))
        );
    }

    #[test]
    fn a_recording_is_a_wav_file_that_reads_back_sample_for_sample() {
        let root = temp("write");
        let samples: Vec<i16> = (0..8000).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let a = Attachment {
            call_ref: "c-1".into(),
            file: "describe.wav".into(),
            audio: Arc::new(samples.clone()),
        };
        write(&root, &a).unwrap();
        let mut r = hound::WavReader::open(root.join("c-1/describe.wav")).unwrap();
        assert_eq!(r.spec().sample_rate, RATE);
        assert_eq!(r.spec().channels, 1);
        let back: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back, samples);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(root.join("c-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("describe.wav")]);
        let bad = Attachment {
            call_ref: "../x".into(),
            ..a
        };
        assert!(write(&root, &bad).is_err());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_root_that_cannot_hold_files_is_an_error_not_a_silent_loss() {
        let a = Attachment {
            call_ref: "c".into(),
            file: "r.wav".into(),
            audio: Arc::new(vec![0; 160]),
        };
        assert!(write(Path::new("/dev/full"), &a).is_err());
    }

    #[test]
    fn the_sweep_deletes_what_is_older_than_the_retention_and_keeps_the_rest() {
        let root = temp("sweep");
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        for (call, file, age_days) in [
            ("old", "a.wav", 40),
            ("old", "b.wav", 31),
            ("mixed", "a.wav", 45),
            ("mixed", "b.wav", 2),
            ("new", "a.wav", 0),
        ] {
            let a = Attachment {
                call_ref: call.into(),
                file: file.into(),
                audio: Arc::new(vec![1, 2, 3]),
            };
            write(&root, &a).unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(root.join(call).join(file))
                .unwrap();
            f.set_modified(now - day * age_days).unwrap();
        }
        let swept = sweep(&root, now, day * 30);
        assert_eq!(
            swept,
            Swept {
                deleted: 3,
                kept: 2,
                errors: 0
            }
        );
        assert!(
            !root.join("old").exists(),
            "an emptied call folder goes too"
        );
        assert!(root.join("mixed/b.wav").exists());
        assert!(!root.join("mixed/a.wav").exists());
        assert!(root.join("new/a.wav").exists());
        assert_eq!(sweep(&root.join("missing"), now, day), Swept::default());
        std::fs::remove_dir_all(root).unwrap();
    }
}
