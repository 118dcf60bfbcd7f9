//! The tar layout of a layer, kept beside its unpacked files so that `save` (and a push) can
//! give back the very bytes the layer came as, whose sha256 is its diff ID.
//!
//! Docker keeps a `tar-split` file per layer for the same reason: a layer is stored only
//! unpacked (an overlayfs lowerdir), and a tar written afresh from those files would differ
//! in headers, order or padding, so its digest would no longer match the image config. As
//! the layer's tar stream goes by on its way to the unpacker, [`SplitRecorder`] writes down
//! every byte except the content of regular files (headers, PAX and long-name members,
//! padding, the end-of-archive blocks), and for each regular file only its name and size.
//! [`SplitLayout::write_tar`] puts the stream back together, reading file content from the
//! unpacked layer. The file is gzip-compressed; its records:
//!
//! ```text
//! b'R' <u32 len, LE> <len bytes>                  bytes of the stream as they were
//! b'F' <u64 size, LE> <u32 len, LE> <len bytes>   `size` bytes of content of the file named so
//! ```

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

/// The name of the layout file in a layer's directory.
pub(crate) const SPLIT_FILE: &str = "tar-split.gz";

const BLOCK: usize = 512;
/// Raw bytes are written out in records of at most this size.
const RAW_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a 512-byte header.
    Header,
    /// Inside an entry's content; `file` when it is a regular file's (not recorded).
    Data { left: u64, file: bool, pad: u64 },
    /// The zero padding after an entry's content.
    Pad { left: u64 },
    /// After the end-of-archive block: everything is kept as it is.
    End,
}

/// A reader that passes a tar stream through unchanged and records its layout (see the
/// module documentation) into `out`.
pub(crate) struct SplitRecorder<R, W: Write> {
    inner: R,
    out: flate2::write::GzEncoder<W>,
    raw: Vec<u8>,
    header: Vec<u8>,
    state: State,
    /// A metadata member being read (`L` long name, `x` PAX records) and its content.
    collecting: Option<(u8, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
    failed: Option<String>,
}

impl<R: Read, W: Write> SplitRecorder<R, W> {
    pub(crate) fn new(inner: R, out: W) -> Self {
        Self {
            inner,
            out: flate2::write::GzEncoder::new(out, flate2::Compression::fast()),
            raw: Vec::with_capacity(RAW_CHUNK),
            header: Vec::with_capacity(BLOCK),
            state: State::Header,
            collecting: None,
            long_name: None,
            pax_path: None,
            pax_size: None,
            failed: None,
        }
    }

