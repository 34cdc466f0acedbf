//! The SNTP packet (RFC 4330): the client's request, and the checks and
//! arithmetic on the server's reply (offset and round-trip delay).
//!
//! Pure: no sockets and no clocks (every time is passed in), so each check
//! is tested against crafted packets. Must never accept a reply that fails
//! one of RFC 4330 §5's checks.

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const UNIX_OFFSET: i64 = 2_208_988_800;
/// A packet without authenticator.
pub const LEN: usize = 48;
/// NTP version 4, mode 3 (client), leap indicator 0.
const REQUEST_BYTE0: u8 = (4 << 3) | 3;
/// A root distance (root delay / 2 + root dispersion) above this is a
/// server too far from its reference to be trusted (NTPv4's MAXDIST).
pub const MAX_ROOT_DISTANCE_NS: i64 = 1_500_000_000;

/// Nanoseconds since the Unix epoch (wall clock).
pub type Nanos = i64;

/// A reply that failed a check; says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply of {0} bytes, shorter than 48")]
    Short(usize),
    #[error("reply in mode {0}, not 4 (server)")]
    Mode(u8),
    #[error("reply of NTP version {0}")]
    Version(u8),
    #[error("server not synchronised (leap indicator 3)")]
    Unsynchronised,
    #[error("kiss-o'-death {0:?} (stratum 0): the server asks us to stop or slow down")]
    Kiss(String),
    #[error("stratum {0} is not 1..=15")]
    Stratum(u8),
    #[error("reply does not answer our request (originate timestamp differs)")]
    NotOurs,
    #[error("reply without a receive or transmit timestamp")]
    NoTimestamp,
    #[error("root distance {0} ms is above 1500 ms")]
    RootDistance(i64),
    #[error("negative round-trip delay {0} ns (the server's clock went backwards)")]
    NegativeDelay(i64),
}

/// An NTP 64-bit timestamp from Unix nanoseconds.
pub fn to_ntp(t: Nanos) -> u64 {
    let secs = t.div_euclid(1_000_000_000) + UNIX_OFFSET;
    let frac = (t.rem_euclid(1_000_000_000) as u64) * (1u64 << 32) / 1_000_000_000;
    ((secs as u64 & 0xffff_ffff) << 32) | frac
}

/// Unix nanoseconds from an NTP 64-bit timestamp. Seconds with the top bit
/// clear are in era 1 (from 2036-02-07), as RFC 4330 §3 says to read them.
pub fn from_ntp(ts: u64) -> Nanos {
    let mut secs = (ts >> 32) as i64;
    if secs & 0x8000_0000 == 0 {
        secs += 1 << 32;
    }
    let nanos = ((ts & 0xffff_ffff) * 1_000_000_000) >> 32;
    (secs - UNIX_OFFSET) * 1_000_000_000 + nanos as i64
}

/// The request: version 4, client mode, our send time in the transmit
/// field (the server copies it to the originate field, which ties the
/// reply to this request).
pub fn request(transmit: u64) -> [u8; LEN] {
    let mut p = [0u8; LEN];
    p[0] = REQUEST_BYTE0;
    p[40..48].copy_from_slice(&transmit.to_be_bytes());
    p
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    (u64::from(u32_at(b, at)) << 32) | u64::from(u32_at(b, at + 4))
}

/// NTP short format (16.16 seconds) in nanoseconds.
fn short_ns(v: u32) -> i64 {
    (i64::from(v) * 1_000_000_000) >> 16
}

/// One checked measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// How far the server's clock is ahead of ours (negative: behind).
    pub offset_ns: i64,
    /// Round-trip delay, less the server's own processing time.
    pub delay_ns: i64,
    pub stratum: u8,
}

/// Checks `reply` to the request sent with `sent` in its transmit field
/// at our time `t1`, received at our time `t4`, and computes offset and
/// delay (RFC 4330 §5):
/// offset = ((T2 - T1) + (T3 - T4)) / 2, delay = (T4 - T1) - (T3 - T2).
pub fn parse_reply(reply: &[u8], sent: u64, t1: Nanos, t4: Nanos) -> Result<Sample, ReplyError> {
    if reply.len() < LEN {
        return Err(ReplyError::Short(reply.len()));
    }
    let (li, vn, mode) = (reply[0] >> 6, (reply[0] >> 3) & 7, reply[0] & 7);
    if mode != 4 {
        return Err(ReplyError::Mode(mode));
    }
    if !(3..=4).contains(&vn) {
        return Err(ReplyError::Version(vn));
    }
    let stratum = reply[1];
    if stratum == 0 {
        let code = String::from_utf8_lossy(&reply[12..16])
            .trim_end_matches('\0')
            .to_owned();
        return Err(ReplyError::Kiss(code));
    }
    if li == 3 {
        return Err(ReplyError::Unsynchronised);
    }
    if stratum > 15 {
        return Err(ReplyError::Stratum(stratum));
    }
    if u64_at(reply, 24) != sent {
        return Err(ReplyError::NotOurs);
    }
    let (receive, transmit) = (u64_at(reply, 32), u64_at(reply, 40));
    if receive == 0 || transmit == 0 {
        return Err(ReplyError::NoTimestamp);
    }
    let root = short_ns(u32_at(reply, 4)) / 2 + short_ns(u32_at(reply, 8));
    if root > MAX_ROOT_DISTANCE_NS {
        return Err(ReplyError::RootDistance(root / 1_000_000));
    }
    let (t2, t3) = (from_ntp(receive), from_ntp(transmit));
    let delay_ns = (t4 - t1) - (t3 - t2);
    if delay_ns < 0 {
        return Err(ReplyError::NegativeDelay(delay_ns));
    }
    Ok(Sample {
        offset_ns: ((t2 - t1) + (t3 - t4)) / 2,
        delay_ns,
        stratum,
    })
}

