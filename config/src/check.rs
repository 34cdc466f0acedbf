//! Parsing and checking a document. [`parse`] returns the typed
//! [`Config`] only when the TOML parses into the schema and every value
//! passes; otherwise every problem found, each naming its line, the field
//! (`network.interfaces.eth0.addresses[1]`) and why.
//!
//! Must never: accept a value the appliers would have to guess about, or
//! report a problem without the field it is about.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::schema::{Config, Interface, Kubelet, SYSCTL_ALLOW, VERSION};

/// Largest document accepted (a kubelet CA and a few registry CAs fit many
/// times over); a bigger one is refused before parsing.
pub const MAX_DOCUMENT: usize = 256 * 1024;
/// Longest `--try` window: a day (a longer trial is a forgotten one).
pub const MAX_TRY: Duration = Duration::from_secs(24 * 3600);
/// Shortest `--try` window.
pub const MIN_TRY: Duration = Duration::from_secs(1);

/// One thing wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the field (0 when the field is not in the text).
    pub line: usize,
    /// The field's path, e.g. `kubelet.labels."team"`; empty for a syntax error.
    pub field: String,
    pub why: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.why)
    }
}

/// A refused document: at least one problem; nothing of it may be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refused(pub Vec<Problem>);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("config refused:")?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// A step of a field's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn field_name(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                let bare = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if bare {
                    s.push_str(k);
                } else {
                    s.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses and checks `text`.
pub fn parse(text: &str) -> Result<Config, Refused> {
    if text.len() > MAX_DOCUMENT {
        return Err(Refused(vec![Problem {
            line: 0,
            field: String::new(),
            why: format!(
                "the document is {} bytes, over the {MAX_DOCUMENT}-byte limit",
                text.len()
            ),
        }]));
    }
    let tree = DeTable::parse(text).map_err(|e| {
        Refused(vec![Problem {
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            field: String::new(),
            why: e.message().trim().to_owned(),
        }])
    })?;
    let config: Config = toml::from_str(text).map_err(|e| {
        // A missing field's span is its table's: name the field itself,
        // with no line when that table is the whole document.
        let missing = e
            .message()
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next());
        let (line, field) = match e.span() {
            Some(s) if missing.is_some() && s.start == 0 => (0, String::new()),
            Some(s) => {
                let mut path = Vec::new();
                if missing.is_none() || s.start > 0 {
                    path_at(tree.get_ref(), s.start, &mut path);
                }
                (line_of(text, s.start), field_name(&path))
            }
            None => (0, String::new()),
        };
        let field = match missing {
            Some(m) if field.is_empty() => m.to_owned(),
            Some(m) => format!("{field}.{m}"),
            None => field,
        };
        Refused(vec![Problem {
            line,
            field,
            why: e.message().trim().to_owned(),
        }])
    })?;
    let mut found = Vec::new();
    values(&config, &mut |path: Vec<Seg>, why: String| {
        found.push((path, why))
    });
    if found.is_empty() {
        return Ok(config);
    }
    Err(Refused(
        found
            .into_iter()
            .map(|(path, why)| Problem {
                line: locate(tree.get_ref(), &path).map_or(0, |s| line_of(text, s.start)),
                field: field_name(&path),
                why,
            })
            .collect(),
    ))
}

/// The deepest path whose key or value span holds `at`.
fn path_at(table: &DeTable<'_>, at: usize, path: &mut Vec<Seg>) {
    for (k, v) in table.iter() {
        let (ks, vs) = (k.span(), v.span());
        if ks.contains(&at) || vs.contains(&at) {
            path.push(Seg::Key(k.get_ref().to_string()));
            value_path_at(v.get_ref(), at, path);
            return;
        }
    }
    // A table header's own key spans: fall back to the key that follows.
    for (k, v) in table.iter() {
        if let DeValue::Table(t) = v.get_ref()
            && t.iter().any(|(k2, v2)| {
                k2.span().contains(&at) || v2.span().contains(&at) || contains_deep(v2, at)
            })
        {
            path.push(Seg::Key(k.get_ref().to_string()));
            path_at(t, at, path);
            return;
        }
    }
}

