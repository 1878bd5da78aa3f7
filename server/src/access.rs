//! Who may ask how much: per-client rate limits and optional per-app API keys with quotas.
//!
//! Scores are public to whoever asks, so the only bound on how fast someone can probe a
//! catalog (or load the server) is how many requests they may make. Each client address
//! (an IPv6 client by its /64) gets a token bucket; with API keys configured, every catalog
//! request must carry one (`x-api-key`), and each app gets its own bucket of queries per
//! minute on top. The keys file holds SHA-256 digests of the keys, not the keys.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A token bucket per key: `rate` tokens a second, at most `burst` saved up.
pub struct Buckets<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: std::hash::Hash + Eq> Buckets<K> {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Buckets {
            rate: per_second.max(1e-9),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Take one token, or say how long until there is one.
    pub fn take(&self, key: K) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: K, now: Instant) -> Result<(), Duration> {
        self.take_with(key, self.rate, self.burst, now)
    }

    /// Take one token from a bucket with its own rate and burst.
    fn take_with(&self, key: K, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = map.entry(key).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }

    /// Forget buckets that are full again, so idle clients cost no memory.
    pub fn prune(&self) {
        let full = Duration::from_secs_f64(self.burst / self.rate);
        let now = Instant::now();
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < full);
    }

    /// Number of clients tracked.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bucket key of a client address: IPv4 (also when mapped into IPv6) as is, IPv6 by
/// its /64, the smallest block a client usually controls.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (!0u128 << 64))),
        },
        v4 => v4,
    }
}

/// One app's key, as configured.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// The app's name (in metrics and logs; never the key).
    pub app: String,
    /// SHA-256 of the key, hex.
    pub key_sha256: String,
    /// Score requests per minute for this app.
    pub queries_per_minute: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<ApiKeyEntry>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No key, or an unknown one.
    Unauthorized,
    /// Over a limit: retry after this long.
    Limited(Duration),
}

/// The configured API keys and each app's quota.
pub struct ApiKeys {
    apps: HashMap<[u8; 32], ApiKeyEntry>,
    quotas: Buckets<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut apps: Vec<&str> = self.apps.values().map(|e| e.app.as_str()).collect();
        apps.sort_unstable();
        f.debug_struct("ApiKeys").field("apps", &apps).finish()
    }
}

impl ApiKeys {
    /// Keys from a JSON file: `{"keys": [{"app", "key_sha256", "queries_per_minute"}]}`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the API keys file {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("the API keys file {}: {e}", path.display()))
    }

    /// Keys from the JSON text of a keys file.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: KeysFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::new(file.keys)
    }

    pub fn new(entries: Vec<ApiKeyEntry>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("the API keys file lists no keys".into());
        }
        let mut apps = HashMap::new();
        for entry in entries {
            let digest = parse_digest(&entry.key_sha256).ok_or_else(|| {
                format!(
                    "app {:?}: key_sha256 must be 64 hex digits (the SHA-256 of the key)",
                    entry.app
                )
            })?;
            if entry.queries_per_minute == 0 {
                return Err(format!(
                    "app {:?}: queries_per_minute must be > 0",
                    entry.app
                ));
            }
            if apps.insert(digest, entry).is_some() {
                return Err("two apps share one key".into());
            }
        }
        Ok(ApiKeys {
            apps,
            quotas: Buckets::new(1.0 / 60.0, 1),
        })
    }

    /// The app a presented key belongs to. The lookup is by the key's SHA-256, so its
    /// timing reveals nothing usable about the configured keys.
    pub fn app(&self, key: Option<&str>) -> Result<&ApiKeyEntry, Refusal> {
        self.lookup(key).map(|(_, entry)| entry)
    }

    /// A presented key's digest and the app it belongs to.
    fn lookup(&self, key: Option<&str>) -> Result<([u8; 32], &ApiKeyEntry), Refusal> {
        let digest: [u8; 32] = Sha256::digest(key.ok_or(Refusal::Unauthorized)?.as_bytes()).into();
        let entry = self.apps.get(&digest).ok_or(Refusal::Unauthorized)?;
        Ok((digest, entry))
    }

    /// Charge one score request to the app holding `key` (its quota is keyed by the key's
    /// digest).
    pub fn charge(&self, key: Option<&str>) -> Result<&str, Refusal> {
        let (digest, entry) = self.lookup(key)?;
        // A minute's quota may be spent at once; it refills evenly over the minute.
        let per_minute = f64::from(entry.queries_per_minute);
        self.quotas
            .take_with(digest, per_minute / 60.0, per_minute, Instant::now())
            .map(|()| entry.app.as_str())
            .map_err(Refusal::Limited)
    }
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of a key, hex: what goes into the keys file.
pub fn key_digest_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Per-client limits of the service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Catalog requests per second per client address.
    pub per_second: f64,
    /// How many may come at once.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 40,
        }
    }
}

