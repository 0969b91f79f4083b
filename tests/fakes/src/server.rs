//! Serving a router on 127.0.0.1 with a stop switch.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running axum server.
#[derive(Debug)]
pub(crate) struct ServerHandle {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ServerHandle {
    /// Bind `addr` and serve `router` in a tokio task.
    pub(crate) async fn spawn(addr: SocketAddr, router: Router) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(signal)
                .await;
        });
        Ok(Self {
            addr,
            shutdown,
            task: Mutex::new(Some(task)),
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting connections (non-blocking; used from `Drop`).
    pub(crate) fn trigger(&self) {
        self.shutdown.send_replace(true);
    }

    /// Stop and wait up to 2 s for in-flight requests, then abort.
    pub(crate) async fn stop(&self) {
        self.trigger();
        let task = self.task.lock().expect("server task lock").take();
        if let Some(mut task) = task {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Graceful: the serve task closes idle connections and exits by itself.
        self.trigger();
    }
}
