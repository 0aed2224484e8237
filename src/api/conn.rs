//! The API's accept loop: each connection gets a deadline for its request headers, is closed
//! when idle, and there is a ceiling on how many are open at once — so idle or trickling
//! clients cannot hold descriptors the SIP and RTP sockets need (issue 14.3).
//!
//! HTTP/1.1 through hyper directly (axum's `serve` has no timeouts). A connection over the
//! limit is closed at once; running out of descriptors is logged as such and accepting pauses
//! briefly instead of spinning.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

/// Connection limits (`api:` in the config).
pub use crate::config::ApiLimits as Limits;

/// Serves `app` on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    tracing::error!(error = %e, "out of file descriptors: the API cannot accept connections (raise LimitNOFILE / ulimit -n)");
                } else {
                    tracing::debug!(error = %e, "API accept failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            tracing::warn!(%peer, max = limits.max_connections, "API connection limit reached; closing a new connection");
            drop(stream);
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let open = open.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let last = Arc::new(AtomicU64::new(0));
            let io = TokioIo::new(Watched {
                inner: stream,
                start,
                last: last.clone(),
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.idle_timeout);
            // The first request's headers have the shorter deadline (a client that
            // connects and sends nothing, or trickles); later ones the idle timeout, so a
            // client's pooled keep-alive connection is not cut under it after a few seconds.
            let served = Arc::new(AtomicBool::new(false));
            let svc = {
                let served = served.clone();
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    served.store(true, Ordering::Relaxed);
                    let mut app = app.clone();
                    tower_service::Service::call(&mut app, req)
                })
            };
            let conn = builder.serve_connection(io, svc);
            let idle = async {
                loop {
                    let seen = Duration::from_millis(last.load(Ordering::Relaxed));
                    let quiet = start.elapsed().saturating_sub(seen);
                    if !served.load(Ordering::Relaxed) && start.elapsed() >= limits.header_timeout {
                        return;
                    }
                    if quiet >= limits.idle_timeout {
                        return;
                    }
                    let until_idle = limits.idle_timeout - quiet;
                    let until_first = limits.header_timeout.saturating_sub(start.elapsed());
                    let wait = if served.load(Ordering::Relaxed) {
                        until_idle
                    } else {
                        until_idle.min(until_first).max(Duration::from_millis(10))
                    };
                    tokio::time::sleep(wait).await;
                }
            };
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "API connection ended with an error");
                    }
                }
                _ = idle => tracing::debug!(%peer, "API connection idle; closed"),
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// A stream that notes when bytes last moved.
struct Watched<S> {
    inner: S,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
