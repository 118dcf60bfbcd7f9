"""docker-py 7.1.0 against berthd: stats (one sample and a stream) and top."""
import docker

client = docker.from_env()
c = client.containers.run("busybox", ["sh", "-c", "sleep 300 & while :; do :; done"], detach=True,
                          name="py-stats", mem_limit="48m")
try:
    s = c.stats(stream=False)
    assert s["name"] == "/py-stats", s["name"]
    assert s["id"] == c.id
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    assert cpu_delta > 0 and system_delta > 0, (cpu, pre)
    percent = cpu_delta / system_delta * cpu["online_cpus"] * 100
    assert 1 < percent <= 100 * cpu["online_cpus"] + 1, percent
    assert s["memory_stats"]["limit"] == 48 * 1024 * 1024, s["memory_stats"]
    assert s["pids_stats"]["current"] == 2, s["pids_stats"]

    # A stream: read two samples, then stop reading and close.
    stream = c.stats(stream=True, decode=True)
    first = next(stream)
    second = next(stream)
    assert second["precpu_stats"] == first["cpu_stats"]
    assert second["preread"] == first["read"]
    stream.close()

    one = c.stats(stream=False, one_shot=True)
    assert one["preread"] == "0001-01-01T00:00:00Z", one["preread"]

    top = c.top()
    assert top["Titles"][:3] == ["UID", "PID", "PPID"], top["Titles"]
    cmds = [p[-1] for p in top["Processes"]]
    assert "sleep 300" in cmds, cmds
    assert any(cmd.startswith("sh -c") for cmd in cmds), cmds
    top = c.top(ps_args="-o pid,comm")
    assert top["Titles"] == ["PID", "COMMAND"], top
    assert sorted(p[1] for p in top["Processes"]) == ["sh", "sleep"], top

    c.stop(timeout=0)
    s = c.stats(stream=False)
    assert s["read"] == "0001-01-01T00:00:00Z" and s["memory_stats"] == {}, s
    try:
        c.top()
        raise AssertionError("top of a stopped container")
    except docker.errors.APIError as e:
        assert e.status_code == 409 and "is not running" in str(e), str(e)
finally:
    c.remove(force=True)
try:
    client.api.stats("py-nosuch", stream=False)
    raise AssertionError("stats of a missing container")
except docker.errors.NotFound:
    pass
print("ok")
