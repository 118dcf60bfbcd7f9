//! Detach keys: the key sequence that ends an attached terminal session without stopping
//! the container (`ctrl-p,ctrl-q` unless `--detach-keys` says otherwise).

/// The default sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [16, 17];

/// Parses a `--detach-keys` value as Docker does: comma-separated keys, each a single
/// character, `ctrl-<c>` for `c` in `@`, `a`–`z`, `[`, `\`, `]`, `^`, `_`, or `DEL`.
/// An empty value is the default sequence.
pub fn parse_detach_keys(keys: &str) -> Result<Vec<u8>, String> {
    if keys.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    let mut out = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        if key == "DEL" {
            out.push(127);
            continue;
        }
        let code = key
            .strip_prefix("ctrl-")
            .filter(|c| c.len() == 1)
            .map(|c| c.as_bytes()[0])
            .and_then(|c| match c {
                b'@' => Some(0),
                b'a'..=b'z' => Some(c - b'a' + 1),
                b'[' => Some(27),
                b'\\' => Some(28),
                b']' => Some(29),
                b'^' => Some(30),
                b'_' => Some(31),
                _ => None,
            })
            .ok_or_else(|| format!("Unknown character: '{key}'"))?;
        out.push(code);
    }
    Ok(out)
}

/// Watches input for the detach sequence, like Docker's escape proxy: bytes that may
/// start the sequence are held back; a full match detaches (the held bytes are dropped),
/// a mismatch lets them through.
#[derive(Debug, Clone)]
pub struct DetachDetector {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachDetector {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, matched: 0 }
    }

    /// Feeds input; returns what may be passed on, and whether the sequence was typed
    /// (input after it is dropped).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: what was held goes through, then this byte
            // may start a new attempt.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_docker_does() {
        assert_eq!(parse_detach_keys("").unwrap(), [16, 17]);
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(
            parse_detach_keys("ctrl-a,x,DEL,ctrl-@,ctrl-_").unwrap(),
            [1, b'x', 127, 0, 31]
        );
        assert_eq!(
            parse_detach_keys("ctrl-P").unwrap_err(),
            "Unknown character: 'ctrl-P'"
        );
        assert!(parse_detach_keys("ab").is_err());
        assert!(parse_detach_keys("ctrl-p,").is_err());
    }

    #[test]
    fn the_sequence_detaches_and_near_misses_pass() {
        let mut d = DetachDetector::new(vec![16, 17]);
        assert_eq!(d.feed(b"ls\n"), (b"ls\n".to_vec(), false));
        assert_eq!(d.feed(&[b'a', 16]), (b"a".to_vec(), false));
        assert_eq!(d.feed(&[17, b'z']), (Vec::new(), true));
        let mut d = DetachDetector::new(vec![16, 17]);
        assert_eq!(d.feed(&[16, b'x']), (vec![16, b'x'], false));
        assert_eq!(d.feed(&[16, 16, 17]), (vec![16], true));
        let mut d = DetachDetector::new(vec![b'q']);
        assert_eq!(d.feed(b"abq"), (b"ab".to_vec(), true));
        let mut d = DetachDetector::new(Vec::new());
        assert_eq!(d.feed(&[16, 17]), (vec![16, 17], false));
    }
}
