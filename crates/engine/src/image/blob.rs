//! Content addressing and the plumbing around blobs: digests, compression sniffing and
//! scratch directories under the store's `tmp/`.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::error::ImageError;
use super::reference::is_lower_hex;

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex of a `sha256:<64 hex>` digest, or `None` if it is not one.
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && is_lower_hex(h))
}

/// The 12-character short form dockerd prints (`stringid.TruncateID`).
pub(crate) fn short_id(id: &str) -> &str {
    let id = id.split_once(':').map_or(id, |(_, hex)| hex);
    &id[..id.len().min(12)]
}

/// A reader that hashes everything read through it.
pub(crate) struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> DigestReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Reads the stream to its end, then gives its `sha256:` digest.
    pub(crate) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{}", hex::encode(self.hasher.finalize())))
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// How a stream is compressed, from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else if head.starts_with(b"BZh") {
            Self::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Self::Xz
        } else {
            Self::None
        }
    }
}

/// The uncompressed content of `reader`, which may be a plain, a gzip-compressed (also
/// multi-member) or a zstd-compressed (also multi-frame) stream; other compressions are
/// refused by name.
pub(crate) fn decompressed<'a>(reader: &'a mut dyn Read) -> Result<Box<dyn Read + 'a>, ImageError> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ImageError::archive(format!("cannot read the stream: {e}"))),
        }
    }
    let head = head[..n].to_vec();
    let compression = Compression::detect(&head);
    let stream = io::Cursor::new(head).chain(reader);
    match compression {
        Compression::None => Ok(Box::new(stream)),
        Compression::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(stream))),
        Compression::Zstd => Ok(Box::new(ZstdFrames::new(io::BufReader::new(stream))?)),
        Compression::Bzip2 => Err(ImageError::UnsupportedCompression { format: "bzip2" }),
        Compression::Xz => Err(ImageError::UnsupportedCompression { format: "xz" }),
    }
}

/// A zstd stream of one or more frames, decoded (`ruzstd` decodes one frame at a time).
struct ZstdFrames<R: io::BufRead> {
    frame: ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>,
}

impl<R: io::BufRead> ZstdFrames<R> {
    fn new(source: R) -> Result<Self, ImageError> {
        let frame = ruzstd::decoding::StreamingDecoder::new(source)
            .map_err(|e| ImageError::archive(format!("invalid zstd stream: {e}")))?;
        Ok(Self { frame })
    }
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.frame.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This frame is done; another may follow.
            if self.frame.get_mut().fill_buf()?.is_empty() {
                return Ok(0);
            }
            let source = self.frame.get_mut();
            let mut decoder = ruzstd::decoding::FrameDecoder::new();
            decoder.init(&mut *source).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("invalid zstd stream: {e}"),
                )
            })?;
            self.frame.decoder = decoder;
        }
    }
}

/// A directory under the store's `tmp/` that is removed when dropped unless kept (moved
/// into place).
pub(crate) struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    /// Creates `<tmp>/<what>-<pid>-<n>`.
    pub(crate) fn new(tmp: &Path, what: &str) -> Result<Self, ImageError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = tmp.join(format!("{what}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path, keep: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(ImageError::io(
                        format!("cannot create {}", path.display()),
                        e,
                    ))
                }
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory has been renamed into place: do not remove it.
    pub(crate) fn keep(mut self) {
        self.keep = true;
    }

    /// A stand-in that names nothing and removes nothing.
    pub(crate) fn placeholder() -> Self {
        Self {
            path: PathBuf::new(),
            keep: true,
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = crate::fsutil::remove_tree(&self.path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %crate::error::Chain(&e), "cannot remove scratch directory");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn digests_and_short_ids() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let d = DigestReader::new(&b"abc"[..]);
        assert_eq!(
            d.finish().unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert!(sha256_hex(&sha256_digest(b"x")).is_some());
        assert!(sha256_hex("sha256:abc").is_none());
        assert!(sha256_hex(&format!("sha512:{}", "a".repeat(64))).is_none());
    }

    #[test]
    fn plain_and_gzip_streams_decompress() {
        let mut plain: &[u8] = b"hello tar";
        let mut out = String::new();
        decompressed(&mut plain)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello tar");

        // Two gzip members, as `cat a.gz b.gz` makes.
        let mut gz = Vec::new();
        for part in ["hello ", "gzip"] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part.as_bytes()).unwrap();
            gz.extend(e.finish().unwrap());
        }
        let mut out = String::new();
        decompressed(&mut &gz[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello gzip");

        let mut empty: &[u8] = b"";
        assert_eq!(
            decompressed(&mut empty).unwrap().read(&mut [0; 4]).unwrap(),
            0
        );
        // zstd, two frames, as `cat a.zst b.zst` makes.
        let mut zst = Vec::new();
        for part in ["hello ", "zstd"] {
            zst.extend(ruzstd::encoding::compress_to_vec(
                part.as_bytes(),
                ruzstd::encoding::CompressionLevel::Fastest,
            ));
        }
        let mut out = String::new();
        decompressed(&mut &zst[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello zstd");
        let mut bad_zstd: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff];
        let failed = match decompressed(&mut bad_zstd) {
            Err(e) => e.to_string(),
            Ok(mut r) => r.read_to_end(&mut Vec::new()).unwrap_err().to_string(),
        };
        assert!(!failed.is_empty());
        let mut xz: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0, 1];
        assert!(matches!(
            decompressed(&mut xz).err().unwrap(),
            ImageError::UnsupportedCompression { format: "xz" }
        ));
    }

    #[test]
    fn scratch_dirs_vanish_unless_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ScratchDir::new(tmp.path(), "x").unwrap();
        let b = ScratchDir::new(tmp.path(), "x").unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.path().join("f"), b"").unwrap();
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        drop(a);
        b.keep();
        assert!(!pa.exists());
        assert!(pb.exists());
    }
}
