//! [`LateRecorder`]: the running boot's [`Recorder`] as the API sees it
//! while the history opens beside it. The agent serves first and opens the
//! history after (settling earlier boots fsyncs, and under emulation that
//! took longer than the TLS set-up), so a handler that records (a reboot's
//! ending) waits here until the open is over.
//!
//! Owns only that hand-over. Must never: make a handler wait for anything
//! but the one open at start-up (a failed open is "no history", at once),
//! or open the history itself.

use tokio::sync::watch;

use super::Recorder;

/// The recorder once the history's open is over: `Some(recorder)`, or
/// `None` when it could not open. Cloning shares it.
#[derive(Clone, Debug)]
pub struct LateRecorder(watch::Receiver<Option<Option<Recorder>>>);

/// The side that hands the open's outcome over (dropping it unsent counts
/// as no history).
#[derive(Debug)]
pub struct Opened(watch::Sender<Option<Option<Recorder>>>);

impl Opened {
    /// The open is over: `recorder`, or `None` without history.
    pub fn send(self, recorder: Option<Recorder>) {
        self.0.send_replace(Some(recorder));
    }
}

impl LateRecorder {
    /// One still opening, and its sender.
    pub fn pending() -> (Opened, LateRecorder) {
        let (tx, rx) = watch::channel(None);
        (Opened(tx), LateRecorder(rx))
    }

    /// One whose open is over already (`None`: no history).
    pub fn ready(recorder: Option<Recorder>) -> LateRecorder {
        let (tx, rx) = LateRecorder::pending();
        tx.send(recorder);
        rx
    }

    /// The recorder, once the open is over; `None` without history.
    pub async fn get(&self) -> Option<Recorder> {
        let mut rx = self.0.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().flatten(),
            Err(_) => None, // the sender went away without an outcome
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recorder(tag: &str) -> Recorder {
        let dir = std::env::temp_dir().join(format!("matic-late-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = matic_history::Store::open(&dir, 1 << 20).unwrap();
        let started = crate::history::facts::started("b".into(), "A".into(), "1".into());
        let writer = store.resume_or_begin(started).unwrap();
        Recorder::new(store, writer)
    }

    #[tokio::test]
    async fn a_handler_waits_for_the_open_then_gets_its_recorder() {
        let (opened, late) = LateRecorder::pending();
        let waiting = tokio::spawn({
            let late = late.clone();
            async move { late.get().await.map(|r| r.number()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "get() returned before the open was over"
        );
        let rec = recorder("wait");
        let number = rec.number();
        opened.send(Some(rec));
        assert_eq!(waiting.await.unwrap(), Some(number));
        // Later callers get it at once.
        assert_eq!(late.get().await.map(|r| r.number()), Some(number));
    }

    #[tokio::test]
    async fn no_history_or_a_lost_sender_is_none_at_once() {
        assert!(LateRecorder::ready(None).get().await.is_none());
        let (opened, late) = LateRecorder::pending();
        drop(opened);
        let got = tokio::time::timeout(Duration::from_secs(5), late.get()).await;
        assert!(got.expect("get() hung on a dropped sender").is_none());
    }
}
