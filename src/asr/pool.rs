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
//! **Fair to every call.** Each job names its `owner` (the call). An owner has at most one
//! job waiting in the queue: a newer job of the same owner takes the waiting one's place
//! (counted as [`AsrPool::replaced`]; only the newest utterance of a call is ever wanted),
//! so with the one a worker may be decoding, a call holds at most two places and one noisy
//! caller cannot fill the queue that everybody's answers wait in (issue 12).
//!
//! A job the owner no longer wants ([`AsrPool::cancel`]: the caller spoke on after a
//! speculative start, pressed a key, hung up) leaves the queue at once if it still waits,
//! and is stopped at the next step if it is being decoded (whisper.cpp checks between the
//! encoder and each decoder step); no result comes back for it.
//!
//! Not here: which results are stale — the owner of the call still ignores results whose
//! id it no longer waits for (a cancel can lose the race with a finishing job).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Recognizer, Transcript};

/// One utterance to recognise; `tag` identifies it to the owner (call, request id).
#[derive(Debug)]
pub struct Job<T> {
    pub tag: T,
    /// Who the job is for (the call): at most one job per owner waits in the queue.
    pub owner: u64,
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

/// Why [`AsrPool::submit`] gave a job back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds `queue` jobs of other owners.
    Full,
    /// The pool is shutting down.
    Closed,
}

/// A queued job with when it was queued and its cancel flag.
struct Queued<T> {
    job: Job<T>,
    at: Instant,
    cancel: Arc<AtomicBool>,
}

struct Queue<T> {
    jobs: VecDeque<Queued<T>>,
    /// Cancel flags of the jobs being decoded, by tag.
    running: HashMap<T, Arc<AtomicBool>>,
    closed: bool,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    ready: Condvar,
    capacity: usize,
    cancelled: AtomicUsize,
    replaced: AtomicUsize,
}

