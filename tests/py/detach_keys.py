"""docker-py 7.1.0 against berthd: the detach keys of the docker config file
($DOCKER_CONFIG/config.json), which docker-py sends in the exec's create body as
`detachKeys`, end a terminal exec session and leave its process running."""
import json
import os

import docker

CONFIG = os.path.join(os.environ["DOCKER_CONFIG"], "config.json")

client = docker.from_env()
c = client.containers.run("busybox", ["sleep", "300"], detach=True, name="py-detach")
try:
    for keys, typed in [("ctrl-p", b"\x10"), ("ctrl-x,ctrl-y", b"\x18\x19")]:
        with open(CONFIG, "w") as f:
            json.dump({"detachKeys": keys}, f)
        # docker-py reads the config file when a client is made.
        api = docker.APIClient(base_url=os.environ["DOCKER_HOST"])
        exec_id = api.exec_create(c.id, ["sh"], stdin=True, tty=True)["Id"]
        assert api.exec_inspect(exec_id)["DetachKeys"] == keys, api.exec_inspect(exec_id)
        sock = api.exec_start(exec_id, tty=True, socket=True)
        raw = sock._sock
        raw.settimeout(30)
        raw.sendall(b"echo in$((6*7))side\r")
        seen = b""
        while b"in42side" not in seen:
            chunk = raw.recv(4096)
            assert chunk, seen
            seen += chunk
        raw.sendall(typed)
        # berthd ends the session: the stream closes, the keys never reach the shell.
        rest = b""
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            rest += chunk
        assert b"^" not in rest, rest
        sock.close()
        assert api.exec_inspect(exec_id)["Running"], api.exec_inspect(exec_id)
        api.close()
finally:
    c.remove(force=True)
print("ok")