fn contains_deep(v: &Spanned<DeValue<'_>>, at: usize) -> bool {
    if v.span().contains(&at) {
        return true;
    }
    match v.get_ref() {
        DeValue::Table(t) => t
            .iter()
            .any(|(k, v)| k.span().contains(&at) || contains_deep(v, at)),
        DeValue::Array(a) => a.iter().any(|v| contains_deep(v, at)),
        _ => false,
    }
}

fn value_path_at(v: &DeValue<'_>, at: usize, path: &mut Vec<Seg>) {
    match v {
        DeValue::Table(t) => path_at(t, at, path),
        DeValue::Array(a) => {
            if let Some((i, item)) = a.iter().enumerate().find(|(_, i)| contains_deep(i, at)) {
                path.push(Seg::Index(i));
                value_path_at(item.get_ref(), at, path);
            }
        }
        _ => {}
    }
}

/// The span of the value at `path`, or of its nearest ancestor present.
fn locate(table: &DeTable<'_>, path: &[Seg]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let Seg::Key(k) = first else { return None };
    let (key, v) = table.iter().find(|(key, _)| key.get_ref() == k)?;
    Some(locate_in(v, rest).unwrap_or_else(|| pick(key.span(), v.span())))
}

/// A table's span may be empty or span its whole body: prefer the key then.
fn pick(key: Range<usize>, value: Range<usize>) -> Range<usize> {
    if value.is_empty() {
        key
    } else {
        value.start.min(key.start)..value.end
    }
}

fn locate_in(v: &Spanned<DeValue<'_>>, path: &[Seg]) -> Option<Range<usize>> {
    let Some((first, rest)) = path.split_first() else {
        return Some(v.span());
    };
    match (first, v.get_ref()) {
        (Seg::Key(_), DeValue::Table(t)) => locate(t, path),
        (Seg::Index(i), DeValue::Array(a)) => {
            let item = a.get(*i)?;
            Some(locate_in(item, rest).unwrap_or_else(|| item.span()))
        }
        _ => None,
    }
}

// ------------------------------------------------------------ values

type Report<'a> = dyn FnMut(Vec<Seg>, String) + 'a;

fn at(base: &[&str]) -> Vec<Seg> {
    base.iter().map(|k| Seg::Key((*k).to_owned())).collect()
}

