//! Pull and push against a registry on loopback, beside their floors: an image of about
//! 100 MB in 5 gzip layers in a private `docker-registry`; a cold pull (the image removed
//! first) beside the time `curl` takes to read the same blobs three at a time (the transfer
//! floor); unpacking, as `load` of an archive of the same gzip layers, in MB/s of tar beside
//! `tar -xzf` of them one after the other; a push to an empty registry, and the same push
//! again (every blob there: HEAD requests only).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use super::{interleave, median_cell, ms, Ctx, Series};
use crate::commands::bench::command::is_interrupted;
use crate::commands::bench::engine::Engine;
use crate::commands::bench::results::{Better, Cell, Row, Scenario};
use crate::commands::bench::stats;

const LAYERS: usize = 5;
/// Bytes of each layer's file: 5 × 20 MiB, about 100 MB of image; 5 × 2 MiB with `--quick`.
const LAYER_BYTES: usize = 20 << 20;
const QUICK_LAYER_BYTES: usize = 2 << 20;

/// A `docker-registry serve` the bench started; stopped (by its pid) and its storage removed
/// when dropped.
struct BenchRegistry {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl BenchRegistry {
    fn start(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                    dir.join("data").display()
                ),
            )?;
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| anyhow!("docker-registry is not installed ({e}); scripts/install-deps.sh installs it"))?;
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if TcpStream::connect(&addr).is_ok() {
                    return Ok(Self {
                        child,
                        addr,
                        dir: dir.to_path_buf(),
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("docker-registry did not start")
    }
}

impl Drop for BenchRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bench image: its gzip layers on disk and what describes them.
struct BenchImage {
    /// (gzip blob file, its digest, its size, uncompressed size).
    layers: Vec<(PathBuf, String, u64, u64)>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    /// A `docker save` archive of the same layers (gzip), for the unpack row.
    archive: PathBuf,
}

/// A pseudo-random tar layer that compresses as text does (about 3:4).
fn make_layer(n: usize, dir: &Path, bytes: usize) -> Result<(PathBuf, String, u64)> {
    let mut content = vec![0u8; bytes];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\n ";
    for chunk in content.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = ALPHABET[((x >> (i * 8)) as usize) % ALPHABET.len()];
        }
    }
    let mut tar = tar::Builder::new(Vec::with_capacity(bytes + 4096));
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    tar.append_data(&mut h, format!("data/layer{n}.txt"), &content[..])?;
    let tar = tar.into_inner()?;
    let gz_path = dir.join(format!("layer{n}.tar.gz"));
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_path)?,
        flate2::Compression::fast(),
    );
    gz.write_all(&tar)?;
    gz.finish()?.sync_all()?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    Ok((gz_path, diff_id, tar.len() as u64))
}

fn file_digest(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(h.finalize())), size))
}

fn build_image(dir: &Path, layer_bytes: usize) -> Result<BenchImage> {
    std::fs::create_dir_all(dir)?;
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for n in 0..LAYERS {
        let (gz_path, diff_id, raw) = make_layer(n, dir, layer_bytes)?;
        let (digest, size) = file_digest(&gz_path)?;
        layers.push((gz_path, digest, size, raw));
        diff_ids.push(diff_id);
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers.iter().map(|(_, d, s, _)| serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d, "size": s,
        })).collect::<Vec<_>>(),
    }))?;
    // A legacy `docker save` archive with the gzip layers as the layer files.
    let archive = dir.join("image.tar");
    let mut a = tar::Builder::new(std::fs::File::create(&archive)?);
    let config_name = format!("{}.json", &config_digest[7..]);
    append(&mut a, &config_name, &config)?;
    let mut names = Vec::new();
    for (path, digest, _, _) in &layers {
        let name = format!("{}/layer.tar", &digest[7..]);
        a.append_path_with_name(path, &name)?;
        names.push(name);
    }
    let manifest_json = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["berth-bench-load:1"], "Layers": names}
    ]))?;
    append(&mut a, "manifest.json", &manifest_json)?;
    a.into_inner()?.sync_all()?;
    Ok(BenchImage {
        layers,
        config,
        manifest,
        archive,
    })
}

fn append<W: Write>(a: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    a.append_data(&mut h, name, data)?;
    Ok(())
}

/// One HTTP/1.1 request with a body read from `body`; status and headers.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &mut dyn Read,
    len: u64,
) -> Result<(u16, Vec<(String, String)>)> {
    let mut s = TcpStream::connect(addr)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {len}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    std::io::copy(body, &mut s)?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad answer from the registry: {line:?}"))?;
    let mut out = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            out.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    Ok((status, out))
}

