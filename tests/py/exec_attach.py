"""docker-py 7.1.0 against berthd: exec_run in its forms, exec inspect and errors, and
attach sockets with stdin."""
import socket
import struct
import time

import docker

client = docker.from_env()
c = client.containers.run("busybox", ["sleep", "300"], detach=True, name="py-exec",
                          environment={"FROM_RUN": "r"}, working_dir="/srv")
try:
    # exit_code and output, stdout and stderr together.
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert r.exit_code == 3, r
    assert sorted(r.output.splitlines()) == [b"err", b"out"], r.output
    # demux splits the two streams.
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert r.exit_code == 0 and r.output == (b"out\n", b"err\n"), r
    # environment, user, workdir, and the container's own settings underneath.
    r = c.exec_run("sh -c 'echo $A $FROM_RUN $(id -u) $PWD'", environment={"A": "1"},
                   user="nobody", workdir="/tmp")
    assert r == (0, b"1 r 65534 /tmp\n"), r
    r = c.exec_run("pwd")
    assert r == (0, b"/srv\n"), r
    # A terminal: raw bytes.
    r = c.exec_run("tty", tty=True)
    assert r.exit_code == 0 and r.output == b"/dev/pts/0\r\n", r
    # A missing program: 127 and runc's words in the output.
    r = c.exec_run("nosuchprogram")
    assert r.exit_code == 127, r
    assert b'executable file not found in $PATH' in r.output, r.output
    # stream: a generator, the exit code comes from inspect afterwards.
    r = c.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; done"], stream=True)
    assert r.exit_code is None
    assert b"".join(r.output) == b"1\n2\n3\n"
    # detach: runs on its own; inspect shows it.
    exec_id = client.api.exec_create(c.id, ["sh", "-c", "sleep 0.3; exit 4"])["Id"]
    assert client.api.exec_start(exec_id, detach=True) == ""
    info = client.api.exec_inspect(exec_id)
    assert info["Running"] is True and info["ContainerID"] == c.id, info
    for _ in range(100):
        info = client.api.exec_inspect(exec_id)
        if not info["Running"]:
            break
        time.sleep(0.05)
    assert info["ExitCode"] == 4, info
    # stdin through the raw socket, its half-close as the end of input.
    exec_id = client.api.exec_create(c.id, ["sh", "-c", "cat; echo done"], stdin=True)["Id"]
    sock = client.api.exec_start(exec_id, socket=True)
    raw = sock._sock
    raw.sendall(b"in-through-socket\n")
    raw.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    out = b""
    while data:
        kind, size = struct.unpack(">BxxxL", data[:8])
        out += data[8:8 + size]
        data = data[8 + size:]
    assert out == b"in-through-socket\ndone\n", out
    assert client.api.exec_inspect(exec_id)["ExitCode"] == 0
    # Errors: a paused container, an unknown exec.
    c.pause()
    try:
        c.exec_run("true")
        raise AssertionError("exec in a paused container")
    except docker.errors.APIError as e:
        assert e.status_code == 409 and "is paused" in str(e), e
    c.unpause()
    try:
        client.api.exec_inspect("nosuch")
        raise AssertionError("no such exec")
    except docker.errors.NotFound:
        pass
finally:
    c.remove(force=True)

# attach_socket with stdin to a container started with stdin open.
c = client.containers.run("busybox", ["sh", "-c", "read line; echo got $line"], detach=True,
                          stdin_open=True, name="py-attach")
try:
    s = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    s._sock.sendall(b"hello\n")
    data = b""
    s._sock.settimeout(30)
    while b"got hello" not in data:
        chunk = s._sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert b"got hello\n" in data, data
    assert c.wait(timeout=30)["StatusCode"] == 0
    assert c.logs() == b"got hello\n"
    # logs=1 replays the log; without stream that is all.
    assert c.attach(logs=True, stream=False) == b"got hello\n"
finally:
    c.remove(force=True)

print("ok")
