//! The generations on disk: each applied document is a new generation with
//! a higher id, written atomically ([`crate::atomic`]) as
//! `gen-<id, 10 digits>.toml`, and only the last [`KEEP`] are kept. The
//! current generation is the one with the highest id; a rollback or a
//! revert is a new generation holding an older one's text, so ids only
//! ever grow and the history reads in order.
//!
//! File format: header lines starting `#! ` (`parent=`, `origin=`,
//! `time=`), then the document exactly as it was applied. The header is
//! TOML comments, so a generation file is itself a valid document.
//!
//! Must never: delete the current generation, reuse an id, or take a
//! temporary file or a damaged one for a generation.

use std::fs;
use std::path::{Path, PathBuf};

use crate::atomic::{self, IoError, TMP_PREFIX, io};

/// Generations kept on disk.
pub const KEEP: usize = 10;
const PREFIX: &str = "gen-";
const SUFFIX: &str = ".toml";
const MAGIC: &str = "#! matic-config generation";

/// Errors of the store, naming the path or the id.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{path}: damaged generation: {why}")]
    Damaged { path: String, why: String },
    #[error("generation {id} is not kept (held: {held})")]
    NotFound { id: u64, held: String },
}

/// How a generation came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Applied by an admin.
    Applied,
    /// `rollback`: holds generation `to`'s text.
    Rollback { to: Option<u64> },
    /// A trial of generation `of` expired: holds the text before it.
    Revert { of: u64 },
}

impl Origin {
    fn render(self) -> String {
        match self {
            Origin::Applied => "applied".into(),
            Origin::Rollback { to: Some(n) } => format!("rollback-to-{n}"),
            Origin::Rollback { to: None } => "rollback-to-none".into(),
            Origin::Revert { of } => format!("revert-of-{of}"),
        }
    }

    fn parse(s: &str) -> Option<Origin> {
        if s == "applied" {
            return Some(Origin::Applied);
        }
        if s == "rollback-to-none" {
            return Some(Origin::Rollback { to: None });
        }
        if let Some(n) = s.strip_prefix("rollback-to-") {
            return n.parse().ok().map(|n| Origin::Rollback { to: Some(n) });
        }
        s.strip_prefix("revert-of-")?
            .parse()
            .ok()
            .map(|of| Origin::Revert { of })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The generation this one's change was made against (what a rollback
    /// goes back to); None: there was none (the command line's defaults).
    pub parent: Option<u64>,
    pub origin: Origin,
    /// Wall clock when written, Unix seconds (0 when unknown).
    pub time: u64,
}

/// One generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub id: u64,
    pub meta: Meta,
    /// The document as applied.
    pub text: String,
}

