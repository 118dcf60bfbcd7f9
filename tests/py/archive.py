"""docker-py 7.1.0 against berthd: put_archive/get_archive, export and diff."""
import io
import tarfile

import docker

client = docker.from_env()
c = client.containers.run("busybox", ["sh", "-c", "echo base > /tmp/base; sleep 300"], detach=True, name="py-cp")
try:
    # put_archive: a tar built in memory, with a mode and owner.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"from python\n"
        info = tarfile.TarInfo("dir/hello.txt")
        info.size, info.mode, info.uid, info.gid = len(data), 0o600, 4321, 8765
        t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("dir/link")
        link.type, link.linkname = tarfile.SYMTYPE, "hello.txt"
        t.addfile(link)
    assert c.put_archive("/tmp", buf.getvalue()) is True

    # get_archive: the stream and the stat docker-py decodes from the header.
    bits, stat = c.get_archive("/tmp/dir/hello.txt")
    assert stat["name"] == "hello.txt", stat
    assert stat["size"] == 12, stat
    assert stat["mode"] == 0o600, stat
    assert stat["linkTarget"] == "", stat
    raw = b"".join(bits)
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        m = t.getmember("hello.txt")
        assert (m.uid, m.gid, m.mode) == (4321, 8765, 0o600), (m.uid, m.gid, m.mode)
        assert t.extractfile(m).read() == b"from python\n"

    bits, stat = c.get_archive("/tmp/dir")
    assert stat["mode"] & (1 << 31), stat
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
        assert sorted(t.getnames()) == ["dir", "dir/hello.txt", "dir/link"], t.getnames()
        assert t.getmember("dir/link").linkname == "hello.txt"

    _, stat = c.get_archive("/tmp/dir/link")
    assert stat["linkTarget"] == "/tmp/dir/hello.txt", stat

    try:
        c.get_archive("/nonexistent")
        raise AssertionError("no NotFound")
    except docker.errors.NotFound as e:
        assert "Could not find the file /nonexistent in container" in str(e), str(e)
    try:
        c.put_archive("/tmp/base", buf.getvalue())
        raise AssertionError("extracted into a file")
    except docker.errors.APIError as e:
        assert "extraction point is not a directory" in str(e), str(e)

    # diff: what the container changed.
    changes = {(ch["Path"], ch["Kind"]) for ch in c.diff()}
    for want in [("/tmp", 0), ("/tmp/base", 1), ("/tmp/dir", 1), ("/tmp/dir/hello.txt", 1)]:
        assert want in changes, (want, changes)

    # export: the whole file system as a tar stream.
    exported = b"".join(c.export())
    with tarfile.open(fileobj=io.BytesIO(exported)) as t:
        names = set(t.getnames())
    assert {"bin/busybox", "tmp/base", "tmp/dir/hello.txt"} <= names, sorted(names)[:20]
finally:
    c.remove(force=True)
print("ok")
