//! `osctl boots` and `osctl boots show N`: the boot history each node
//! keeps, read with one call per node and printed through [`Ctx::finish`]
//! like every other table (the rendering is [`crate::output::boots`]).
//!
//! Must never compute anything about a boot the node did not say (how it
//! ended, its number): the agent owns the history's meaning.

use matic_proto::v1::{BootTimelineRequest, BootsRequest};

use super::Ctx;
use crate::output::boots as out;
use crate::output::table;

impl Ctx {
    /// `osctl boots [--limit N]`: one row per node and boot, newest first,
    /// then the boots left out and damaged records.
    pub(crate) async fn boots(&self, limit: u32) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.boots(BootsRequest { limit }).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(&r, out::boots_json, |ok| {
            let rows: Vec<_> = ok.iter().flat_map(|(n, v)| out::boots_rows(n, v)).collect();
            let notes: String = ok.iter().map(|(n, v)| out::boots_notes(n, v)).collect();
            table(out::BOOTS_HEADERS, &rows) + &notes
        })
    }

    /// `osctl boots show N`: one row per node and mark of boot N.
    pub(crate) async fn boot_timeline(&self, boot: i64) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.boot_timeline(BootTimelineRequest { boot }).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(&r, out::timeline_json, |ok| {
            let rows: Vec<_> = ok
                .iter()
                .flat_map(|(n, v)| out::timeline_rows(n, v))
                .collect();
            let notes: String = ok.iter().map(|(n, v)| out::timeline_notes(n, v)).collect();
            table(out::TIMELINE_HEADERS, &rows) + &notes
        })
    }
}
