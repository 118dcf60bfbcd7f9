//! Container names: validation and Docker-style generated names.

use super::ContainerError;

/// Checks a user-given name and returns it with Docker's leading `/`.
pub(crate) fn validate(name: &str) -> Result<String, ContainerError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && bare.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(ContainerError::InvalidName { name: name.into() });
    }
    Ok(format!("/{bare}"))
}

const ADJECTIVES: [&str; 32] = [
    "admiring",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "busy",
    "charming",
    "clever",
    "compassionate",
    "confident",
    "cranky",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elegant",
    "epic",
    "festive",
    "focused",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "quirky",
];

const NAMES: [&str; 32] = [
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "bardeen",
    "bell",
    "borg",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermat",
    "galileo",
    "gauss",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "mccarthy",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "turing",
    "wozniak",
    "yonath",
];

/// A random `adjective_surname`, with a digit appended on retries as Docker does.
pub(crate) fn generate(seed: &[u8], attempt: u32) -> String {
    let a = ADJECTIVES[seed[0] as usize % ADJECTIVES.len()];
    let n = NAMES[seed[1] as usize % NAMES.len()];
    if attempt == 0 {
        format!("/{a}_{n}")
    } else {
        format!("/{a}_{n}{}", seed[2 + (attempt as usize % 20)] % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_docker() {
        assert_eq!(validate("web").unwrap(), "/web");
        assert_eq!(validate("/web-1.a_b").unwrap(), "/web-1.a_b");
        for bad in ["bad/name", "-x", "a", "", "with space", "é1"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        let msg = validate("bad/name").unwrap_err().to_string();
        assert_eq!(
            msg,
            "Invalid container name (bad/name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        );
    }

    #[test]
    fn generated_names_are_valid() {
        let seed: Vec<u8> = (0..32).collect();
        for attempt in 0..5 {
            validate(&generate(&seed, attempt)).unwrap();
        }
    }
}