fn put_blob(
    reg: &BenchRegistry,
    repo: &str,
    body: &mut dyn Read,
    len: u64,
    digest: &str,
) -> Result<()> {
    let (status, headers) = http(
        &reg.addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        &mut std::io::empty(),
        0,
    )?;
    if status != 202 {
        bail!("registry answered {status} to an upload");
    }
    let loc = headers
        .iter()
        .find(|(k, _)| k == "location")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| anyhow!("no upload location"))?;
    let path = loc
        .strip_prefix(&format!("http://{}", reg.addr))
        .unwrap_or(&loc)
        .to_string();
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, _) = http(
        &reg.addr,
        "PUT",
        &format!("{path}{sep}digest={}", digest.replace(':', "%3A")),
        &[("Content-Type", "application/octet-stream")],
        body,
        len,
    )?;
    if status != 201 {
        bail!("registry answered {status} to a blob upload");
    }
    Ok(())
}

fn seed(reg: &BenchRegistry, image: &BenchImage) -> Result<()> {
    for (path, digest, size, _) in &image.layers {
        put_blob(reg, "bench", &mut std::fs::File::open(path)?, *size, digest)?;
    }
    let cd = format!("sha256:{}", hex::encode(Sha256::digest(&image.config)));
    put_blob(
        reg,
        "bench",
        &mut &image.config[..],
        image.config.len() as u64,
        &cd,
    )?;
    let (status, _) = http(
        &reg.addr,
        "PUT",
        "/v2/bench/manifests/1",
        &[(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
        &mut &image.manifest[..],
        image.manifest.len() as u64,
    )?;
    if status != 201 {
        bail!("registry answered {status} to the manifest");
    }
    Ok(())
}

/// Wall time of a command that must succeed.
fn timed(mut cmd: Command) -> Result<Duration> {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(t.elapsed())
}

/// Returns the `registry` scenario.
pub fn run(ctx: &Ctx, engines: &[Engine], tmp: &Path) -> Result<Vec<Scenario>> {
    ctx.progress
        .phase("registry: making a 100 MB image in 5 layers");
    let dir = tmp.join("registry-bench");
    let outcome = measure(ctx, engines, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn measure(ctx: &Ctx, engines: &[Engine], dir: &Path) -> Result<Vec<Scenario>> {
    let quick = ctx.plan.latency_runs <= 15;
    let rounds = if quick { 2 } else { 5 };
    let layer_bytes = if quick {
        QUICK_LAYER_BYTES
    } else {
        LAYER_BYTES
    };
    let unavailable = |reason: String| -> Vec<Scenario> {
        let row = |id: &str, label: &str, unit: &str, better| {
            Row::new(id, label, unit, better).with(
                engines
                    .iter()
                    .map(|e| (e.id, Cell::unavailable(reason.clone()))),
            )
        };
        vec![Scenario {
            id: "registry".into(),
            title: "Pull and push, loopback registry".into(),
            method: format!("Not measured: {reason}"),
            rows: vec![
                row("pull", "pull, cold", "ms", Better::Lower),
                row("unpack", "unpack", "MB/s", Better::Higher),
                row("push", "push, empty registry", "ms", Better::Lower),
                row("push-again", "push again", "ms", Better::Lower),
            ],
        }]
    };
    let image = match build_image(&dir.join("image"), layer_bytes) {
        Ok(i) => i,
        Err(e) => return Ok(unavailable(format!("cannot make the image: {e:#}"))),
    };
    let source = match BenchRegistry::start(&dir.join("source")) {
        Ok(r) => r,
        Err(e) => return Ok(unavailable(format!("{e:#}"))),
    };
    seed(&source, &image).context("cannot fill the registry")?;
    let name = format!("{}/bench:1", source.addr);
    let compressed: u64 = image.layers.iter().map(|l| l.2).sum();
    let raw: u64 = image.layers.iter().map(|l| l.3).sum();
    let raw_mb = raw as f64 / 1e6;

    // The floors: curl reading the blobs, three at a time; tar -xzf of the layers.
    ctx.progress.phase("registry: transfer and unpack floors");
    let mut curl_ms = Vec::new();
    let mut tar_mbs = Vec::new();
    for _ in 0..rounds {
        ctx.cancel.check()?;
        let mut c = Command::new("curl");
        c.args(["-sf", "--parallel", "--parallel-max", "3"]);
        for (_, digest, _, _) in &image.layers {
            c.arg("-o").arg("/dev/null");
            c.arg(format!("http://{}/v2/bench/blobs/{digest}", source.addr));
        }
        curl_ms.push(ms(timed(c)?));
        let out = dir.join("untar");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out)?;
        let t = Instant::now();
        for (path, _, _, _) in &image.layers {
            let mut c = Command::new("tar");
            c.arg("-xzf").arg(path).arg("-C").arg(&out);
            timed(c)?;
        }
        let mut sync = Command::new("sync");
        sync.arg("-f").arg(&out);
        timed(sync)?;
        tar_mbs.push(raw_mb / t.elapsed().as_secs_f64());
        std::fs::remove_dir_all(&out)?;
    }
    let curl_floor = stats::median(&curl_ms);
    let tar_floor = stats::median(&tar_mbs);

    ctx.progress.phase("registry: cold pulls");
    let pulls = interleave(ctx, engines, &[], 0, rounds, |_, e, _| {
        let _ = e.run(&["rmi", "-f", &name])?;
        let t = e.run_ok(&["pull", &name])?.elapsed;
        Ok(ms(t))
    })?;
    ctx.progress
        .phase("registry: unpack (load of the same gzip layers)");
    // The pulled image has the same layers: without it, every load unpacks them all.
    for e in engines {
        let _ = e.run(&["rmi", "-f", &name])?;
    }
    let archive = image.archive.to_string_lossy().into_owned();
    let loads = interleave(ctx, engines, &[], 0, rounds, |_, e, _| {
        let _ = e.run(&["rmi", "-f", "berth-bench-load:1"])?;
        let t = e.run_ok(&["load", "-i", &archive])?.elapsed;
        let _ = e.run(&["rmi", "-f", "berth-bench-load:1"])?;
        Ok(raw_mb / t.as_secs_f64())
    })?;
    for e in engines {
        let _ = e.run(&["pull", &name])?;
    }

    ctx.progress
        .phase("registry: pushes to an empty registry, and again");
    let mut again: Vec<Series> = engines.iter().map(|_| Ok(Vec::new())).collect();
    let mut round = 0usize;
    let pushes = interleave(ctx, engines, &[], 0, rounds, |i, e, _| {
        round += 1;
        let target = BenchRegistry::start(&dir.join(format!("push-{round}")))?;
        let tag = format!("{}/pushed:1", target.addr);
        e.run_ok(&["tag", &name, &tag])?;
        let first = e.run_ok(&["push", &tag]);
        let second = first.as_ref().ok().map(|_| e.run_ok(&["push", &tag]));
        let _ = e.run(&["rmi", &tag]);
        let first = first?;
        match second {
            Some(Ok(out)) => {
                if let Ok(s) = &mut again[i] {
                    s.push(ms(out.elapsed));
                }
            }
            Some(Err(err)) if is_interrupted(&err) => return Err(err),
            Some(Err(err)) => again[i] = Err(format!("{err:#}")),
            None => {}
        }
        Ok(ms(first.elapsed))
    })?;
    for (e, s) in engines.iter().zip(&pushes) {
        if let Ok(()) = s.as_ref().map(|_| ()) {
            let _ = e.run(&["rmi", "-f", &name]);
        }
    }

    let ratio = |s: &Series| match s {
        Ok(v) if !v.is_empty() => Cell::measured(
            stats::median(v) / curl_floor,
            v.iter().map(|x| x / curl_floor).collect(),
        ),
        Ok(_) => Cell::unavailable("no samples"),
        Err(r) => Cell::unavailable(r.clone()),
    };
    let unpack_ratio = |s: &Series| match s {
        Ok(v) if !v.is_empty() => Cell::measured(
            stats::median(v) / tar_floor,
            v.iter().map(|x| x / tar_floor).collect(),
        ),
        Ok(_) => Cell::unavailable("no samples"),
        Err(r) => Cell::unavailable(r.clone()),
    };
    let rows = vec![
        Row::new("pull", "pull, cold", "ms", Better::Lower).with(
            engines
                .iter()
                .zip(&pulls)
                .map(|(e, s)| (e.id, median_cell(s))),
        ),
        Row::new("pull-floor", "pull ÷ curl floor", "×", Better::Lower)
            .with(engines.iter().zip(&pulls).map(|(e, s)| (e.id, ratio(s)))),
        Row::new(
            "unpack",
            "unpack (load of the gzip layers)",
            "MB/s",
            Better::Higher,
        )
        .with(
            engines
                .iter()
                .zip(&loads)
                .map(|(e, s)| (e.id, median_cell(s))),
        ),
        Row::new("unpack-floor", "unpack ÷ tar -xzf", "×", Better::Higher).with(
            engines
                .iter()
                .zip(&loads)
                .map(|(e, s)| (e.id, unpack_ratio(s))),
        ),
        Row::new("push", "push, empty registry", "ms", Better::Lower).with(
            engines
                .iter()
                .zip(&pushes)
                .map(|(e, s)| (e.id, median_cell(s))),
        ),
        Row::new("push-again", "push again (HEADs only)", "ms", Better::Lower).with(
            engines
                .iter()
                .zip(&again)
                .map(|(e, s)| (e.id, median_cell(s))),
        ),
    ];
    Ok(vec![Scenario {
        id: "registry".into(),
        title: "Pull and push, loopback registry".into(),
        method: format!(
            "An image of {LAYERS} gzip layers, {:.0} MB of tar ({:.0} MB compressed), in a private docker-registry on 127.0.0.1; {rounds} rounds, engines interleaved. Pull: the image removed first, wall time of `pull`; floor: `curl` reading the same blobs three at a time, median {curl_floor:.0} ms. Unpack: `load` of a `docker save` archive of the same gzip layers, MB of tar per second; floor: `tar -xzf` of the layers one after another, then `sync -f`, median {tar_floor:.0} MB/s. Push: to a freshly started empty registry, then the same push again (every blob there).",
            raw as f64 / 1e6,
            compressed as f64 / 1e6
        ),
        rows,
    }])
}
