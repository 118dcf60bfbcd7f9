"""docker-py 7.1.0 against berthd and a registry with Basic auth on loopback: login, push,
registry data, pull."""
import os

import docker

reg = os.environ["REGISTRY"]
client = docker.from_env()

try:
    client.login(username="carol", password="wrong", registry=reg)
    raise AssertionError("a wrong password logged in")
except docker.errors.APIError as e:
    assert e.status_code == 401, e
res = client.login(username="carol", password="pw", registry=reg)
assert res["Status"] == "Login Succeeded", res

img = client.images.get("busybox")
assert img.tag(f"{reg}/py", "1")
lines = list(client.images.push(f"{reg}/py", tag="1", stream=True, decode=True))
assert not any("error" in line for line in lines), lines
assert any("1: digest: sha256:" in (line.get("status") or "") for line in lines), lines
assert any(line.get("aux", {}).get("Tag") == "1" for line in lines), lines

data = client.images.get_registry_data(f"{reg}/py:1")
assert data.id.startswith("sha256:"), data.id
assert data.has_platform("linux/amd64") or data.has_platform("linux/arm64"), data.attrs

client.images.remove(f"{reg}/py:1")
pulled = client.images.pull(f"{reg}/py", tag="1")
assert pulled.id == img.id, (pulled.id, img.id)
assert any(d.startswith(f"{reg}/py@sha256:") for d in pulled.attrs["RepoDigests"]), pulled.attrs

try:
    client.images.pull(f"{reg}/nope", tag="1")
    raise AssertionError("pulled an image that is not there")
except docker.errors.NotFound as e:
    assert "manifest unknown" in str(e), e
print("ok")