fn with(mut p: Vec<Seg>, s: Seg) -> Vec<Seg> {
    p.push(s);
    p
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

fn values(c: &Config, bad: &mut Report<'_>) {
    if c.version != VERSION {
        bad(
            at(&["version"]),
            format!(
                "schema version {} is unknown: this node reads version {VERSION}",
                c.version
            ),
        );
    }
    if let Some(h) = &c.hostname
        && let Err(why) = hostname(h)
    {
        bad(at(&["hostname"]), why);
    }
    for (name, iface) in &c.network.interfaces {
        interface(name, iface, bad);
    }
    list(
        &c.network.nameservers,
        &["network", "nameservers"],
        3,
        "resolv.conf uses the first 3",
        bad,
        |s| ip(s).map(|_| ()),
    );
    list(
        &c.network.search,
        &["network", "search"],
        6,
        "resolv.conf's traditional limit",
        bad,
        dns_name,
    );
    list(
        &c.time.ntp,
        &["time", "ntp"],
        8,
        "more servers do not make a better clock",
        bad,
        |s| {
            if ip(s).is_ok() { Ok(()) } else { dns_name(s) }
        },
    );
    for (name, value) in &c.sysctls {
        let p = with(at(&["sysctls"]), key(name));
        if !SYSCTL_ALLOW.iter().any(|(k, _)| k == name) {
            bad(
                p,
                format!(
                    "not an allowed sysctl (allowed: {})",
                    SYSCTL_ALLOW
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            continue;
        }
        let v = value.render();
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.split_ascii_whitespace().all(|w| w.parse::<i64>().is_ok())
            && v.split_ascii_whitespace().count() > 0;
        if !ok {
            bad(
                p,
                format!("{v:?} is not a value (integers separated by blanks, at most 64 bytes)"),
            );
        }
    }
    if let Some(ctr) = &c.containerd {
        for (host, m) in &ctr.mirrors {
            let p = at(&["containerd", "mirrors"]);
            if let Err(why) = host_port(host) {
                bad(
                    with(p.clone(), key(host)),
                    format!("registry {host:?}: {why}"),
                );
            }
            if m.endpoints.is_empty() {
                bad(
                    with(with(p.clone(), key(host)), key("endpoints")),
                    "needs at least one endpoint".into(),
                );
            }
            for (i, e) in m.endpoints.iter().enumerate() {
                if let Err(why) = url(e, &["http", "https"]) {
                    bad(
                        with(
                            with(with(p.clone(), key(host)), key("endpoints")),
                            Seg::Index(i),
                        ),
                        why,
                    );
                }
            }
        }
        for (i, pem) in ctr.extra_ca.iter().enumerate() {
            if let Err(why) = pem_cert(pem) {
                bad(with(at(&["containerd", "extra_ca"]), Seg::Index(i)), why);
            }
        }
        if let Some(img) = &ctr.sandbox_image
            && let Err(why) = image_ref(img)
        {
            bad(at(&["containerd", "sandbox_image"]), why);
        }
    }
    if let Some(k) = &c.kubelet {
        kubelet(k, bad);
    }
}

fn list(
    items: &[String],
    base: &[&str],
    max: usize,
    why_max: &str,
    bad: &mut Report<'_>,
    check: impl Fn(&str) -> Result<(), String>,
) {
    if items.len() > max {
        bad(
            at(base),
            format!("{} entries, at most {max} ({why_max})", items.len()),
        );
    }
    for (i, s) in items.iter().enumerate() {
        if let Err(why) = check(s) {
            bad(with(at(base), Seg::Index(i)), why);
        }
    }
}

fn interface(name: &str, iface: &Interface, bad: &mut Report<'_>) {
    let p = with(at(&["network", "interfaces"]), key(name));
    let name_ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if !name_ok {
        bad(
            p.clone(),
            format!("{name:?} is not an interface name (1-15 printable bytes, no '/' or ':')"),
        );
    }
    if iface.dhcp && !iface.addresses.is_empty() {
        bad(
            with(p.clone(), key("addresses")),
            "dhcp = true and static addresses: choose one".into(),
        );
    }
    if !iface.dhcp && iface.addresses.is_empty() {
        bad(
            p.clone(),
            "neither dhcp = true nor addresses: the interface would have no address".into(),
        );
    }
    for (i, a) in iface.addresses.iter().enumerate() {
        if let Err(why) = cidr(a) {
            bad(with(with(p.clone(), key("addresses")), Seg::Index(i)), why);
        }
    }
    for (i, r) in iface.routes.iter().enumerate() {
        let rp = with(with(p.clone(), key("routes")), Seg::Index(i));
        let to = if r.to == "default" {
            Ok(None)
        } else {
            cidr(&r.to).map(Some)
        };
        match (&to, ip(&r.via)) {
            (Err(why), _) => bad(
                with(rp.clone(), key("to")),
                format!("{why} (or \"default\")"),
            ),
            (_, Err(why)) => bad(with(rp.clone(), key("via")), why),
            (Ok(Some(dst)), Ok(gw)) if dst.is_ipv4() != gw.is_ipv4() => bad(
                with(rp.clone(), key("via")),
                format!("{} and {} are not of the same IP family", r.to, r.via),
            ),
            _ => {}
        }
    }
    if let Some(mtu) = iface.mtu
        && !(68..=65535).contains(&mtu)
    {
        bad(
            with(p, key("mtu")),
            format!("{mtu} is outside 68..=65535 (IPv4's minimum to the kernel's maximum)"),
        );
    }
}

/// Flags the agent sets itself: an `extra_args` entry may not override them.
pub const KUBELET_FIXED_FLAGS: &[&str] = &[
    "config",
    "kubeconfig",
    "bootstrap-kubeconfig",
    "container-runtime-endpoint",
    "hostname-override",
    "node-labels",
    "register-with-taints",
    "cert-dir",
];

fn kubelet(k: &Kubelet, bad: &mut Report<'_>) {
    let p = at(&["kubelet"]);
    if k.enabled {
        for (name, present) in [
            ("api_server", k.api_server.is_some()),
            ("ca", k.ca.is_some()),
            ("bootstrap_token", k.bootstrap_token.is_some()),
        ] {
            if !present {
                bad(
                    with(p.clone(), key(name)),
                    "required when kubelet is enabled".into(),
                );
            }
        }
    }
    if let Some(u) = &k.api_server
        && let Err(why) = url(u, &["https"])
    {
        bad(with(p.clone(), key("api_server")), why);
    }
    if let Some(ca) = &k.ca
        && let Err(why) = pem_cert(ca)
    {
        bad(with(p.clone(), key("ca")), why);
    }
    if let Some(t) = &k.bootstrap_token
        && let Err(why) = bootstrap_token(t)
    {
        bad(with(p.clone(), key("bootstrap_token")), why);
    }
    for (lk, lv) in &k.labels {
        if let Err(why) = label_key(lk).and_then(|()| label_value(lv)) {
            bad(with(with(p.clone(), key("labels")), key(lk)), why);
        }
    }
    for (i, t) in k.taints.iter().enumerate() {
        if let Err(why) = taint(t) {
            bad(with(with(p.clone(), key("taints")), Seg::Index(i)), why);
        }
    }
    for (i, d) in k.cluster_dns.iter().enumerate() {
        if let Err(why) = ip(d) {
            bad(
                with(with(p.clone(), key("cluster_dns")), Seg::Index(i)),
                why,
            );
        }
    }
    for (flag, v) in &k.extra_args {
        let fp = with(with(p.clone(), key("extra_args")), key(flag));
        let name_ok = !flag.is_empty()
            && !flag.starts_with('-')
            && flag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            bad(
                fp,
                "not a flag name (lowercase letters, digits and '-', no leading dashes)".into(),
            );
        } else if KUBELET_FIXED_FLAGS.contains(&flag.as_str()) {
            bad(
                fp,
                format!("--{flag} is set by the node itself (docs/config.md, \"kubelet\")"),
            );
        } else if v.contains(['\n', '\0']) {
            bad(fp, "a value may not hold a newline or NUL".into());
        }
    }
}

// ------------------------------------------------------------ single values

/// An RFC 1123 host name as Kubernetes takes node names: lowercase
/// dot-separated labels of `[a-z0-9-]`, none empty or longer than 63 or
/// starting or ending with `-`; at most 63 bytes in all (the kernel's limit).
pub fn hostname(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err(format!(
            "{s:?} is {} bytes, the kernel's limit is 63",
            s.len()
        ));
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{s:?} has capitals: Kubernetes node names are lowercase"
        ));
    }
    dns_name(s)
}