pub struct AsrPool<T> {
    shared: Arc<Shared<T>>,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + Clone + Eq + Hash + 'static> AsrPool<T> {
    /// Starts `options.workers` threads; `make(i)` builds worker i's recogniser (on the
    /// worker's own thread); `on_done` is called on the worker thread with each result.
    pub fn start<M, F>(options: &PoolOptions, make: M, on_done: F) -> std::io::Result<AsrPool<T>>
    where
        M: Fn(usize) -> Box<dyn Recognizer> + Send + Sync + 'static,
        F: Fn(Done<T>) + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                running: HashMap::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: options.queue,
            cancelled: AtomicUsize::new(0),
            replaced: AtomicUsize::new(0),
        });
        let make = Arc::new(make);
        let on_done = Arc::new(on_done);
        let mut workers = Vec::new();
        for i in 0..options.workers.max(1) {
            let shared = shared.clone();
            let make = make.clone();
            let on_done = on_done.clone();
            let nice = options.nice;
            let handle = std::thread::Builder::new()
                .name(format!("asr-{i}"))
                .spawn(move || {
                    lower_priority(nice);
                    let mut rec = make(i);
                    while let Some(q) = shared.take() {
                        let queued = q.at.elapsed();
                        let job = q.job;
                        let result = rec
                            .recognize_cancellable(&job.audio, &job.lang, &job.phrases, &q.cancel)
                            .map_err(|e| e.to_string());
                        if let Ok(mut g) = shared.queue.lock()
                            && g.running
                                .get(&job.tag)
                                .is_some_and(|c| Arc::ptr_eq(c, &q.cancel))
                        {
                            g.running.remove(&job.tag);
                        }
                        if q.cancel.load(Ordering::Relaxed) {
                            shared.cancelled.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        on_done(Done {
                            tag: job.tag,
                            result,
                            queued,
                        });
                    }
                })?;
            workers.push(handle);
        }
        Ok(AsrPool { shared, workers })
    }

    /// Queues a job. A job of the same owner still waiting is replaced (dropped without a
    /// result); otherwise a full queue gives the job back at once.
    pub fn submit(&self, job: Job<T>) -> Result<(), (Job<T>, Refused)> {
        let Ok(mut g) = self.shared.queue.lock() else {
            return Err((job, Refused::Closed));
        };
        if g.closed {
            return Err((job, Refused::Closed));
        }
        let queued = Queued {
            job,
            at: Instant::now(),
            cancel: Arc::new(AtomicBool::new(false)),
        };
        if let Some(slot) = g.jobs.iter_mut().find(|q| q.job.owner == queued.job.owner) {
            *slot = queued;
            self.shared.replaced.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if g.jobs.len() >= self.shared.capacity {
            return Err((queued.job, Refused::Full));
        }
        g.jobs.push_back(queued);
        drop(g);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// The owner no longer wants job `tag`: it leaves the queue if it still waits, is
    /// stopped at the decoder's next step if running, and its result (if it finishes
    /// first) is not delivered. Unknown or finished tags are ignored.
    pub fn cancel(&self, tag: &T) {
        let Ok(mut g) = self.shared.queue.lock() else {
            return;
        };
        let before = g.jobs.len();
        g.jobs.retain(|q| q.job.tag != *tag);
        let removed = before - g.jobs.len();
        if removed > 0 {
            self.shared.cancelled.fetch_add(removed, Ordering::Relaxed);
        }
        if let Some(c) = g.running.get(tag) {
            c.store(true, Ordering::Relaxed);
        }
    }

    /// Jobs cancelled before their result was delivered, since the start.
    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::Relaxed)
    }

    /// Jobs that were replaced in the queue by a newer job of the same owner.
    pub fn replaced(&self) -> usize {
        self.shared.replaced.load(Ordering::Relaxed)
    }

    /// Jobs queued or being decoded.
    pub fn pending(&self) -> usize {
        self.shared
            .queue
            .lock()
            .map(|g| g.jobs.len() + g.running.len())
            .unwrap_or(0)
    }

    /// Lets the workers finish what is queued, then joins them.
    pub fn shutdown(mut self) {
        self.shared.close();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<T: Eq + Hash + Clone> Shared<T> {
    /// The next job for a worker (registered as running); `None` once closed and empty.
    fn take(&self) -> Option<Queued<T>> {
        let mut g = self.queue.lock().ok()?;
        loop {
            if let Some(q) = g.jobs.pop_front() {
                g.running.insert(q.job.tag.clone(), q.cancel.clone());
                return Some(q);
            }
            if g.closed {
                return None;
            }
            g = self.ready.wait(g).ok()?;
        }
    }

    fn close(&self) {
        if let Ok(mut g) = self.queue.lock() {
            g.closed = true;
        }
        self.ready.notify_all();
    }
}

impl<T> Drop for AsrPool<T> {
    fn drop(&mut self) {
        // Closing the queue ends the workers after what is queued; they are not joined
        // here (a drop must not block the runtime).
        if let Ok(mut g) = self.shared.queue.lock() {
            g.closed = true;
        }
        self.shared.ready.notify_all();
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
                owner: u64::from(tag),
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
            owner: u64::from(tag),
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
            owner: u64::from(tag),
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

    /// Issue 12.4: one noisy call cannot fill the queue. Its newer utterance replaces its
    /// waiting one; other calls still get a place, and only the newest job of the noisy
    /// call is decoded.
    #[test]
    fn one_owner_holds_one_place_in_the_queue() {
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
                ScriptedRecognizer::new([("ok".to_owned(), 0.9)]).recognize(&[], lang, &[])
            }
        }
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        let pool = AsrPool::start(
            &PoolOptions {
                workers: 1,
                queue: 2,
                nice: 0,
            },
            move |_| Box::new(Blocking(g.clone())),
            move |d: Done<(u64, u32)>| {
                let _ = tx.lock().unwrap().send(d.tag);
            },
        )
        .unwrap();
        let job = |owner, n| Job {
            tag: (owner, n),
            owner,
            audio: vec![],
            lang: "en".into(),
            phrases: vec![],
        };
        pool.submit(job(1, 0)).unwrap();
        // Wait until the worker has taken it (and blocks on the gate).
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.shared.queue.lock().unwrap().running.is_empty() {
            assert!(Instant::now() < deadline, "the worker never took the job");
            std::thread::sleep(Duration::from_millis(1));
        }
        for n in 1..100 {
            pool.submit(job(1, n))
                .expect("the noisy call replaces its own waiting job");
        }
        assert_eq!(pool.replaced(), 98);
        pool.submit(job(2, 0))
            .expect("another call still gets a place");
        assert_eq!(pool.submit(job(3, 0)).unwrap_err().1, Refused::Full);
        drop(held);
        let got: Vec<_> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(got, [(1, 0), (1, 99), (2, 0)]);
        pool.shutdown();
    }
}
