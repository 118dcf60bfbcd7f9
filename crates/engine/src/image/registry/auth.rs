//! Registry credentials and the challenge/response of the distribution auth spec.
//!
//! A registry that wants credentials answers `401` with `WWW-Authenticate: Basic realm=…`
//! (htpasswd) or `Bearer realm="…",service="…",scope="…"` (a token server). For Basic the
//! username and password go on every request; for Bearer they (or an identity token) buy a
//! short-lived token at the realm for the scopes the operation needs, which then goes on
//! every request. Credentials come from the client: the docker CLI sends them base64url
//! JSON-encoded in `X-Registry-Auth` (`e30=`, `{}`, when it has none).

use api_types::AuthConfig;
use base64::Engine as _;

use super::error::RegistryError;

/// Decodes an `X-Registry-Auth` value: base64url (padded or not, as clients differ; plain
/// base64 is also seen) of [`AuthConfig`] JSON. Empty means anonymous.
pub fn decode_registry_auth(header: &str) -> Result<AuthConfig, RegistryError> {
    let header = header.trim();
    if header.is_empty() {
        return Ok(AuthConfig::default());
    }
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = URL_SAFE
        .decode(header)
        .or_else(|_| URL_SAFE_NO_PAD.decode(header))
        .or_else(|_| STANDARD.decode(header))
        .map_err(|e| RegistryError::InvalidAuthHeader {
            reason: e.to_string(),
        })?;
    let mut config: AuthConfig =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidAuthHeader {
            reason: e.to_string(),
        })?;
    config.expand_auth_field();
    Ok(config)
}

/// What [`AuthConfig`] holds beyond the wire format.
pub trait AuthConfigExt {
    /// Fills `username`/`password` from `auth` (`base64(user:password)`) when only that is set.
    fn expand_auth_field(&mut self);
    /// Whether there is anything to authenticate with.
    fn has_credentials(&self) -> bool;
}

impl AuthConfigExt for AuthConfig {
    fn expand_auth_field(&mut self) {
        if self.username.is_empty() && !self.auth.is_empty() {
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&self.auth) {
                if let Ok(text) = String::from_utf8(raw) {
                    if let Some((user, password)) = text.split_once(':') {
                        self.username = user.to_string();
                        self.password = password.to_string();
                    }
                }
            }
        }
    }

    fn has_credentials(&self) -> bool {
        !self.username.is_empty()
            || !self.identity_token.is_empty()
            || !self.registry_token.is_empty()
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses the first scheme of a `WWW-Authenticate` value this client speaks.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Self::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        Some(Self::Bearer {
            realm: get("realm")?,
            service: get("service"),
        })
    }
}

/// `key="value", key=value, …` of an auth challenge.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            break;
        }
        if chars.next_if_eq(&'=').is_none() {
            out.push((key, String::new()));
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_string();
        }
        out.push((key, value));
    }
    out
}

/// A token server's answer.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: String,
}

impl TokenResponse {
    pub(crate) fn bearer(&self) -> &str {
        if self.token.is_empty() {
            &self.access_token
        } else {
            &self.token
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="http://127.0.0.1:5001/token",service="registry.test",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5001/token".into(),
                service: Some("registry.test".into())
            })
        );
        assert_eq!(
            Challenge::parse("bearer realm=https://auth.example/t"),
            Some(Challenge::Bearer {
                realm: "https://auth.example/t".into(),
                service: None
            })
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn registry_auth_headers_decode() {
        assert_eq!(decode_registry_auth("e30=").unwrap(), AuthConfig::default());
        assert_eq!(decode_registry_auth("").unwrap(), AuthConfig::default());
        let json = r#"{"username":"u","password":"p?>","serveraddress":"127.0.0.1:5000"}"#;
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let cfg = decode_registry_auth(&url).unwrap();
        assert_eq!((cfg.username.as_str(), cfg.password.as_str()), ("u", "p?>"));
        let unpadded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        assert_eq!(decode_registry_auth(&unpadded).unwrap(), cfg);
        let with_auth =
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"auth":"dXNlcjpwYXNzOndvcmQ="}"#);
        let cfg = decode_registry_auth(&with_auth).unwrap();
        assert_eq!(
            (cfg.username.as_str(), cfg.password.as_str()),
            ("user", "pass:word")
        );
        assert!(decode_registry_auth("!!!").is_err());
    }
}
