//! The binary's modules (those `init/src/main.rs` declares, and `main`,
//! the root, which uses them all) import each other without a cycle, and
//! `sys.rs`, the one `unsafe` module, imports none of them. Read from the
//! sources: every `crate::NAME` (also inside `use crate::{…}` and a macro's
//! `$crate::`) is an edge, `crate::main` one to the root; the logging
//! macros (`info!`, `warn!`, `error!`, `fatal!`) count as `log`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LOG_MACROS: [&str; 5] = ["info", "warn", "error", "fatal", "log_line"];

fn src(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The modules `main.rs` declares (`mod NAME;`).
fn modules() -> Vec<String> {
    src("main.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The crate-level names a source refers to through `crate::`.
fn refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(list) = rest.strip_prefix('{') {
                let list = list.split('}').next().unwrap_or("");
                for item in list.split(',') {
                    out.insert(ident(item.trim()).to_owned());
                }
            } else {
                out.insert(ident(rest).to_owned());
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    assert!(mods.len() >= 4, "main.rs declares modules: {mods:?}");
    let mut known: BTreeSet<&str> = mods.iter().map(String::as_str).collect();
    known.insert("main");
    let mut g: BTreeMap<String, BTreeSet<String>> = mods
        .iter()
        .map(|m| {
            let edges = refs(&src(&format!("{m}.rs")))
                .into_iter()
                .map(|r| {
                    if LOG_MACROS.contains(&r.as_str()) {
                        "log".to_owned()
                    } else {
                        r
                    }
                })
                .filter(|r| known.contains(r.as_str()) && r != m)
                .collect();
            (m.clone(), edges)
        })
        .collect();
    g.insert("main".to_owned(), mods.iter().cloned().collect());
    g
}

#[test]
fn sys_imports_no_other_module() {
    let g = graph();
    assert_eq!(
        g["sys"],
        BTreeSet::new(),
        "sys.rs must import nothing of init"
    );
    assert!(g["stage1"].contains("log"), "the parser sees edges: {g:?}");
}

#[test]
fn no_import_cycles() {
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_owned());
        for n in &g[m] {
            visit(n, g, path, done);
        }
        path.pop();
        done.insert(m.to_owned());
    }
    let g = graph();
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(m, &g, &mut Vec::new(), &mut done);
    }
}
