//! [`Recorder`]: the running boot's writer, shared by the kernel log copier
//! (its own thread), the agent's marks and the reboot/shutdown handlers.
//!
//! Owns: the one lock around the [`BootWriter`] and turning its errors into
//! log lines. Must never: be called from an async task without
//! `spawn_blocking` (every event is fsynced), panic on a poisoned lock (a
//! panicked copier must not take the reboot handler with it), or keep
//! writing after [`Recorder::close`].

use std::sync::{Arc, Mutex, MutexGuard};

use matic_history::{BootWriter, Ending, Event, Store};

/// The running boot's record. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Recorder {
    writer: Arc<Mutex<Option<BootWriter>>>,
    number: u64,
    store: Store,
}

impl Recorder {
    /// Shares `writer`, the running boot's, of `store`.
    pub fn new(store: Store, writer: BootWriter) -> Recorder {
        Recorder {
            number: writer.number(),
            writer: Arc::new(Mutex::new(Some(writer))),
            store,
        }
    }

    /// The running boot's number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, Option<BootWriter>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the writer; `None` once closed.
    pub fn with_writer<R>(&self, f: impl FnOnce(&mut BootWriter) -> R) -> Option<R> {
        self.lock().as_mut().map(f)
    }

    /// Appends and fsyncs `event`; the error, as a sentence, if it was not
    /// written.
    pub fn event(&self, event: &Event) -> Result<(), String> {
        match self.with_writer(|w| w.event(event)) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(format!("boot history: {e}")),
            None => Err("boot history: closed (the agent is stopping)".into()),
        }
    }

    /// A timeline mark `name` at `at_ms`; a failure is logged, not returned
    /// (a missing mark must never stop what it marks).
    pub fn mark(&self, name: &str, at_ms: u64) {
        let event = Event::Mark {
            name: name.to_owned(),
            at_ms,
        };
        if let Err(e) = self.event(&event) {
            eprintln!("matic-agent: mark {name}: {e}");
        }
    }

    /// Records how this boot is about to end, fsynced before it returns.
    pub fn ended(&self, ending: Ending) -> Result<(), String> {
        let at_ms = super::facts::boottime_ms();
        self.event(&Event::Ended { ending, at_ms })
    }

    /// Writes out the buffered logs and ends the writer; later calls are
    /// refused.
    pub fn close(&self) {
        if let Some(w) = self.lock().take()
            && let Err(e) = w.close()
        {
            eprintln!("matic-agent: boot history: closing: {e}");
        }
    }
}