/// A bearer token (the admin endpoints', or the metrics'), kept as its SHA-256 digest. A presented token is
/// hashed and the two digests compared in constant time, so neither the comparison's time
/// nor any length trick tells anything about the token.
#[derive(Clone)]
pub struct BearerToken([u8; 32]);

/// A token must not be empty (an empty one would open what it guards).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a bearer token must not be empty; set a long random token, or none to turn the endpoint off"
)]
pub struct EmptyToken;

impl BearerToken {
    /// The token that admin requests must present.
    pub fn new(token: &str) -> Result<Self, EmptyToken> {
        // A token that cannot travel in a header as it is could never be presented.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EmptyToken);
        }
        Ok(BearerToken(Sha256::digest(token.as_bytes()).into()))
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Which header a trusted proxy writes the client's address into. Only that one is read:
/// a proxy passes other headers through as the client sent them, so reading a second one
/// would let a client name its own address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl std::str::FromStr for ForwardedHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err(format!("{s:?} is not x-forwarded-for or forwarded")),
        }
    }
}

/// The address of the client a request comes from. From a peer that is one of the
/// operator's trusted proxies, the chain of addresses in `header` is walked from the
/// right (each proxy appends the address it received the request from): the first hop
/// that is not a trusted proxy is the client. Only the hops up to it need to be readable,
/// so junk a client puts at the left changes nothing; if no readable untrusted hop is
/// found, the peer stands. From any other peer the header is ignored: a client could
/// write it.
pub fn forwarded_client(
    peer: IpAddr,
    headers: &http::HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    // Every line of the header, in order, as one list of elements.
    let mut elements: Vec<&str> = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else {
            return peer;
        };
        elements.extend(value.split(','));
    }
    for element in elements.iter().rev() {
        let hop = match header {
            ForwardedHeader::XForwardedFor => parse_node(element.trim()),
            ForwardedHeader::Forwarded => element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for")
                    .then(|| parse_node(value.trim().trim_matches('"')))?
            }),
        };
        match hop {
            Some(ip) if is_trusted(&ip) => continue,
            Some(ip) => return ip,
            // A hop a trusted proxy wrote is unreadable: the client is unknown.
            None => return peer,
        }
    }
    peer
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
}