/// A server's reply to `request` (for the fake servers of tests): stratum
/// 2, receive time `t2`, transmit time `t3`, our clocks' tiny root
/// distance.
pub fn reply(request: &[u8; LEN], t2: Nanos, t3: Nanos) -> [u8; LEN] {
    let mut p = [0u8; LEN];
    p[0] = (4 << 3) | 4;
    p[1] = 2;
    p[2] = 6;
    p[3] = 0xec;
    p[4..8].copy_from_slice(&0x0000_0100u32.to_be_bytes());
    p[8..12].copy_from_slice(&0x0000_0100u32.to_be_bytes());
    p[12..16].copy_from_slice(&[127, 0, 0, 1]);
    p[16..24].copy_from_slice(&to_ntp(t2 - 1_000_000_000).to_be_bytes());
    p[24..32].copy_from_slice(&request[40..48]);
    p[32..40].copy_from_slice(&to_ntp(t2).to_be_bytes());
    p[40..48].copy_from_slice(&to_ntp(t3).to_be_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    /// 2026-11-30T00:00:00Z.
    const NOW: Nanos = 1_795_996_800 * S;

    #[test]
    fn timestamps_round_trip_and_eras() {
        for t in [0, NOW, NOW + 123_456_789, 2_085_978_496 * S + 5 * S] {
            let back = from_ntp(to_ntp(t));
            assert!((back - t).abs() <= 1, "{t} -> {back}");
        }
        // 1970-01-01 is NTP second 2208988800 (era 0).
        assert_eq!(to_ntp(0) >> 32, 2_208_988_800);
        // Second 0 of era 1 is 2036-02-07T06:28:16Z.
        assert_eq!(from_ntp(0), 2_085_978_496 * S);
        // Half a second is 2^31 in the fraction.
        assert_eq!(to_ntp(S / 2) & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn request_is_version_4_client_with_our_time() {
        let r = request(0x1122_3344_5566_7788);
        assert_eq!(r[0], 0x23);
        assert_eq!(&r[40..48], &0x1122_3344_5566_7788u64.to_be_bytes());
        assert!(r[1..40].iter().all(|b| *b == 0));
    }

    #[test]
    fn offset_and_delay() {
        let sent = to_ntp(NOW);
        let req = request(sent);
        // The server is 10 s ahead; 20 ms each way; 1 ms inside the server.
        let t1 = NOW;
        let t2 = NOW + 10 * S + 20_000_000;
        let t3 = t2 + 1_000_000;
        let t4 = NOW + 41_000_000;
        let s = parse_reply(&reply(&req, t2, t3), sent, t1, t4).unwrap();
        assert!((s.offset_ns - 10 * S).abs() <= 2, "{s:?}");
        assert!((s.delay_ns - 40_000_000).abs() <= 2, "{s:?}");
        assert_eq!(s.stratum, 2);
        // Behind by 5 s.
        let s = parse_reply(&reply(&req, NOW - 5 * S, NOW - 5 * S), sent, NOW, NOW).unwrap();
        assert!((s.offset_ns + 5 * S).abs() <= 2, "{s:?}");
    }

    #[test]
    fn every_check_refuses_its_crafted_packet() {
        let sent = to_ntp(NOW);
        let good = reply(&request(sent), NOW, NOW);
        let check = |p: &[u8]| parse_reply(p, sent, NOW, NOW + 1_000_000);
        assert!(check(&good).is_ok());
        let with = |f: &dyn Fn(&mut [u8; LEN])| {
            let mut p = good;
            f(&mut p);
            check(&p)
        };
        assert_eq!(check(&good[..47]), Err(ReplyError::Short(47)));
        assert_eq!(with(&|p| p[0] = (4 << 3) | 3), Err(ReplyError::Mode(3)));
        assert_eq!(with(&|p| p[0] = (4 << 3) | 5), Err(ReplyError::Mode(5)));
        assert_eq!(with(&|p| p[0] = (2 << 3) | 4), Err(ReplyError::Version(2)));
        assert_eq!(
            with(&|p| p[0] = (3 << 6) | (4 << 3) | 4),
            Err(ReplyError::Unsynchronised)
        );
        assert_eq!(
            with(&|p| {
                p[1] = 0;
                p[12..16].copy_from_slice(b"RATE");
            }),
            Err(ReplyError::Kiss("RATE".into()))
        );
        assert_eq!(with(&|p| p[1] = 16), Err(ReplyError::Stratum(16)));
        assert_eq!(with(&|p| p[31] ^= 1), Err(ReplyError::NotOurs));
        assert_eq!(with(&|p| p[40..48].fill(0)), Err(ReplyError::NoTimestamp));
        assert_eq!(with(&|p| p[32..40].fill(0)), Err(ReplyError::NoTimestamp));
        // Root dispersion of 2 s (plus half the reply's 3.9 ms root delay).
        assert_eq!(
            with(&|p| p[8..12].copy_from_slice(&(2u32 << 16).to_be_bytes())),
            Err(ReplyError::RootDistance(2001))
        );
        // 1.4 s is still within reach.
        assert!(with(&|p| p[8..12].copy_from_slice(&(0x1_6666u32).to_be_bytes())).is_ok());
        // The server says it held the request 1 s, our round trip took 1 ms.
        assert!(matches!(
            with(&|p| p[40..48].copy_from_slice(&to_ntp(NOW + S).to_be_bytes())),
            Err(ReplyError::NegativeDelay(_))
        ));
    }
}