/// A DNS name: dot-separated RFC 1123 labels, at most 253 bytes.
pub fn dns_name(s: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if s.len() <= 253 && s.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not an RFC 1123 name (labels of letters, digits and '-', not starting or ending with '-', at most 63 each)"
        ))
    }
}

/// An IP address.
pub fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not an IP address"))
}

/// `ADDRESS/PREFIX`; the address.
pub fn cidr(s: &str) -> Result<IpAddr, String> {
    let err = || format!("{s:?} is not a CIDR (want ADDRESS/PREFIX, e.g. 10.0.0.5/24)");
    let (a, p) = s.split_once('/').ok_or_else(err)?;
    let addr: IpAddr = a.parse().map_err(|_| err())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match p.parse::<u8>() {
        Ok(n) if n <= max && !p.starts_with('+') => Ok(addr),
        _ => Err(format!("{s:?}: prefix {p:?} is not 0..={max}")),
    }
}

/// `host[:port]`, host a DNS name, IPv4 or `[IPv6]`.
fn host_port(s: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed '['")?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{h:?} is not an IPv6 address"))?;
        (None, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(h) = host
        && h.parse::<std::net::Ipv4Addr>().is_err()
    {
        dns_name(h)?;
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.starts_with('+') => {}
            _ => return Err(format!("port {p:?} is not 1..=65535")),
        }
    }
    Ok(())
}

