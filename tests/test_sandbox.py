"""The Docker-free sandbox: state persists in its shell, writes stay inside, hostile commands end within
their limits and leave nothing behind, the host's secrets stay out. Needs root (skipped elsewhere)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genpi.envs.sandbox import ENV, Sandbox, SandboxError, SandboxLimits, check_sandbox

REPO = Path(__file__).resolve().parents[1]

try:
    check_sandbox()
    WHY_NOT = ""
except SandboxError as e:
    WHY_NOT = str(e)
pytestmark = pytest.mark.skipif(bool(WHY_NOT), reason=f"no sandbox on this machine: {WHY_NOT}")


def in_namespace(ns: str) -> list[int]:
    """Host pids of the live processes in PID namespace `ns`."""
    found = []
    for d in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if os.readlink(d / "ns/pid") == ns and "Z" not in (d / "stat").read_text().rsplit(")", 1)[1][:3]:
                found.append(int(d.name))
    return found


def cgroup_of(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    raise AssertionError(f"no {controller} cgroup")


@contextlib.contextmanager
def sandbox(**limits):
    """A started sandbox; afterwards, not one of its processes or cgroups is left."""
    sb = Sandbox(SandboxLimits(**limits)).start()
    ns = os.readlink(f"/proc/{sb.root_pid}/ns/pid")
    cgroups = [cgroup_of(sb.root_pid, c) for c in ("memory", "pids")]
    try:
        yield sb
    finally:
        sb.close()
    assert in_namespace(ns) == [], "processes of the sandbox outlived close()"
    assert not any(cg.exists() for cg in cgroups), "close() left its cgroups"


def test_shell_keeps_state_and_survives_odd_input():
    with sandbox() as sb:
        assert sb.shell("cd /etc; X=5; f() { echo fun-$1; }").exit_code == 0
        r = sb.shell("pwd; echo x=$X; f a")
        assert r.output == "/etc\nx=5\nfun-a\n" and r.exit_code == 0
        sb.shell("sleep 100 &")
        assert "sleep 100" in sb.shell("jobs").output
        r = sb.shell('echo "abc', timeout=2)
        assert not r.timed_out and r.exit_code != 0 and "EOF" in r.output
        assert sb.shell("echo next").output == "next\n"
        r = sb.shell("cat; read v; echo read=$?", timeout=2)  # stdin is /dev/null: nothing waits
        assert not r.timed_out and r.output == "read=1\n"
        assert sb.shell("false").exit_code == 1
        r = sb.shell("exit 3")
        assert r.exit_code == 3 and "a new one was started" in r.output
        assert sb.shell("echo again; pwd").output == "again\n/root\n"


def test_run_fresh_processes():
    with sandbox(output_cap=1000) as sb:
        r = sb.run(["bash", "-c", 'echo "$1-$2"; echo err >&2; exit 3', "--", "p1", "p2"])
        assert (r.output, r.exit_code) == ("p1-p2\nerr\n", 3)
        r = sb.run(["python3", "-c", "import sys; print(sys.argv[1:]); sys.exit(5)", "p1"])
        assert (r.output, r.exit_code) == ("['p1']\n", 5)
        assert sb.run(["cat"], stdin="hello\n").output == "hello\n"
        assert sb.run(["pwd"]).output == "/root\n"
        env = dict(line.split("=", 1) for line in sb.run(["env"]).output.splitlines())
        assert env == ENV
        assert sb.run(["no-such-command"]).exit_code == 127
        t = time.monotonic()
        r = sb.run(["bash", "-c", "sleep 101 & setsid sleep 102 & sleep 103"], timeout=0.5)
        assert r.timed_out and r.exit_code is None and time.monotonic() - t < 2
        cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes() for p in in_namespace(
            os.readlink(f"/proc/{sb.root_pid}/ns/pid"))]
        assert not any(b"sleep\x0010" in c for c in cmdlines), "the time limit left processes"
        r = sb.run(["yes"], timeout=0.5)
        assert r.timed_out and r.truncated and len(r.output) <= 1000



def test_run_survives_the_clock_passing_the_deadline_mid_loop(monkeypatch):
    """The deadline can pass between the loop's check and the wait that follows (a busy machine):
    the command still ends as timed out, no negative wait. A clock that jumps 0.3 s a reading makes
    it happen every time."""
    import genpi.envs.sandbox as mod

    with sandbox() as sb:
        real, jumps = time.monotonic, iter(range(1, 10**6))
        monkeypatch.setattr(mod.time, "monotonic", lambda: real() + 0.3 * next(jumps))
        try:
            r = sb.run(["yes"], timeout=0.5)
        finally:
            monkeypatch.setattr(mod.time, "monotonic", real)
        assert r.timed_out and r.exit_code is None


def snapshot() -> dict:
    files = ["/etc/passwd", "/etc/shadow", "/etc/group", "/usr/bin/env"]
    state = {f: (os.stat(f).st_mtime_ns, hashlib.sha256(Path(f).read_bytes()).hexdigest()) for f in files}
    state["/home"] = sorted(os.listdir("/home"))
    state["/root"] = sorted(os.listdir("/root"))
    state["newtool"] = os.path.exists("/usr/bin/newtool")
    return state


def test_writes_stay_inside():
    before = snapshot()
    with sandbox() as sb:
        r = sb.shell("useradd -m bob && echo x > /root/x && echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd && "
                     "printf '#!/bin/sh\\necho newtool-ran\\n' > /usr/bin/newtool && chmod +x /usr/bin/newtool && "
                     "newtool && id bob && rm -rf /home && ls /root && ! ls /home")
        assert r.exit_code == 0 and "newtool-ran" in r.output and "uid=" in r.output and "x\n" in r.output, r.output
        with sandbox() as other:  # a second sandbox, at the same time, sees none of it
            r = other.run(["bash", "-c", "id bob; ls /usr/bin/newtool /root/x; grep -c evil /etc/passwd; ls -d /home"])
            assert "no such user" in r.output and "/home\n" in r.output and "newtool-ran" not in r.output
            assert r.output.count("No such file") == 2, r.output
    assert snapshot() == before


def test_secrets_stay_out(monkeypatch):
    value, name = secrets.token_hex(12), secrets.token_hex(6)
    planted = [Path(f"/root/genpi-secret-{name}"), REPO / "tests" / f"genpi-secret-{name}.tmp"]
    monkeypatch.setenv("GENPI_TEST_SECRET", value)
    try:
        for f in planted:
            f.write_text(value)
        with sandbox() as sb:
            for f in planted:
                assert sb.run(["cat", str(f)]).exit_code != 0
            r = sb.shell(f"env; cat /proc/[0-9]*/environ; ls -A /root /work /home /tmp {sys.prefix}; "
                         "cat /etc/shadow /etc/gshadow; ls /etc/ssh /etc/ssl/private")
            assert value not in r.output and "GENPI_TEST_SECRET" not in r.output
            assert "ssh_host_" not in r.output and "/etc/ssl/private:\n" in r.output
            shadow = sb.run(["cat", "/etc/shadow", "/etc/gshadow"]).output.splitlines()
            assert shadow and {line.split(":")[1] for line in shadow} <= {"*", "!*"}  # no password hashes
            assert sb.run(["useradd", "carol"]).exit_code == 0
    finally:
        for f in planted:
            f.unlink(missing_ok=True)


def test_hidden_paths_nest_and_skip_system_and_masked_folders():
    from genpi.envs.sandbox import _hidden_paths
    # a CI checkout at /check/work/main with its venv inside: one hidden folder, not two nested ones
    got = _hidden_paths([Path("/check/work/main"), Path("/check/work/main/.venv"), Path("/usr/local"),
                         Path("/work/main/.venv"), Path("/checkout2")])
    assert got == ["check/work/main", "checkout2"]


def test_root_inside_cannot_reach_past_the_namespaces():
    with sandbox() as sb:
        r = sb.shell("mount -t tmpfs x /mnt || echo no-mount; mknod /tmp/disk b 8 0 || echo no-mknod; "
                     "echo x > /proc/sys/kernel/hostname || echo no-sysctl; ls /sys | wc -l; hostname")
        assert all(w in r.output for w in ("no-mount", "no-mknod", "no-sysctl")), r.output
        assert r.output.endswith("0\nsandbox\n"), r.output
        status = sb.run(["cat", "/proc/self/status"]).output
        assert not int(re.search(r"CapBnd:\s*(\w+)", status).group(1), 16) & (1 << 21)  # CAP_SYS_ADMIN


def test_no_network():
    with sandbox() as sb:
        r = sb.run(["python3", "-c", "import socket; socket.create_connection(('1.1.1.1', 53), 2)"], timeout=5)
        assert r.exit_code not in (0, None), r.output
        devices = [line.split(":")[0].strip() for line in sb.run(["cat", "/proc/net/dev"]).output.splitlines()]
        assert [d for d in devices if "|" not in d] == ["lo"]


def test_fork_bomb_is_stopped_by_the_pids_limit():
    with sandbox(pids=64) as sb:
        sb.shell(":(){ :|:& };:", timeout=2)
        pids = cgroup_of(sb.root_pid, "pids")
        deadline = time.monotonic() + 5
        while "max 0" in (pids / "pids.events").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "max 0" not in (pids / "pids.events").read_text(), "the fork bomb never met the limit"
        assert int((pids / "pids.current").read_text()) <= 64
        assert "alive" in sb.shell("echo alive", timeout=3).output


def test_endless_output_and_sleep_end_at_their_time_limit():
    with sandbox(output_cap=5000) as sb:
        t = time.monotonic()
        r = sb.shell("yes", timeout=1)
        assert r.timed_out and r.exit_code is None and r.truncated and 0 < len(r.output) <= 5000
        r = sb.shell("sleep 1000", timeout=0.5)
        assert r.timed_out and r.exit_code is None
        r = sb.shell("trap '' INT; sleep 1000", timeout=0.5)  # Ctrl-C ignored: the group is killed
        assert r.timed_out
        assert time.monotonic() - t < 6
        assert sb.shell("echo still-here").output.endswith("still-here\n")


def test_memory_limit_kills_a_big_allocation():
    with sandbox() as sb:
        assert (cgroup_of(sb.root_pid, "memory") / "memory.limit_in_bytes").read_text().strip() == str(1 << 30)
        r = sb.run(["python3", "-c", "b = bytearray(2 * 1024**3); print('allocated')"], timeout=20)
        assert r.exit_code == 137 and "allocated" not in r.output, r
        assert sb.shell("echo fine").output == "fine\n"


def test_rm_rf_root_inside_leaves_the_host_alone():
    marker = Path(f"/var/cache/genpi-marker-{secrets.token_hex(6)}")
    marker.write_text("keep me")
    before = snapshot()
    try:
        with sandbox() as sb:
            r = sb.shell(f"rm -rf {marker} /etc/passwd /usr/bin/env; ls {marker} /etc/passwd", timeout=3)
            assert r.output.count("No such file") == 2, r.output
            sb.shell("rm -rf --no-preserve-root /", timeout=2)
        assert marker.read_text() == "keep me" and snapshot() == before
    finally:
        marker.unlink()


def test_kill_everything_inside_spares_the_host():
    host_sleep = subprocess.Popen(["sleep", "30"])
    try:
        with sandbox() as sb:
            sb.shell("sleep 100 &")
            r = sb.shell("kill -9 -1; echo survived")
            assert "survived" in r.output
            assert sb.shell("echo ok").output.endswith("ok\n")  # after bash's "[1]+ Killed  sleep 100"
        assert host_sleep.poll() is None
    finally:
        host_sleep.kill()
        host_sleep.wait()


CHILD = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from genpi.envs.sandbox import Sandbox
sb = Sandbox().start()
sb.shell("sleep 1000 &")
print(sb.root_pid, os.readlink(f"/proc/{sb.root_pid}/ns/pid"), flush=True)
time.sleep(60)
"""


