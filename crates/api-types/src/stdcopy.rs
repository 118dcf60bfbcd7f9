//! Docker's multiplexed stream framing ("stdcopy"): an 8-byte header
//! `[stream, 0, 0, 0, len_be32]` before each payload.

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamKind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// An error from the daemon, which clients show as an error.
    System = 3,
}

impl StreamKind {
    /// The stream for a header byte, if it is one of the four Docker defines.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Stdin),
            1 => Some(Self::Stdout),
            2 => Some(Self::Stderr),
            3 => Some(Self::System),
            _ => None,
        }
    }
}

/// Builds one frame holding `payload`.
pub fn frame(kind: StreamKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Incremental decoder: feed bytes as they arrive, take out whole frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next complete frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<(StreamKind, Vec<u8>)>, String> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let kind = StreamKind::from_byte(self.buf[0])
            .ok_or_else(|| format!("unrecognized stream type {}", self.buf[0]))?;
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let payload = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_dockerd_bytes() {
        assert_eq!(
            frame(StreamKind::Stdout, b"hi\n"),
            b"\x01\0\0\0\0\0\0\x03hi\n"
        );
    }

    #[test]
    fn decoder_waits_for_whole_frames() {
        let mut d = Decoder::default();
        let mut bytes = frame(StreamKind::Stderr, b"oops");
        bytes.extend(frame(StreamKind::Stdout, b"ok"));
        d.push(&bytes[..5]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&bytes[5..]);
        assert_eq!(
            d.next_frame().unwrap(),
            Some((StreamKind::Stderr, b"oops".to_vec()))
        );
        assert_eq!(
            d.next_frame().unwrap(),
            Some((StreamKind::Stdout, b"ok".to_vec()))
        );
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&[9, 0, 0, 0, 0, 0, 0, 0]);
        assert!(d.next_frame().is_err());
    }
}