/// A trusted proxy, from the command line: an address or a network (`10.0.0.0/8`).
pub fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or network (a.b.c.d/n)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate_and_caps_at_its_burst() {
        let b = Buckets::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take_at(1, t0).is_ok());
        }
        let wait = b.take_at(1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another client has its own bucket.
        assert!(b.take_at(2, t0).is_ok());
        // Half a second later, one token; an hour later, still only the burst.
        assert!(b.take_at(1, t0 + Duration::from_millis(500)).is_ok());
        assert!(b.take_at(1, t0 + Duration::from_millis(500)).is_err());
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take_at(1, later).is_ok());
        }
        assert!(b.take_at(1, later).is_err());
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn keys_are_matched_by_digest_and_charged_against_their_quota() {
        let keys = ApiKeys::new(vec![ApiKeyEntry {
            app: "shop-ios".into(),
            key_sha256: key_digest_hex("s3cret"),
            queries_per_minute: 2,
        }])
        .unwrap();
        assert_eq!(keys.app(None).unwrap_err(), Refusal::Unauthorized);
        assert_eq!(keys.app(Some("wrong")).unwrap_err(), Refusal::Unauthorized);
        assert_eq!(keys.charge(Some("s3cret")).unwrap(), "shop-ios");
        assert_eq!(keys.charge(Some("s3cret")).unwrap(), "shop-ios");
        match keys.charge(Some("s3cret")) {
            Err(Refusal::Limited(wait)) => assert!(wait.as_secs_f64() > 25.0, "{wait:?}"),
            other => panic!("expected the quota to bind, got {other:?}"),
        }
    }

    #[test]
    fn bad_keys_files_are_refused_with_a_reason() {
        let entry = |digest: &str, qpm| ApiKeyEntry {
            app: "a".into(),
            key_sha256: digest.into(),
            queries_per_minute: qpm,
        };
        assert!(ApiKeys::new(vec![]).is_err());
        assert!(ApiKeys::new(vec![entry("abc", 1)])
            .err()
            .unwrap()
            .contains("64 hex digits"));
        assert!(ApiKeys::new(vec![entry(&key_digest_hex("k"), 0)]).is_err());
        let d = key_digest_hex("k");
        assert!(ApiKeys::new(vec![entry(&d, 1), entry(&d, 2)]).is_err());
    }

    #[test]
    fn the_admin_token_matches_itself_only() {
        let token = BearerToken::new("s3cret-token").unwrap();
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-toke"));
        assert!(!token.matches(""));
        // The token followed by 65,536 more characters (a comparison that folds the
        // length difference into 16 bits would let such a token through) is another token.
        let padded = format!("s3cret-token{}", "~".repeat(65_536));
        assert!(!token.matches(&padded));
        assert!(matches!(BearerToken::new(""), Err(EmptyToken)));
        assert!(matches!(BearerToken::new(" padded "), Err(EmptyToken)));
        assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        use ForwardedHeader::{Forwarded, XForwardedFor};
        let trusted = vec![
            parse_proxy("10.0.0.0/8").unwrap(),
            parse_proxy(" 127.0.0.1 ").unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            h
        };
        let client =
            |peer: &str, h: &http::HeaderMap, which| forwarded_client(ip(peer), h, &trusted, which);
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.2.3")]);
        // From a trusted proxy: the last untrusted hop.
        assert_eq!(client("127.0.0.1", &xff, XForwardedFor), ip("203.0.113.9"));
        // A client's own header is not believed.
        assert_eq!(
            client("198.51.100.4", &xff, XForwardedFor),
            ip("198.51.100.4")
        );
        // Whatever a client writes at the left is skipped: the rightmost untrusted hop,
        // and junk beyond it is not even read.
        let spoofed = headers(&[("x-forwarded-for", "garbage, 1.2.3.4, 203.0.113.9")]);
        assert_eq!(
            client("10.0.0.1", &spoofed, XForwardedFor),
            ip("203.0.113.9")
        );
        // Only the configured header is read: a client's own Forwarded header, passed
        // through by an X-Forwarded-For proxy, names nothing.
        let both = headers(&[
            ("forwarded", "for=198.51.100.77"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(client("127.0.0.1", &both, XForwardedFor), ip("203.0.113.9"));
        // Forwarded (RFC 7239), quoted IPv6 with a port, over two header lines.
        let fwd = headers(&[
            ("forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https"),
            ("forwarded", "for=10.0.0.2"),
        ]);
        assert_eq!(client("10.9.9.9", &fwd, Forwarded), ip("2001:db8:cafe::17"));
        // An unreadable hop a proxy wrote, or no header, leaves the peer.
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client("127.0.0.1", &unknown, Forwarded), ip("127.0.0.1"));
        assert_eq!(
            client("127.0.0.1", &headers(&[]), XForwardedFor),
            ip("127.0.0.1")
        );
        // Every hop trusted: the peer stands.
        let inner = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(client("127.0.0.1", &inner, XForwardedFor), ip("127.0.0.1"));
        assert!(parse_proxy("not an address").is_err());
        assert_eq!(parse_node("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!("Forwarded".parse::<ForwardedHeader>(), Ok(Forwarded));
    }
}