def test_nothing_outlives_a_killed_harness():
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(REPO)], stdout=subprocess.PIPE, text=True)
    root_pid, ns = child.stdout.readline().split()
    cgroup = cgroup_of(int(root_pid), "pids")
    assert len(in_namespace(ns)) >= 3  # PID 1, the shell, its sleep
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    deadline = time.monotonic() + 3
    while in_namespace(ns) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert in_namespace(ns) == []
    with sandbox():  # the next start removes the dead harness's empty cgroup
        assert not cgroup.exists()


def test_start_command_close_are_quick():
    t0 = time.perf_counter()
    sb = Sandbox().start()
    t1 = time.perf_counter()
    assert sb.shell("echo hi").output == "hi\n"
    t2 = time.perf_counter()
    for _ in range(20):
        sb.shell("echo hi")
    t3 = time.perf_counter()
    sb.close()
    t4 = time.perf_counter()
    print(f"start {t1 - t0:.3f} s, first command {t2 - t1:.4f} s, "
          f"command {(t3 - t2) / 20:.4f} s, close {t4 - t3:.3f} s")
    assert t4 - t0 - (t3 - t2) < 2 and (t3 - t2) / 20 < 0.1


def test_check_sandbox_says_what_to_do_without_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError) as info:
        check_sandbox()
    assert "root" in str(info.value) and "--env simulated" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(SandboxError):
        Sandbox().start()
