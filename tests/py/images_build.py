"""docker-py 7.1.0 against berthd: builds (path, custom and gzip contexts, a Dockerfile outside
the context, buildargs, target, labels), history, save and load, commit, prune, df and the
inspect fields docker-py reads."""
import gzip
import io
import os
import tarfile
import tempfile

import docker

client = docker.from_env()
api = client.api

ctx = tempfile.mkdtemp()
with open(os.path.join(ctx, "msg.txt"), "w") as f:
    f.write("py context\n")
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write(
        "FROM busybox AS first\n"
        "ARG WORD=default\n"
        "RUN echo \"$WORD\" > /word\n"
        "COPY msg.txt /msg.txt\n"
        "FROM busybox AS second\n"
        "RUN echo second > /stage\n"
    )

# images.build from a path, with buildargs, labels and a target.
image, logs = client.images.build(
    path=ctx, tag="py-build:v1", buildargs={"WORD": "fromargs"}, labels={"made.by": "docker-py"},
    target="first", rm=True,
)
lines = [l.get("stream", "") for l in logs]
assert any(l.startswith("Step 1/") for l in lines), lines
assert any("Successfully built" in l for l in lines), lines
assert image.tags == ["py-build:v1"], image.tags
assert image.labels["made.by"] == "docker-py", image.labels
out = client.containers.run("py-build:v1", ["cat", "/word", "/msg.txt"], remove=True)
assert out == b"fromargs\npy context\n", out

# The inspect fields docker-py reads.
attrs = client.images.get("py-build:v1").attrs
assert attrs["RootFS"]["Type"] == "layers" and len(attrs["RootFS"]["Layers"]) >= 2, attrs["RootFS"]
assert attrs["GraphDriver"]["Name"] == "overlay2", attrs["GraphDriver"]
assert attrs["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z", attrs["Metadata"]
assert attrs["Parent"].startswith("sha256:"), attrs["Parent"]

# api.build with a custom (plain) context, and a gzip one.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    df = b"FROM busybox\nCOPY data /data\nCMD [\"cat\", \"/data\"]\n"
    for name, data in (("Dockerfile", df), ("data", b"custom\n")):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
raw = buf.getvalue()
stream = api.build(fileobj=io.BytesIO(raw), custom_context=True, tag="py-custom:v1", decode=True)
msgs = list(stream)
assert any("aux" in m for m in msgs), msgs
assert client.containers.run("py-custom:v1", remove=True) == b"custom\n"
stream = api.build(
    fileobj=io.BytesIO(gzip.compress(raw)), custom_context=True, encoding="gzip",
    tag="py-gzip:v1", decode=True,
)
msgs = list(stream)
assert any("Using cache" in m.get("stream", "") for m in msgs), msgs
assert client.images.get("py-gzip:v1").id == client.images.get("py-custom:v1").id

# A Dockerfile outside the context.
elsewhere = tempfile.mkdtemp()
outside = os.path.join(elsewhere, "Other.Dockerfile")
with open(outside, "w") as f:
    f.write("FROM busybox\nCOPY msg.txt /elsewhere.txt\n")
image, _ = client.images.build(path=ctx, dockerfile=outside, tag="py-outside:v1")
assert client.containers.run("py-outside:v1", ["cat", "/elsewhere.txt"], remove=True) == b"py context\n"

# A failing RUN raises BuildError with dockerd's message.
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM busybox\nRUN exit 3\n")
try:
    client.images.build(path=ctx, forcerm=True)
    raise AssertionError("the build should fail")
except docker.errors.BuildError as e:
    assert "returned a non-zero code: 3" in str(e), str(e)

# history
hist = client.images.get("py-custom:v1").history()
assert hist[0]["CreatedBy"].startswith("/bin/sh -c #(nop)  CMD"), hist[0]
assert hist[0]["Id"] == client.images.get("py-custom:v1").id, hist[0]
assert any(h["Id"] == "<missing>" for h in hist) or len(hist) >= 3, hist

# save, remove, load: the same image.
img = client.images.get("py-custom:v1")
data = b"".join(img.save(named=True))
client.images.remove("py-custom:v1")
client.images.remove("py-gzip:v1")
loaded = client.images.load(data)
assert loaded[0].id == img.id, (loaded, img.id)
assert "py-custom:v1" in loaded[0].tags, loaded[0].tags

# commit
c = client.containers.run("busybox", ["sh", "-c", "echo committed > /c"], detach=True)
c.wait()
committed = c.commit(repository="py-commit", tag="v1", message="from py", changes=["CMD [\"cat\", \"/c\"]"])
assert committed.attrs["Comment"] == "from py", committed.attrs
assert client.containers.run("py-commit:v1", remove=True) == b"committed\n"
c.remove()

# prune and df
dangling = c2 = client.containers.run("busybox", ["true"], detach=True)
c2.wait()
orphan = c2.commit()
c2.remove()
pruned = client.images.prune(filters={"dangling": True})
assert {"Deleted": orphan.id} in (pruned["ImagesDeleted"] or []), pruned
assert pruned["SpaceReclaimed"] >= 0
df = client.df()
for key in ("LayersSize", "Images", "Containers", "Volumes", "BuildCache"):
    assert key in df, df.keys()
assert any("py-commit:v1" in (i["RepoTags"] or []) for i in df["Images"]), df["Images"]
print("ok")
