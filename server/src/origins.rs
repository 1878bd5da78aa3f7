//! The web origins whose pages may call the API from a browser (CORS, applied by
//! [`crate::http::cors`]): the operator's list, each origin checked to be in the form a
//! browser's `Origin` header has, so that a typo is refused at start-up rather than
//! silently matching nothing.

/// The web origins whose pages may call the API from a browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// None (the default): no CORS headers; only same-origin pages and non-browser
    /// clients can read the answers.
    #[default]
    None,
    /// Any origin (`*`): the API is public, every page may call it.
    Any,
    /// These origins, each as a browser sends it (`https://shop.example`).
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Whether a page of `origin` (its `Origin` header) may read the API's answers.
    pub fn allows(&self, origin: &[u8]) -> bool {
        match self {
            AllowedOrigins::None => false,
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o.as_bytes() == origin),
        }
    }

    /// Parse the operator's list: `*` alone, or origins written as a browser sends them
    /// (scheme `http` or `https`, the host in lower case, a port only when it is not the
    /// scheme's default, no path). An empty list allows none.
    pub fn parse(origins: &[String]) -> Result<Self, String> {
        if origins.is_empty() {
            return Ok(AllowedOrigins::None);
        }
        if origins.iter().any(|o| o == "*") {
            if origins.len() > 1 {
                return Err("`*` allows every origin: give it alone".into());
            }
            return Ok(AllowedOrigins::Any);
        }
        origins
            .iter()
            .map(|o| parse_origin(o))
            .collect::<Result<_, _>>()
            .map(AllowedOrigins::List)
    }
}

/// One origin, checked to be in the form a browser's `Origin` header has.
fn parse_origin(origin: &str) -> Result<String, String> {
    let bad = |why: &str| format!("allowed origin {origin:?}: {why}");
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or_else(|| bad("write it as scheme://host[:port], e.g. https://shop.example"))?;
    if scheme != "https" && scheme != "http" {
        return Err(bad("the scheme must be https or http"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace)
    {
        return Err(bad(
            "an origin has no path, query, user or trailing slash (https://shop.example)",
        ));
    }
    if rest != rest.to_ascii_lowercase() {
        return Err(bad("browsers send the host in lower case"));
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    if rest.ends_with(default_port) {
        return Err(bad("browsers leave out the scheme's default port: drop it"));
    }
    // An IPv6 host is bracketed: its port follows the bracket.
    let split_at = rest.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match rest[split_at..].split_once(':') {
        Some((_, port)) => (&rest[..rest.len() - port.len() - 1], Some(port)),
        None => (rest, None),
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
    }
    if !origin.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("only visible ASCII characters"));
    }
    Ok(origin.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<AllowedOrigins, String> {
        AllowedOrigins::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn origins_in_a_browsers_form_are_allowed() {
        assert_eq!(parse(&[]).unwrap(), AllowedOrigins::None);
        assert_eq!(parse(&["*"]).unwrap(), AllowedOrigins::Any);
        let list = parse(&["https://shop.example", "http://127.0.0.1:8081"]).unwrap();
        assert_eq!(
            list,
            AllowedOrigins::List(vec![
                "https://shop.example".to_string(),
                "http://127.0.0.1:8081".to_string(),
            ])
        );
        assert!(parse(&["http://[::1]:8081"]).is_ok());
    }

    #[test]
    fn origins_a_browser_never_sends_are_refused_with_the_reason() {
        for (origin, why) in [
            ("shop.example", "scheme://host"),
            ("ftp://shop.example", "https or http"),
            ("https://shop.example/", "no path"),
            ("https://shop.example/app", "no path"),
            ("https://user@shop.example", "no path"),
            ("https://Shop.example", "lower case"),
            ("https://shop.example:443", "default port"),
            ("http://shop.example:80", "default port"),
            ("https://shop.example:0", "port"),
            ("https://shop.example:x", "port"),
            ("https://", "no path"),
        ] {
            let e = parse(&[origin]).unwrap_err();
            assert!(e.contains(why), "{origin}: {e}");
        }
        assert!(parse(&["*", "https://shop.example"])
            .unwrap_err()
            .contains("alone"));
    }
}