/// The generations directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) `dir` and deletes temporary files a torn write left.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        for e in fs::read_dir(dir)
            .map_err(io("read directory", dir))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{id:010}{SUFFIX}"))
    }

    /// Ids of the generation files present, ascending (not yet read).
    fn ids(&self) -> Result<Vec<u64>, StoreError> {
        let mut ids: Vec<u64> = fs::read_dir(&self.dir)
            .map_err(io("read directory", &self.dir))?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Reads generation `id`.
    pub fn read(&self, id: u64) -> Result<Generation, StoreError> {
        let path = self.path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    id,
                    held: self.held(),
                });
            }
            Err(e) => return Err(io("read", &path)(e).into()),
        };
        let damaged = |why: &str| StoreError::Damaged {
            path: path.display().to_string(),
            why: why.to_owned(),
        };
        let text = String::from_utf8(bytes).map_err(|_| damaged("not UTF-8"))?;
        let mut lines = text.split_inclusive('\n');
        if lines.next().map(str::trim_end) != Some(MAGIC) {
            return Err(damaged("no header"));
        }
        let (mut parent, mut origin, mut time, mut body_at) = (None, None, 0, MAGIC.len() + 1);
        for l in lines {
            let Some(kv) = l.strip_prefix("#! ") else {
                break;
            };
            body_at += l.len();
            match kv.trim_end().split_once('=') {
                Some(("parent", v)) => parent = v.parse().ok(),
                Some(("origin", v)) => origin = Origin::parse(v),
                Some(("time", v)) => time = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        let origin = origin.ok_or_else(|| damaged("no origin= in the header"))?;
        Ok(Generation {
            id,
            meta: Meta {
                parent,
                origin,
                time,
            },
            text: text[body_at.min(text.len())..].to_owned(),
        })
    }

    /// Every generation that reads, oldest first (a damaged one is skipped:
    /// [`Store::read`] says why).
    pub fn list(&self) -> Result<Vec<Generation>, StoreError> {
        Ok(self
            .ids()?
            .into_iter()
            .filter_map(|id| self.read(id).ok())
            .collect())
    }

    /// The current generation: the highest id that reads; None before the
    /// first apply.
    pub fn current(&self) -> Result<Option<Generation>, StoreError> {
        for id in self.ids()?.into_iter().rev() {
            if let Ok(g) = self.read(id) {
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    fn held(&self) -> String {
        match self.ids() {
            Ok(ids) if !ids.is_empty() => ids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            _ => "none".into(),
        }
    }

    /// The id the next [`Store::add`] will write (one above the highest
    /// file present, damaged or not: an id is never reused).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.ids()?.last().map_or(1, |n| n + 1))
    }

    /// Writes `text` as a new generation (id [`Store::next_id`]) and then
    /// deletes the oldest beyond [`KEEP`]. Returns the new id.
    pub fn add(&self, text: &str, meta: &Meta) -> Result<u64, StoreError> {
        let ids = self.ids()?;
        let id = ids.last().map_or(1, |n| n + 1);
        let mut out = format!("{MAGIC}\n");
        if let Some(p) = meta.parent {
            out.push_str(&format!("#! parent={p}\n"));
        }
        out.push_str(&format!(
            "#! origin={}\n#! time={}\n",
            meta.origin, meta.time
        ));
        out.push_str(text);
        atomic::write(&self.path(id), out.as_bytes())?;
        let total = ids.len() + 1;
        for old in ids.iter().take(total.saturating_sub(KEEP)) {
            atomic::remove(&self.path(*old))?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(parent: Option<u64>, origin: Origin) -> Meta {
        Meta {
            parent,
            origin,
            time: 7,
        }
    }

    #[test]
    fn add_read_and_cap() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.current().unwrap(), None);
        for i in 1..=12u64 {
            let id = s
                .add(
                    &format!("version = 1\nhostname = \"n{i}\"\n"),
                    &meta(i.checked_sub(1).filter(|&p| p > 0), Origin::Applied),
                )
                .unwrap();
            assert_eq!(id, i);
        }
        let all = s.list().unwrap();
        assert_eq!(
            all.iter().map(|g| g.id).collect::<Vec<_>>(),
            (3..=12).collect::<Vec<_>>()
        );
        let cur = s.current().unwrap().unwrap();
        assert_eq!(cur.id, 12);
        assert_eq!(cur.text, "version = 1\nhostname = \"n12\"\n");
        assert_eq!(cur.meta, meta(Some(11), Origin::Applied));
        // The file is a document itself.
        crate::parse(&fs::read_to_string(s.path(12)).unwrap()).unwrap();
        let e = s.read(1).unwrap_err().to_string();
        assert!(
            e.contains("generation 1 is not kept") && e.contains("3, 4"),
            "{e}"
        );
        for o in [
            Origin::Rollback { to: Some(3) },
            Origin::Rollback { to: None },
            Origin::Revert { of: 9 },
        ] {
            let id = s.add("version = 1\n", &meta(None, o)).unwrap();
            assert_eq!(s.read(id).unwrap().meta.origin, o);
        }
    }

    #[test]
    fn torn_writes_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.add(
            "version = 1\nhostname = \"good\"\n",
            &meta(None, Origin::Applied),
        )
        .unwrap();
        // A power cut mid-write leaves a temporary file (never renamed) ...
        fs::write(
            d.path().join(format!("{TMP_PREFIX}gen-0000000002.toml-1")),
            "#! matic-config gen",
        )
        .unwrap();
        // ... and a file damaged otherwise (never written by us) is skipped.
        fs::write(d.path().join("gen-0000000003.toml"), "garbage").unwrap();
        let cur = s.current().unwrap().unwrap();
        assert_eq!(
            (cur.id, cur.text.as_str()),
            (1, "version = 1\nhostname = \"good\"\n")
        );
        assert!(matches!(s.read(3), Err(StoreError::Damaged { .. })));
        // Reopening clears the temporary; the next id passes the damaged one.
        let s = Store::open(d.path()).unwrap();
        assert!(
            !d.path()
                .join(format!("{TMP_PREFIX}gen-0000000002.toml-1"))
                .exists()
        );
        assert_eq!(
            s.add("version = 1\n", &meta(Some(1), Origin::Applied))
                .unwrap(),
            4
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Apply(u8),
        /// Roll back to the current generation's parent (what the agent does).
        Rollback,
        /// A temporary file left by a torn write.
        Torn,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any sequence of applies, rollbacks and torn writes keeps at most
        /// KEEP generations, strictly increasing ids, and a current
        /// generation whose text is the one the model expects.
        #[test]
        fn any_sequence_keeps_a_readable_current(ops in proptest::collection::vec(
            prop_oneof![
                (0u8..20).prop_map(Op::Apply),
                Just(Op::Rollback),
                Just(Op::Torn),
            ], 1..40)) {
            let d = tempfile::tempdir().unwrap();
            let s = Store::open(d.path()).unwrap();
            let mut expected: Option<String> = None;
            let mut last_id = 0;
            for op in ops {
                let cur = s.current().unwrap();
                match op {
                    Op::Apply(n) => {
                        let text = format!("version = 1\nhostname = \"n{n}\"\n");
                        let id = s.add(&text, &meta(cur.as_ref().map(|g| g.id), Origin::Applied)).unwrap();
                        prop_assert!(id > last_id);
                        last_id = id;
                        expected = Some(text);
                    }
                    Op::Rollback => {
                        let Some(cur) = cur else { continue };
                        let (text, parent) = match cur.meta.parent.map(|p| s.read(p)) {
                            Some(Ok(p)) => (p.text, p.meta.parent),
                            // The parent is no longer kept, or there was none.
                            _ => ("version = 1\n".to_owned(), None),
                        };
                        let id = s.add(&text, &meta(parent, Origin::Rollback { to: cur.meta.parent })).unwrap();
                        prop_assert!(id > last_id);
                        last_id = id;
                        expected = Some(text);
                    }
                    Op::Torn => {
                        fs::write(d.path().join(format!("{TMP_PREFIX}gen-x")), "half").unwrap();
                    }
                }
                let held = s.list().unwrap();
                prop_assert!(held.len() <= KEEP);
                prop_assert!(held.windows(2).all(|w| w[0].id < w[1].id));
                let cur = s.current().unwrap();
                prop_assert_eq!(cur.map(|g| g.text), expected.clone());
            }
        }
    }
}
