//! Image references the way docker's `reference.ParseNormalizedNamed` reads them:
//! `busybox` is `docker.io/library/busybox:latest`.

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// Repository path inside the registry (`library/busybox`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

const DEFAULT_DOMAIN: &str = "docker.io";

impl ImageRef {
    /// Parses a user's reference, refusing what docker refuses (upper case, empty parts).
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid reference format: {text}");
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (text, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if name.is_empty() || tag.as_deref() == Some("") {
            return Err(invalid());
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err("invalid reference format: repository name must be lowercase".into());
        }
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if path.is_empty() || !path.chars().all(valid_char) || path.split('/').any(str::is_empty) {
            return Err(invalid());
        }
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The fully qualified repository (`docker.io/library/busybox`), as the CLI sends it.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short repository name docker shows (`busybox`, `localhost:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.full_name()
        }
    }

    /// The tag, `latest` when none was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The familiar name with its tag, adding `latest` when there is neither tag nor digest
    /// (`busybox:latest`), as in "Unable to find image 'busybox:latest' locally".
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        match (&self.tag, &self.digest) {
            (Some(t), _) => {
                s.push(':');
                s.push_str(t);
            }
            (None, None) => s.push_str(":latest"),
            (None, Some(_)) => {}
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.full_name(), "docker.io/library/busybox");
        assert_eq!(r.familiar_string(), "busybox:latest");
        let r = ImageRef::parse("ck-bb:v1").unwrap();
        assert_eq!(
            (r.full_name().as_str(), r.tag_or_latest()),
            ("docker.io/library/ck-bb", "v1")
        );
        let r = ImageRef::parse("localhost:5999/ck-build:v1").unwrap();
        assert_eq!(r.full_name(), "localhost:5999/ck-build");
        assert_eq!(r.familiar_string(), "localhost:5999/ck-build:v1");
        let r = ImageRef::parse("user/app").unwrap();
        assert_eq!(
            (r.full_name().as_str(), r.familiar_name().as_str()),
            ("docker.io/user/app", "user/app")
        );
        let r = ImageRef::parse("busybox@sha256:abc").unwrap();
        assert_eq!(r.familiar_string(), "busybox@sha256:abc");
        assert!(ImageRef::parse("BusyBox").is_err());
        assert!(ImageRef::parse("a//b").is_err());
        assert!(ImageRef::parse("x:").is_err());
    }
}
