//! The recognition worker pool: dedicated OS threads, a bounded queue, results through a
//! callback.
//!
//! Whisper takes hundreds of milliseconds of CPU per utterance; the runtime's task that
//! paces RTP every 20 ms must never wait for it. So recognition runs on its own threads
//! (never tokio's), started at a lower CPU priority (nice +10 on Linux) so that when all
//! cores are busy decoding, the pacing thread still wins the CPU the moment it wakes. The
//! queue is bounded: when it is full, [`AsrPool::submit`] refuses the job at once and the
//! caller treats the utterance as unrecognised (the dialogue's `nomatch`) instead of
//! letting latency grow without bound.
//!
//! A job the owner no longer wants ([`AsrPool::cancel`]: the caller spoke on after a
//! speculative start, pressed a key, hung up) is skipped if it still waits in the queue and
//! stopped at the next step if it is being decoded (whisper.cpp checks between the encoder
//! and each decoder step); no result comes back for it. With many callers talking, stale
//! speculative jobs would otherwise hold the workers that the wanted ones wait for.
//!
//! Not here: which results are stale — the owner of the call still ignores results whose
//! id it no longer waits for (a cancel can lose the race with a finishing job).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Recognizer, Transcript};

/// One utterance to recognise; `tag` identifies it to the owner (call, request id).
#[derive(Debug)]
pub struct Job<T> {
    pub tag: T,
    /// 8 kHz mono, as received.
    pub audio: Vec<i16>,
    pub lang: String,
    pub phrases: Vec<String>,
}

/// A finished job.
#[derive(Debug)]
pub struct Done<T> {
    pub tag: T,
    pub result: Result<Transcript, String>,
    /// Time spent waiting in the queue before a worker took it.
    pub queued: Duration,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub workers: usize,
    /// Jobs waiting beyond the ones being decoded.
    pub queue: usize,
    /// Niceness added to worker threads (Linux; ignored elsewhere).
    pub nice: i32,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            workers: 1,
            queue: 32,
            nice: 10,
        }
    }
}

/// A queued job with when it was queued and its cancel flag.
type Queued<T> = (Job<T>, Instant, Arc<AtomicBool>);
/// The queue's receiving end, shared by the workers.
type Shared<T> = Arc<Mutex<Receiver<Queued<T>>>>;
/// Cancel flags of the jobs queued or being decoded, by tag.
type Flags<T> = Arc<Mutex<HashMap<T, Arc<AtomicBool>>>>;

pub struct AsrPool<T> {
    tx: Option<SyncSender<Queued<T>>>,
    workers: Vec<JoinHandle<()>>,
    pending: Arc<AtomicUsize>,
    flags: Flags<T>,
    cancelled: Arc<AtomicUsize>,
}

