//! Image references as Docker reads and shows them.
//!
//! `busybox`, `busybox:latest` and `docker.io/library/busybox:latest` name the same thing:
//! the docker CLI sends the fully qualified form, users type the familiar one, and berth
//! stores the fully qualified form and shows the familiar one. The grammar and the
//! normalisation rules follow `github.com/distribution/reference` as vendored by dockerd 20.10.

use std::fmt;

/// The registry a name without one belongs to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag a name without a tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;

/// Why a reference does not parse; the messages are Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid reference format: repository name must be lowercase")]
    Uppercase,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("invalid repository name ({name}), cannot specify 64-byte hexadecimal strings")]
    HexName { name: String },
    #[error("invalid tag format")]
    InvalidTag,
    #[error("refusing to create a tag with a digest reference")]
    DigestTag,
    #[error("syntax error in pattern: {pattern}")]
    BadPattern { pattern: String },
}

/// A parsed, normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses what a user or the CLI typed (`busybox`, `localhost:5000/x:v1`,
    /// `docker.io/library/busybox@sha256:…`) into its fully qualified form.
    pub fn parse_normalized(s: &str) -> Result<Self, ReferenceError> {
        if is_full_hex(s) {
            return Err(ReferenceError::HexName {
                name: s.to_string(),
            });
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                if !valid_digest(digest) {
                    return Err(ReferenceError::InvalidFormat);
                }
                (rest, Some(digest.to_string()))
            }
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(ReferenceError::InvalidFormat);
            }
        }
        let (domain, path) = split_docker_domain(name);
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            // Docker checks the case before the grammar, so `Foo Bar` is still "lowercase".
            return Err(ReferenceError::Uppercase);
        }
        if !valid_domain(&domain) || !valid_path(&path) {
            return Err(ReferenceError::InvalidFormat);
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(Self {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The reference with `latest` added when it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// The same repository with `tag` instead of any tag or digest it had.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::InvalidTag);
        }
        Ok(Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The fully qualified repository name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The registry: `docker.io`, `127.0.0.1:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository's path within its registry: `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The same repository with `digest` instead of any tag or digest it had.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The repository name as users write it: `busybox`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The whole reference as users write it: `busybox:latest`.
    pub fn familiar_string(&self) -> String {
        self.render(&self.familiar_name())
    }

    fn render(&self, name: &str) -> String {
        let mut s = name.to_string();
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&self.name()))
    }
}

/// Whether `pattern` (a `path.Match` glob such as `busy*`) matches the reference, in its
/// familiar form with the tag or without it, as `docker images --filter reference=` does.
pub fn familiar_match(pattern: &str, reference: &Reference) -> Result<bool, ReferenceError> {
    let bad = || ReferenceError::BadPattern {
        pattern: pattern.to_string(),
    };
    if glob_match(pattern, &reference.familiar_string()).ok_or_else(bad)? {
        return Ok(true);
    }
    glob_match(pattern, &reference.familiar_name()).ok_or_else(bad)
}