    /// Writes what is pending and ends the layout file; the stream must have been read to
    /// its end.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if let Some(reason) = self.failed.take() {
            return Err(io::Error::other(reason));
        }
        self.flush_raw()?;
        self.out.finish()
    }

    fn flush_raw(&mut self) -> io::Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        self.out.write_all(b"R")?;
        self.out.write_all(&(self.raw.len() as u32).to_le_bytes())?;
        self.out.write_all(&self.raw)?;
        self.raw.clear();
        Ok(())
    }

    fn keep(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.raw.extend_from_slice(bytes);
        if self.raw.len() >= RAW_CHUNK {
            self.flush_raw()?;
        }
        Ok(())
    }

    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.state {
                State::Header => {
                    let n = (BLOCK - self.header.len()).min(bytes.len());
                    self.header.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.header.len() == BLOCK {
                        let header = std::mem::take(&mut self.header);
                        self.header_done(&header)?;
                        self.header = header;
                        self.header.clear();
                    }
                }
                State::Data { left, file, pad } => {
                    let n = (left.min(bytes.len() as u64)) as usize;
                    let chunk = &bytes[..n];
                    if !file {
                        self.keep(chunk)?;
                        if let Some((_, content)) = &mut self.collecting {
                            if content.len() < (1 << 20) {
                                content.extend_from_slice(chunk);
                            }
                        }
                    }
                    bytes = &bytes[n..];
                    let left = left - n as u64;
                    if left == 0 {
                        self.member_done();
                        self.state = if pad == 0 {
                            State::Header
                        } else {
                            State::Pad { left: pad }
                        };
                    } else {
                        self.state = State::Data { left, file, pad };
                    }
                }
                State::Pad { left } => {
                    let n = (left.min(bytes.len() as u64)) as usize;
                    self.keep(&bytes[..n])?;
                    bytes = &bytes[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Header
                    } else {
                        State::Pad { left }
                    };
                }
                State::End => {
                    self.keep(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    fn header_done(&mut self, h: &[u8]) -> io::Result<()> {
        self.keep(h)?;
        if h.iter().all(|&b| b == 0) {
            self.state = State::End;
            return Ok(());
        }
        let kind = h[156];
        let size = match self.pax_size.take() {
            Some(size) => size,
            None => match header_size(&h[124..136]) {
                Some(size) => size,
                None => {
                    // Not a tar the unpacker will accept either; stop recording sensibly.
                    self.failed = Some("a tar header has an invalid size".to_string());
                    self.state = State::End;
                    return Ok(());
                }
            },
        };
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        match kind {
            b'0' | b'\0' | b'7' => {
                let name = self
                    .long_name
                    .take()
                    .or_else(|| self.pax_path.take())
                    .unwrap_or_else(|| ustar_name(h));
                self.pax_path = None;
                if size > 0 {
                    self.flush_raw()?;
                    self.out.write_all(b"F")?;
                    self.out.write_all(&size.to_le_bytes())?;
                    self.out.write_all(&(name.len() as u32).to_le_bytes())?;
                    self.out.write_all(&name)?;
                }
                self.state = State::Data {
                    left: size,
                    file: true,
                    pad,
                };
            }
            b'L' | b'x' => {
                self.collecting = Some((kind, Vec::new()));
                self.state = State::Data {
                    left: size,
                    file: false,
                    pad,
                };
            }
            _ => {
                if kind != b'K' && kind != b'g' {
                    self.long_name = None;
                    self.pax_path = None;
                }
                self.state = State::Data {
                    left: size,
                    file: false,
                    pad,
                };
            }
        }
        if size == 0 {
            self.member_done();
            self.state = State::Header;
        }
        Ok(())
    }

    /// A metadata member has been read whole: note what it says about the next entry.
    fn member_done(&mut self) {
        let Some((kind, content)) = self.collecting.take() else {
            return;
        };
        match kind {
            b'L' => {
                let end = content
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(content.len());
                self.long_name = Some(content[..end].to_vec());
            }
            b'x' => {
                for (key, value) in pax_records(&content) {
                    match key {
                        b"path" => self.pax_path = Some(value.to_vec()),
                        b"size" => {
                            self.pax_size =
                                std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

impl<R: Read, W: Write> Read for SplitRecorder<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n])?;
        Ok(n)
    }
}

/// A header's size field: octal, or base-256 when its top bit is set.
fn header_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .filter(|&b| b != 0 && b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// A header's name, with the ustar prefix when the header has one.
fn ustar_name(h: &[u8]) -> Vec<u8> {
    let cstr = |b: &[u8]| b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())].to_vec();
    let name = cstr(&h[0..100]);
    if &h[257..263] == b"ustar\0" {
        let prefix = cstr(&h[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix;
            full.push(b'/');
            full.extend_from_slice(&name);
            return full;
        }
    }
    name
}

/// `<len> <key>=<value>\n` records.
fn pax_records(mut content: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let Some(space) = content.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&content[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space || len > content.len() {
            break;
        }
        let record = &content[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((&record[..eq], &record[eq + 1..]));
        }
        content = &content[len..];
    }
    out
}

/// One record of a layout file.
enum Record {
    Raw(Vec<u8>),
    File { size: u64, name: Vec<u8> },
}

/// A layer's recorded tar layout, and the unpacked files it refers to.
pub(crate) struct SplitLayout {
    split: PathBuf,
    diff: PathBuf,
}

impl SplitLayout {
    /// The layout of the layer in `layer_dir` (`tar-split.gz` and `diff/` in it).
    pub(crate) fn of(layer_dir: &Path) -> Self {
        Self {
            split: layer_dir.join(SPLIT_FILE),
            diff: layer_dir.join("diff"),
        }
    }

    /// Whether the layer's layout was recorded (layers stored before berth kept it have none).
    pub(crate) fn exists(&self) -> bool {
        self.split.exists()
    }

    fn records(&self) -> io::Result<impl Iterator<Item = io::Result<Record>>> {
        let file = File::open(&self.split)?;
        let mut r = BufReader::new(flate2::read::GzDecoder::new(BufReader::new(file)));
        Ok(std::iter::from_fn(move || {
            let mut tag = [0u8; 1];
            match r.read(&mut tag) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            Some(read_record(&mut r, tag[0]))
        }))
    }

    /// The size of the layer's tar stream.
    pub(crate) fn tar_size(&self) -> io::Result<u64> {
        let mut total = 0u64;
        for record in self.records()? {
            total += match record? {
                Record::Raw(bytes) => bytes.len() as u64,
                Record::File { size, .. } => size,
            };
        }
        Ok(total)
    }

    /// Writes the layer's tar stream, byte for byte as it was unpacked.
    pub(crate) fn write_tar(&self, out: &mut dyn Write) -> io::Result<()> {
        let root = rfs::open(
            &self.diff,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut out = BufWriter::with_capacity(128 * 1024, out);
        for record in self.records()? {
            match record? {
                Record::Raw(bytes) => out.write_all(&bytes)?,
                Record::File { size, name } => {
                    let shown = String::from_utf8_lossy(&name).into_owned();
                    let rel = crate::tarfs::clean(&name)
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| io::Error::other(format!("bad file name {shown:?}")))?
                        .join(&b'/');
                    let fd = rfs::openat2(
                        &root,
                        OsStr::from_bytes(&rel),
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                    )
                    .map_err(|e| io::Error::other(format!("cannot open {shown}: {e}")))?;
                    let file = File::from(fd);
                    let len = file.metadata()?.len();
                    if len != size {
                        return Err(io::Error::other(format!(
                            "{shown} is {len} bytes, the layer recorded {size}"
                        )));
                    }
                    let copied = io::copy(&mut file.take(size), &mut out)?;
                    if copied != size {
                        return Err(io::Error::other(format!("{shown} shrank while read")));
                    }
                }
            }
        }
        out.flush()
    }
}

fn read_record(r: &mut dyn Read, tag: u8) -> io::Result<Record> {
    let mut u32b = [0u8; 4];
    match tag {
        b'R' => {
            r.read_exact(&mut u32b)?;
            let mut bytes = vec![0u8; u32::from_le_bytes(u32b) as usize];
            r.read_exact(&mut bytes)?;
            Ok(Record::Raw(bytes))
        }
        b'F' => {
            let mut u64b = [0u8; 8];
            r.read_exact(&mut u64b)?;
            r.read_exact(&mut u32b)?;
            let mut name = vec![0u8; u32::from_le_bytes(u32b) as usize];
            r.read_exact(&mut name)?;
            Ok(Record::File {
                size: u64::from_le_bytes(u64b),
                name,
            })
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown tar-split record {other:#x}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testutil::TarMaker;
    use crate::image::unpack_layer;

    fn round_trip(tar: &[u8]) -> Vec<u8> {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("diff")).unwrap();
        let split = File::create(tmp.path().join(SPLIT_FILE)).unwrap();
        // Small reads, to cross every boundary.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut rec = SplitRecorder::new(Trickle(tar), split);
        unpack_layer(&mut rec, &tmp.path().join("diff")).unwrap();
        io::copy(&mut rec, &mut io::sink()).unwrap();
        rec.finish().unwrap();
        let layout = SplitLayout::of(tmp.path());
        let mut out = Vec::new();
        layout.write_tar(&mut out).unwrap();
        assert_eq!(layout.tar_size().unwrap(), out.len() as u64);
        out
    }

    #[test]
    fn a_layer_comes_back_byte_for_byte() {
        let long = format!("{}/file\0", "d".repeat(150));
        let tar = TarMaker::default()
            .dir("etc")
            .file("etc/hostname", b"berth\n")
            .file("empty", b"")
            .dir("dddd")
            .raw(
                TarMaker::header(tar::EntryType::GNULongName, "././@LongLink", 0o644),
                long.as_bytes(),
            )
            .file("truncated", &vec![7u8; 5000])
            .symlink("link", "etc/hostname")
            .hardlink("hard", "etc/hostname")
            .pax(&[("path", b"pax/named"), ("mtime", b"1.5")])
            .file("ignored-name", b"pax content")
            .file(".wh.gone", b"")
            .finish();
        assert_eq!(round_trip(&tar), tar);
    }

    #[test]
    fn sizes_parse_in_both_encodings() {
        assert_eq!(header_size(b"00000000012\0"), Some(10));
        assert_eq!(header_size(b"           \0"), Some(0));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 1;
        big[10] = 1;
        assert_eq!(header_size(&big), Some(257));
        assert_eq!(header_size(b"zz"), None);
    }
}
