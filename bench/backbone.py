#!/usr/bin/env python3
"""Backbone benchmark: berth's container start latency and memory, beside baselines
measured in the same run (bare unshare+chroot, runc, berth-runtime alone).

Usage: python3 bench/backbone.py [--runs N] [--bin-dir target/release]

Prints medians (and p90) of `true` containers started each way, interleaved run by run so
the machine's drift hits every variant alike, with ratios against `runc run`; then berthd's
idle RSS, the shims' RSS, and the wall time of 20 parallel `berth run -d`.
Needs root. Sends no network traffic. Cleans up everything it starts.
"""
import argparse
import hashlib
import concurrent.futures
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def timed(cmd, env=None):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return (time.perf_counter() - t0) * 1000


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def make_bundle(dir_, rootfs):
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for applet in ("true", "sh"):
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    for d in ("proc", "dev", "sys", "tmp"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.makedirs(dir_, exist_ok=True)
    run(["runc", "spec", "--bundle", dir_])
    cfg_path = os.path.join(dir_, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["/bin/true"]
    cfg["process"]["terminal"] = False
    cfg["root"] = {"path": rootfs, "readonly": True}
    cfg["linux"]["cgroupsPath"] = "/berth-bench/runtime"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root")
    bins = {b: os.path.join(args.bin_dir, b) for b in ("berthd", "berth", "berth-shim", "berth-runtime")}
    if not all(os.path.exists(p) for p in bins.values()):
        run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT)
    tmp = tempfile.mkdtemp(prefix="berth-bench-")
    sock = os.path.join(tmp, "berth.sock")
    env = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}",
               DOCKER_CONFIG=os.path.join(tmp, "docker"))
    daemon = subprocess.Popen(
        [bins["berthd"], "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, "data"),
         "--exec-root", os.path.join(tmp, "exec"), "--pidfile", os.path.join(tmp, "berthd.pid"),
         "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "berthd.log"), "w"))
    running = []
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        archive = os.path.join(tmp, "busybox.tar")
        run(["bash", os.path.join(ROOT, "scripts/make-busybox-image.sh"), archive])
        run([bins["berth"], "load", "-i", archive], env=env)
        bundle = os.path.join(tmp, "bundle")
        make_bundle(bundle, os.path.join(tmp, "rootfs"))
        rootfs = os.path.join(tmp, "rootfs")

        variants = {
            "unshare+chroot (bare)": lambda i: timed(
                ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "chroot", rootfs, "/bin/true"]),
            "runc run": lambda i: timed(
                ["runc", "--root", os.path.join(tmp, "runc"), "run", "--bundle", bundle, f"bench-runc-{i}"]),
            "berth-runtime run": lambda i: timed(
                [bins["berth-runtime"], "--root", os.path.join(tmp, "brt"), "run", "--bundle", bundle, f"bench-brt-{i}"]),
            "berth run --rm (via berthd)": lambda i: timed(
                [bins["berth"], "run", "--rm", "--network", "none", "busybox", "true"], env),
        }
        if shutil.which("docker"):
            variants["docker CLI run --rm (via berthd)"] = lambda i: timed(
                ["docker", "run", "--rm", "--network", "none", "busybox", "true"], env)
        samples = {k: [] for k in variants}
        for i in range(-3, args.runs):  # three warm-up rounds
            for name, fn in variants.items():
                ms = fn(i)
                if i >= 0:
                    samples[name].append(ms)

        base = statistics.median(samples["runc run"])
        print(f"\nContainer start+exit of `true`, {args.runs} runs each, interleaved (ms)\n")
        print(f"| {'variant':<36} | {'median':>8} | {'p90':>8} | {'× runc run':>10} |")
        print(f"|{'-' * 38}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
        for name, s in samples.items():
            s = sorted(s)
            med = statistics.median(s)
            p90 = s[int(len(s) * 0.9) - 1]
            print(f"| {name:<36} | {med:8.1f} | {p90:8.1f} | {med / base:10.2f} |")

        idle = rss_kb(daemon.pid)
        out = run([bins["berth"], "ps", "-aq"], env=env).stdout.decode().split()
        assert not out, f"containers left: {out}"
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
            ids = list(ex.map(lambda i: run([bins["berth"], "run", "-d", "--network", "none", "busybox",
                                             "sleep", "300"], env=env).stdout.decode().strip(), range(20)))
        parallel = time.perf_counter() - t0
        running.extend(ids)
        shims = []
        for cid in ids:
            pid = int(run([bins["berth"], "inspect", "-f", "{{.State.Pid}}", cid], env=env).stdout)
            with open(f"/proc/{pid}/status") as f:
                ppid = next(int(l.split()[1]) for l in f if l.startswith("PPid:"))
            shims.append(rss_kb(ppid))
        busy = rss_kb(daemon.pid)
        print(f"\n| {'memory and parallelism':<36} | {'value':>12} | {'target':>10} |")
        print(f"|{'-' * 38}|{'-' * 14}|{'-' * 12}|")
        print(f"| {'berthd RSS idle':<36} | {idle / 1024:9.1f} MB | {'<= 15 MB':>10} |")
        print(f"| {'berthd RSS with 20 running':<36} | {busy / 1024:9.1f} MB | {'':>10} |")
        print(f"| {'berth-shim RSS (median of 20)':<36} | {statistics.median(shims) / 1024:9.2f} MB | {'<= 2 MB':>10} |")
        print(f"| {'20 parallel run -d, wall time':<36} | {parallel * 1000:9.0f} ms | {'< 1000 ms':>10} |")
    finally:
        if running:
            subprocess.run([bins["berth"], "rm", "-f", *running], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
        for d in ("runc", "brt"):
            for cid in os.listdir(os.path.join(tmp, d)) if os.path.isdir(os.path.join(tmp, d)) else []:
                subprocess.run(["runc" if d == "runc" else bins["berth-runtime"], "--root", os.path.join(tmp, d),
                                "delete", "--force", cid], stderr=subprocess.DEVNULL)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            parent = "berth-" + hashlib.sha256(os.path.join(tmp, "data").encode()).hexdigest()[:12]
            for sub in ("berth-bench/runtime", "berth-bench", parent):
                try:
                    os.rmdir(os.path.join("/sys/fs/cgroup", ctrl, sub))
                except OSError:
                    pass
        subprocess.run(["umount", "-R", "-l", tmp], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
