"""docker-py 7.1.0 against berthd: the calls a Python user makes first."""
import docker

client = docker.from_env()
assert client.ping() is True
assert client.version()["ApiVersion"] == "1.41"

# containers.run collects the output through logs (it needs LogConfig.Type json-file).
out = client.containers.run("busybox", "echo hi", remove=True)
assert out == b"hi\n", out

# A failing command raises ContainerError with the exit status and stderr.
try:
    client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    raise AssertionError("no ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3, e.exit_status
    assert b"bad" in e.stderr, e.stderr

c = client.containers.run("busybox", ["sh", "-c", "echo ready; exec sleep 300"], detach=True, name="py-detached",
                          labels={"ck": "1"}, mem_limit="64m")
c.reload()
assert c.status == "running", c.status
assert c.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
assert [x.name for x in client.containers.list(filters={"label": "ck=1"})] == ["py-detached"]
for _ in range(100):
    if c.logs() == b"ready\n":
        break
assert c.logs() == b"ready\n", c.logs()
c.stop(timeout=1)
assert c.wait()["StatusCode"] == 137
c.remove()

try:
    client.containers.get("py-detached")
    raise AssertionError("still there")
except docker.errors.NotFound:
    pass
try:
    client.images.get("nosuch:v9")
    raise AssertionError("found a missing image")
except docker.errors.ImageNotFound:
    pass

tags = [t for i in client.images.list() for t in i.tags]
assert "busybox:latest" in tags, tags
img = client.images.get("busybox")
img.tag("pytag", "v1")
assert "pytag:v1" in client.images.get("pytag:v1").tags
client.images.remove("pytag:v1")
print("ok")