/// Whether `s` is a full image ID in hex: 64 lowercase hex digits.
pub fn is_full_hex(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

/// Whether `s` is non-empty and only lowercase hex digits.
pub fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `splitDockerDomain`: the registry part and the repository path, with Docker Hub's
/// defaults filled in.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path)
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= TAG_LENGTH_MAX
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm:hex`, with the hex length the algorithm implies.
fn valid_digest(digest: &str) -> bool {
    match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64 && is_lower_hex(hex),
        Some(("sha384", hex)) => hex.len() == 96 && is_lower_hex(hex),
        Some(("sha512", hex)) => hex.len() == 128 && is_lower_hex(hex),
        _ => false,
    }
}

/// `host[:port]`, host being dot-separated `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Slash-separated components of `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_path(path: &str) -> bool {
    path.split('/').all(valid_path_component)
}

fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Go's `path.Match`: `*` (not across `/`), `?`, `[a-z]`, `[^…]` and `\` escapes.
/// `None` when the pattern is malformed.
fn glob_match(pattern: &str, name: &str) -> Option<bool> {
    let mut pattern: &[char] = &pattern.chars().collect::<Vec<_>>();
    let name_chars: Vec<char> = name.chars().collect();
    let mut name: &[char] = &name_chars;
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Some(!name.contains(&'/'));
        }
        let (t, ok) = match_chunk(chunk, name)?;
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != '/' {
                let (t, ok) = match_chunk(chunk, &name[i + 1..])?;
                if ok && (t.is_empty() || !pattern.is_empty()) {
                    name = t;
                    continue 'pattern;
                }
                i += 1;
            }
        }
        // No match; still report a malformed remainder of the pattern as Go does.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, &[])?;
        }
        return Some(false);
    }
    Some(name.is_empty())
}

fn scan_chunk(mut pattern: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    while pattern.first() == Some(&'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            '\\' if i + 1 < pattern.len() => i += 1,
            '[' => in_range = true,
            ']' => in_range = false,
            '*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches one star-free chunk at the start of `s`: `Some((rest, matched))`, `None` when
/// the chunk is malformed.
fn match_chunk<'a>(mut chunk: &[char], mut s: &'a [char]) -> Option<(&'a [char], bool)> {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            '[' => {
                let mut r = '\0';
                if !failed {
                    r = s[0];
                    s = &s[1..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == '-' {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    if s[0] == '/' {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let c = if c == '\\' {
                    chunk = &chunk[1..];
                    *chunk.first()?
                } else {
                    c
                };
                if !failed {
                    if c != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Some(if failed { (&[], false) } else { (s, true) })
}

fn get_esc(chunk: &[char]) -> Option<(char, &[char])> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some('-') | Some(']') => return None,
        Some('\\') => {
            chunk = &chunk[1..];
            chunk.first()?;
        }
        _ => {}
    }
    let r = chunk[0];
    let rest = &chunk[1..];
    if rest.is_empty() {
        return None;
    }
    Some((r, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn short_and_full_names_are_the_same_reference() {
        let short = parse("busybox").with_default_tag();
        assert_eq!(short, parse("busybox:latest"));
        assert_eq!(short, parse("docker.io/library/busybox:latest"));
        assert_eq!(short, parse("index.docker.io/library/busybox:latest"));
        assert_eq!(short.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(short.familiar_string(), "busybox:latest");
        assert_eq!(short.familiar_name(), "busybox");
        assert_eq!(short.name(), "docker.io/library/busybox");
    }

    #[test]
    fn the_cli_fully_qualified_form_shows_familiar() {
        let r = parse("docker.io/library/ck-bb").with_tag("v1").unwrap();
        assert_eq!(r.familiar_string(), "ck-bb:v1");
        assert_eq!(
            parse("docker.io/someone/app:2").familiar_string(),
            "someone/app:2"
        );
        assert_eq!(parse("someone/app").to_string(), "docker.io/someone/app");
        assert_eq!(
            parse("docker.io/library/a/b").familiar_name(),
            "library/a/b"
        );
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        let r = parse("localhost:5000/x:v1");
        assert_eq!(r.familiar_string(), "localhost:5000/x:v1");
        assert_eq!(r.name(), "localhost:5000/x");
        assert_eq!(r.tag(), Some("v1"));
        let r = parse("localhost/x");
        assert_eq!(r.familiar_name(), "localhost/x");
        let r = parse("registry.example.com/team/app");
        assert_eq!(r.familiar_string(), "registry.example.com/team/app");
        // Without a slash, `host:5000` is a name and a tag, as in Docker.
        let r = parse("localhost:5000");
        assert_eq!(r.familiar_string(), "localhost:5000");
        assert_eq!(r.tag(), Some("5000"));
    }

    #[test]
    fn digests_parse() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("busybox@{d}"));
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.tag(), None);
        assert_eq!(r.clone().with_default_tag().tag(), None);
        assert_eq!(r.familiar_string(), format!("busybox@{d}"));
        assert_eq!(
            Reference::parse_normalized("busybox@sha256:abc"),
            Err(ReferenceError::InvalidFormat)
        );
    }

    #[test]
    fn invalid_references_use_docker_messages() {
        for bad in [
            "",
            "a b",
            "busybox:",
            ":latest",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "x/y:c/d",
            "busy box:1",
        ] {
            assert_eq!(
                Reference::parse_normalized(bad).map(|r| r.to_string()),
                Err(ReferenceError::InvalidFormat),
                "{bad:?}"
            );
        }
        let e = Reference::parse_normalized("BusyBox").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name must be lowercase"
        );
        let e = Reference::parse_normalized("docker.io/Library/x").unwrap_err();
        assert_eq!(e, ReferenceError::Uppercase);
        let e = Reference::parse_normalized(&"a".repeat(64)).unwrap_err();
        assert!(e
            .to_string()
            .contains("cannot specify 64-byte hexadecimal strings"));
        let e = Reference::parse_normalized(&format!("x/{}", "a".repeat(260))).unwrap_err();
        assert_eq!(e, ReferenceError::NameTooLong);
        assert_eq!(
            parse("busybox").with_tag("bad tag"),
            Err(ReferenceError::InvalidTag)
        );
        assert!(Reference::parse_normalized(&format!("a:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn separators_in_path_components() {
        for good in ["a.b", "a_b", "a__b", "a-b", "a---b", "a0/b-c/d.e_f", "x9"] {
            assert!(Reference::parse_normalized(good).is_ok(), "{good}");
        }
        for bad in ["a._b", "_a", "a_", "a.-b"] {
            assert!(Reference::parse_normalized(bad).is_err(), "{bad}");
        }
        // Upper case is allowed in the registry host, not in the path.
        assert_eq!(
            parse("Registry.Example:5000/app").familiar_name(),
            "Registry.Example:5000/app"
        );
    }

    #[test]
    fn glob_matches_like_go_path_match() {
        let r = parse("busybox:latest");
        assert!(familiar_match("busy*", &r).unwrap());
        assert!(familiar_match("busybox", &r).unwrap());
        assert!(familiar_match("busybox:latest", &r).unwrap());
        assert!(familiar_match("*:latest", &r).unwrap());
        assert!(familiar_match("b?sybox:lat[a-z]st", &r).unwrap());
        assert!(!familiar_match("alpine*", &r).unwrap());
        assert!(!familiar_match("busy", &r).unwrap());
        let r = parse("localhost:5000/team/app:v1");
        assert!(!familiar_match("*", &r).unwrap(), "* does not cross /");
        assert!(familiar_match("localhost:5000/*/app", &r).unwrap());
        assert!(familiar_match("*/*/app:v[0-9]", &r).unwrap());
        assert!(familiar_match("*/*/app:v[^a-z]", &r).unwrap());
        assert!(familiar_match("localhost:5000/team/app:v\\1", &r).unwrap());
        assert!(matches!(
            familiar_match("[", &r),
            Err(ReferenceError::BadPattern { .. })
        ));
        assert!(familiar_match("x[", &r).is_err());
        assert_eq!(glob_match("a*b*c", "axxbyyc"), Some(true));
        assert_eq!(glob_match("a*c", "abcbc"), Some(true));
        assert_eq!(glob_match("a*", "ab/c"), Some(false));
        assert_eq!(glob_match("", ""), Some(true));
    }

    #[test]
    fn hex_helpers() {
        assert!(is_full_hex(&"0f".repeat(32)));
        assert!(!is_full_hex(&"0F".repeat(32)));
        assert!(is_lower_hex("c9a2"));
        assert!(!is_lower_hex(""));
        assert!(!is_lower_hex("xyz"));
    }
}
