//! Listening for the server's shutdown signal (the pattern of tokio's mini-redis).
//!
//! The server holds a `broadcast::Sender<()>` and drops it to shut down; every connection holds a
//! [`Shutdown`] and, while it waits for its client's next bytes, also waits for that drop. A
//! connection in the middle of a request finishes it (and flushes the replies) first.

use tokio::sync::broadcast;

/// One connection's view of the shutdown signal.
#[derive(Debug)]
pub(crate) struct Shutdown {
    /// Set once the signal has been seen, so later waits return at once.
    is_shutdown: bool,
    /// Closed (every sender dropped) when the server shuts down.
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    /// Wraps a receiver of the server's broadcast channel.
    pub(crate) fn new(notify: broadcast::Receiver<()>) -> Shutdown {
        Shutdown {
            is_shutdown: false,
            notify,
        }
    }

    /// Waits for the shutdown signal (returns at once if it was already seen).
    pub(crate) async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        // Nothing is ever sent: an error (closed or lagged) is the signal.
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }
}
