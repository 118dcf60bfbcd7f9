//! The docker CLI's configuration file, `$DOCKER_CONFIG/config.json` (else
//! `~/.docker/config.json`), for what berth takes from it as docker does: the default
//! detach keys (`detachKeys`).

use std::path::PathBuf;

/// Where the docker CLI looks for its configuration.
fn config_file() -> Option<PathBuf> {
    let dir = match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".docker"),
    };
    Some(dir.join("config.json"))
}

/// `detachKeys` from the config file: the keys a session uses without `--detach-keys`.
/// A missing or unreadable file has none, as with docker.
pub fn detach_keys() -> Option<String> {
    let text = std::fs::read(config_file()?).ok()?;
    detach_keys_of(&text)
}

fn detach_keys_of(text: &[u8]) -> Option<String> {
    let config: serde_json::Value = serde_json::from_slice(text).ok()?;
    config["detachKeys"]
        .as_str()
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_come_from_the_config() {
        assert_eq!(
            detach_keys_of(br#"{"auths":{},"detachKeys":"ctrl-x,x"}"#).as_deref(),
            Some("ctrl-x,x")
        );
        assert_eq!(detach_keys_of(br#"{"detachKeys":""}"#), None);
        assert_eq!(detach_keys_of(b"{}"), None);
        assert_eq!(detach_keys_of(b"not json"), None);
    }
}