/// `scheme://host[:port][/path]` with scheme among `schemes`.
pub fn url(s: &str, schemes: &[&str]) -> Result<(), String> {
    let want = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "{s:?} is not a URL (want {want}HOST[:PORT][/PATH])"
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(format!("{s:?}: scheme {scheme:?}, want {want}"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "{s:?}: no host (or user info, which is not accepted)"
        ));
    }
    if s.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!("{s:?}: blanks or non-ASCII in a URL"));
    }
    host_port(authority).map_err(|why| format!("{s:?}: {why}"))
}

/// One or more PEM certificates.
fn pem_cert(s: &str) -> Result<(), String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let t = s.trim();
    if !t.starts_with(BEGIN) || !t.ends_with(END) {
        return Err(format!("not a PEM certificate (want {BEGIN} ... {END})"));
    }
    let body_ok = t.lines().filter(|l| !l.starts_with("-----")).all(|l| {
        l.trim()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    });
    if body_ok {
        Ok(())
    } else {
        Err("a PEM certificate's body is base64".into())
    }
}

/// An image reference: no blanks, at most 255 bytes.
fn image_ref(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 || s.bytes().any(|b| !b.is_ascii_graphic()) {
        Err(format!(
            "{s:?} is not an image reference (e.g. registry.k8s.io/pause:3.10)"
        ))
    } else {
        Ok(())
    }
}

/// `[a-z0-9]{6}.[a-z0-9]{16}` (kubeadm's bootstrap token format).
fn bootstrap_token(s: &str) -> Result<(), String> {
    let ok_part = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match s.split_once('.') {
        Some((id, secret)) if ok_part(id, 6) && ok_part(secret, 16) => Ok(()),
        _ => Err("not a bootstrap token (want 6 and 16 of [a-z0-9], dot-separated: abcdef.0123456789abcdef)".into()),
    }
}

/// A label name part: 1-63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
fn label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// A Kubernetes label key: `[prefix/]name`, prefix a DNS subdomain.
pub fn label_key(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let prefix_ok =
        prefix.is_none_or(|p| dns_name(p).is_ok() && !p.bytes().any(|b| b.is_ascii_uppercase()));
    if prefix_ok && label_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a label key ([DNS-SUBDOMAIN/]NAME, NAME 1-63 of letters, digits, '-', '_', '.', alphanumeric at both ends)"
        ))
    }
}

/// A Kubernetes label value: empty, or as a label name.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || label_name(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a label value (empty, or 1-63 of letters, digits, '-', '_', '.', alphanumeric at both ends)"
        ))
    }
}

/// `key[=value]:Effect`.
pub fn taint(s: &str) -> Result<(), String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not a taint (want KEY[=VALUE]:EFFECT)"))?;
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return Err(format!(
            "{s:?}: effect {effect:?}, want NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
    label_key(k)?;
    label_value(v)
}

/// A duration: a number and a unit, `s`, `m` or `h` (`90s`, `5m`, `1h`),
/// several summed (`1m30s`).
pub fn duration(s: &str) -> Result<Duration, String> {
    let err = || format!("{s:?} is not a duration (e.g. 90s, 5m, 1h30m)");
    let (mut total, mut num) = (0u64, String::new());
    if s.is_empty() {
        return Err(err());
    }
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(err()),
        };
        let n: u64 = num.parse().map_err(|_| err())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

/// A `--try` window: a [`duration`] within [`MIN_TRY`]..=[`MAX_TRY`].
pub fn try_window(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < MIN_TRY || d > MAX_TRY {
        return Err(format!("try window {s:?} is outside 1s..=24h"));
    }
    Ok(d)
}