impl<T: Send + Clone + Eq + Hash + 'static> AsrPool<T> {
    /// Starts `options.workers` threads; `make(i)` builds worker i's recogniser (on the
    /// worker's own thread); `on_done` is called on the worker thread with each result.
    pub fn start<M, F>(options: &PoolOptions, make: M, on_done: F) -> std::io::Result<AsrPool<T>>
    where
        M: Fn(usize) -> Box<dyn Recognizer> + Send + Sync + 'static,
        F: Fn(Done<T>) + Send + Sync + 'static,
    {
        let (tx, rx) = sync_channel::<Queued<T>>(options.queue);
        let rx: Shared<T> = Arc::new(Mutex::new(rx));
        let make = Arc::new(make);
        let on_done = Arc::new(on_done);
        let pending = Arc::new(AtomicUsize::new(0));
        let flags: Flags<T> = Arc::new(Mutex::new(HashMap::new()));
        let cancelled = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for i in 0..options.workers.max(1) {
            let rx = rx.clone();
            let make = make.clone();
            let on_done = on_done.clone();
            let pending = pending.clone();
            let flags = flags.clone();
            let cancelled = cancelled.clone();
            let nice = options.nice;
            let handle = std::thread::Builder::new()
                .name(format!("asr-{i}"))
                .spawn(move || {
                    lower_priority(nice);
                    let mut rec = make(i);
                    loop {
                        let next = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok((job, queued_at, cancel)) = next else {
                            return; // pool dropped
                        };
                        let queued = queued_at.elapsed();
                        let result = if cancel.load(Ordering::Relaxed) {
                            None
                        } else {
                            Some(
                                rec.recognize_cancellable(
                                    &job.audio,
                                    &job.lang,
                                    &job.phrases,
                                    &cancel,
                                )
                                .map_err(|e| e.to_string()),
                            )
                        };
                        if let Ok(mut f) = flags.lock()
                            && f.get(&job.tag).is_some_and(|c| Arc::ptr_eq(c, &cancel))
                        {
                            f.remove(&job.tag);
                        }
                        pending.fetch_sub(1, Ordering::Relaxed);
                        let result = match result {
                            Some(r) if !cancel.load(Ordering::Relaxed) => r,
                            _ => {
                                cancelled.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        };
                        on_done(Done {
                            tag: job.tag,
                            result,
                            queued,
                        });
                    }
                })?;
            workers.push(handle);
        }
        Ok(AsrPool {
            tx: Some(tx),
            workers,
            pending,
            flags,
            cancelled,
        })
    }

    /// Queues a job; gives it back when the queue is full.
    pub fn submit(&self, job: Job<T>) -> Result<(), Job<T>> {
        let Some(tx) = &self.tx else {
            return Err(job);
        };
        let cancel = Arc::new(AtomicBool::new(false));
        if let Ok(mut f) = self.flags.lock() {
            f.insert(job.tag.clone(), cancel.clone());
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        let tag = job.tag.clone();
        match tx.try_send((job, Instant::now(), cancel)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full((job, _, _)) | TrySendError::Disconnected((job, _, _))) => {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                if let Ok(mut f) = self.flags.lock() {
                    f.remove(&tag);
                }
                Err(job)
            }
        }
    }

    /// The owner no longer wants job `tag`: it is skipped if still queued, stopped at the
    /// decoder's next step if running, and its result (if it finishes first) not delivered.
    /// Unknown or finished tags are ignored.
    pub fn cancel(&self, tag: &T) {
        if let Ok(f) = self.flags.lock()
            && let Some(c) = f.get(tag)
        {
            c.store(true, Ordering::Relaxed);
        }
    }

    /// Jobs cancelled before their result was delivered, since the start.
    pub fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Jobs queued or being decoded.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Lets the workers finish what is queued, then joins them.
    pub fn shutdown(mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<T> Drop for AsrPool<T> {
    fn drop(&mut self) {
        // Closing the queue ends the workers after their current job; they are not joined
        // here (a drop must not block the runtime).
        self.tx.take();
    }
}

/// Lowers the calling thread's CPU priority (Linux: niceness is per thread, and threads
/// whisper.cpp starts from this one inherit it).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice != 0 {
        // SAFETY: plain syscalls on the calling thread's own id.
        let r = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice)
        };
        if r != 0 {
            tracing::debug!(nice, "could not lower the ASR worker's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::ScriptedRecognizer;
    use std::sync::mpsc::channel;

    /// A pool (at normal priority) whose results arrive on the returned channel.
    fn collecting<T: Send + Clone + Eq + Hash + 'static>(
        workers: usize,
        queue: usize,
        make: impl Fn(usize) -> Box<dyn Recognizer> + Send + Sync + 'static,
    ) -> (AsrPool<T>, std::sync::mpsc::Receiver<Done<T>>) {
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        let options = PoolOptions {
            workers,
            queue,
            nice: 0,
        };
        let pool = AsrPool::start(&options, make, move |d: Done<T>| {
            let _ = tx.lock().unwrap().send(d);
        })
        .unwrap();
        (pool, rx)
    }

    #[test]
    fn results_come_back_with_their_tags() {
        let (pool, rx) = collecting::<u32>(2, 8, |_| {
            Box::new(ScriptedRecognizer::new(
                (0..10).map(|_| ("да".to_owned(), 0.9)),
            ))
        });
        for tag in 0..4u32 {
            pool.submit(Job {
                tag,
                audio: vec![0; 800],
                lang: "ru".into(),
                phrases: vec![],
            })
            .unwrap();
        }
        let mut tags: Vec<u32> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .map(|d| {
                assert_eq!(d.result.as_ref().unwrap().text, "да");
                d.tag
            })
            .collect();
        tags.sort();
        assert_eq!(tags, [0, 1, 2, 3]);
        pool.shutdown();
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let g = gate.clone();
        struct Blocking(Arc<Mutex<()>>);
        impl Recognizer for Blocking {
            fn recognize(
                &mut self,
                _a: &[i16],
                lang: &str,
                _p: &[String],
            ) -> Result<Transcript, crate::asr::AsrError> {
                drop(self.0.lock());
                ScriptedRecognizer::default().recognize(&[], lang, &[])
            }
        }
        let pool = AsrPool::start(
            &PoolOptions {
                workers: 1,
                queue: 1,
                nice: 0,
            },
            move |_| Box::new(Blocking(g.clone())),
            |_d: Done<u8>| {},
        )
        .unwrap();
        let job = |tag| Job {
            tag,
            audio: vec![],
            lang: "en".into(),
            phrases: vec![],
        };
        // One is taken by the worker (blocked), one waits; the rest are refused.
        let mut refused = 0;
        for t in 0..5 {
            if pool.submit(job(t)).is_err() {
                refused += 1;
            }
        }
        assert!(refused >= 3, "{refused}");
        drop(held);
        pool.shutdown();
    }

    #[test]
    fn cancelled_jobs_are_skipped_or_stopped_and_never_delivered() {
        /// Decodes until told to stop (bounded, so a broken cancel fails instead of hanging).
        struct UntilCancelled;
        impl Recognizer for UntilCancelled {
            fn recognize(
                &mut self,
                _a: &[i16],
                lang: &str,
                _p: &[String],
            ) -> Result<Transcript, crate::asr::AsrError> {
                ScriptedRecognizer::new([("да".to_owned(), 0.9)]).recognize(&[], lang, &[])
            }
            fn recognize_cancellable(
                &mut self,
                a: &[i16],
                lang: &str,
                p: &[String],
                cancel: &AtomicBool,
            ) -> Result<Transcript, crate::asr::AsrError> {
                if a.is_empty() {
                    return self.recognize(a, lang, p); // the quick job
                }
                for _ in 0..1000 {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(crate::asr::AsrError::Decode("cancelled".into()));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                panic!("never cancelled");
            }
        }
        let (pool, rx) = collecting::<u8>(1, 4, |_| Box::new(UntilCancelled));
        let job = |tag, audio: Vec<i16>| Job {
            tag,
            audio,
            lang: "ru".into(),
            phrases: vec![],
        };
        pool.submit(job(1, vec![0; 80])).unwrap(); // taken by the worker, runs until cancelled
        pool.submit(job(2, vec![0; 80])).unwrap(); // waits in the queue
        pool.cancel(&2);
        pool.cancel(&1);
        pool.submit(job(3, vec![])).unwrap();
        let d = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(d.tag, 3, "only the job still wanted is delivered");
        assert_eq!(pool.cancelled(), 2);
        assert_eq!(pool.pending(), 0);
        // Unknown and finished tags are ignored.
        pool.cancel(&3);
        pool.cancel(&9);
        pool.shutdown();
        assert!(rx.try_recv().is_err());
    }
}
