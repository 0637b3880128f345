"""A sandboxed Linux shell without Docker: a fresh copy-on-write system per problem for an agent's
untrusted commands. Needs root, util-linux and overlayfs; uses the standard library only.

    with Sandbox(SandboxLimits(memory_mb=1024)) as sb:
        sb.run(["bash", "-c", setup_code])    # a fresh process: setup and check scripts
        sb.shell("cd /etc; ls | head")        # the one interactive bash: cd, variables, jobs persist

- Namespaces: `unshare --mount --pid --net --uts --ipc --fork --kill-child` runs SETUP as the new PID
  namespace's first process (mounts are private: unshare's default). On a tmpfs at /mnt: an overlay
  (lower: the host's root filesystem, never written; upper: the tmpfs) with empty opaque /home /root
  /tmp /var/tmp /run /mnt /media /srv /opt /work /etc/ssl/private and genpi's checkout and Python
  environment; /etc/shadow and /etc/gshadow without password hashes; no ssh host keys; a fresh /proc
  with /proc/sys read-only; a small /dev with its own devpts; no /sys; hostname `sandbox`; loopback
  only. Then pivot_root (unlike chroot, it leaves no way back to the host's tree); `sleep` is PID 1.
- Every later process (run(), the shell) is forked straight into the namespaces (setns in the child),
  with a clean environment, in the sandbox's cgroups, without the capabilities that reach past the
  namespaces (it keeps Docker's default set less CAP_MKNOD: useradd, chown and su still work).
- Limits: cgroup v1 memory and pids cgroups (/sys/fs/cgroup/{memory,pids}/genpi/<pid>-<n>), else
  RLIMIT_AS; `limits_enforced` says which hold. A time limit kills the command's processes.
- Nothing outlives the sandbox: unshare gets SIGKILL when the thread that started it ends
  (PR_SET_PDEATHSIG; so start from a thread that outlives the sandbox), PID 1 when unshare dies
  (--kill-child), and the kernel kills every process of a PID namespace whose PID 1 died. close() also
  kills what is left in the cgroups.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import itertools
import os
import re
import resource
import secrets
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from ..errors import GenpiError

ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
       "USER": "root", "TERM": "dumb", "LANG": "C.UTF-8", "SHELL": "/bin/bash", "PWD": "/root"}
FIX = "or evaluate with the simulated environment (--env simulated)"
HOW = "run as root on a Linux host that allows mount and PID namespaces and overlayfs (not in a container)"
CGROUPS = Path("/sys/fs/cgroup")
MASKED = ("home", "root", "tmp", "var/tmp", "run", "mnt", "media", "srv", "opt", "work", "etc/ssl/private")
KEEP_CAPS = {0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 29, 31}  # chown dac_override fowner fsetid kill
#   setgid setuid setpcap net_bind_service net_raw sys_chroot audit_write setfcap
CLONE_NEWPID, PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 0x20000000, 1, 24, 47
TIOCSPTLCK, TIOCGPTPEER = 0x40045431, 0x5441
_libc = ctypes.CDLL(None, use_errno=True)
_ids = itertools.count()

SETUP = r"""set -e
read -r hostpid _ < /proc/self/stat
T=/mnt N=/mnt/r size=$1; shift
mount -t tmpfs -o "size=${size}m,mode=755" genpi $T
mkdir $T/u $T/w $N
for d in "$@"; do  # a whiteout in the upper layer, then a new directory over it: empty and opaque
  if [ -e "/$d" ]; then case $d in */*) mkdir -p "$T/u/${d%/*}";; esac; mknod "$T/u/$d" c 0 0; fi; done
mount -t overlay genpi -o lowerdir=/,upperdir=$T/u,workdir=$T/w $N
for d in "$@"; do if [ -e "/$d" ]; then mkdir -m 755 "$N/$d"; fi; done
chmod 700 $N/root $N/etc/ssl/private 2>/dev/null || true; chmod 1777 $N/tmp $N/var/tmp
mkdir $N/run/genpi; mount -t tmpfs -o "size=${size}m,mode=700" genpi $N/run/genpi
for f in shadow gshadow shadow- gshadow-; do
  if [ -f $N/etc/$f ]; then sed -i -E 's/^([^:]*):(!?)[^:]*:/\1:\2*:/' $N/etc/$f; fi; done
rm -f $N/etc/ssh/ssh_host_*; echo sandbox > $N/etc/hostname
mount -t tmpfs -o mode=755,size=1m genpi $N/dev
for d in null zero full random urandom tty; do : > $N/dev/$d; mount --bind /dev/$d $N/dev/$d; done
mkdir $N/dev/pts $N/dev/shm; mount -t tmpfs -o "mode=1777,size=${size}m" genpi $N/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $N/dev/pts
ln -s pts/ptmx $N/dev/ptmx; ln -s /proc/self/fd $N/dev/fd
ln -s /proc/self/fd/0 $N/dev/stdin; ln -s /proc/self/fd/1 $N/dev/stdout; ln -s /proc/self/fd/2 $N/dev/stderr
mount -t proc -o nosuid,nodev proc $N/proc
echo sandbox > $N/proc/sys/kernel/hostname
for p in sys sysrq-trigger irq bus fs; do
  if [ -e $N/proc/$p ]; then mount --bind -o ro $N/proc/$p $N/proc/$p; fi; done
for p in kcore keys timer_list; do if [ -e $N/proc/$p ]; then mount --bind /dev/null $N/proc/$p; fi; done
if command -v ip >/dev/null; then ip link set lo up; fi
cd $N; pivot_root . .; umount -l .; cd /
echo "ready $hostpid"
trap '' CHLD
# PID 1 keeps no more capabilities than the agent's processes, so root inside can read its /proc entries
exec setpriv --bounding-set -all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,\
+net_bind_service,+net_raw,+sys_chroot,+audit_write,+setfcap sleep infinity </dev/null >/dev/null 2>&1
"""


class SandboxError(GenpiError):
    """The sandbox cannot start here; the message says what is missing and the fix."""


@dataclass
class SandboxLimits:
    memory_mb: int = 1024            # memory of all the sandbox's processes (cgroup v1 memory)
    pids: int = 256                  # process count (cgroup pids controller)
    command_timeout_s: float = 10.0  # default per-command time limit
    output_cap: int = 100_000        # characters of a command's output kept; the rest is read and dropped


@dataclass
class CommandResult:
    output: str            # stdout and stderr together as the shell would show them
    exit_code: int | None  # None when killed by the time limit
    timed_out: bool = False
    truncated: bool = False


def check_sandbox() -> None:
    """Raise SandboxError when the sandbox cannot start here (cheap checks only)."""
    if not sys.platform.startswith("linux"):
        raise SandboxError(f"the sandboxed shell needs Linux, not {sys.platform}: {FIX}")
    if os.geteuid() != 0:
        raise SandboxError(f"the sandboxed shell needs root (this is uid {os.geteuid()}): run as root, {FIX}")
    missing = [t for t in ("unshare", "mount", "umount", "pivot_root", "sh", "bash") if not shutil.which(t)]
    if missing:
        raise SandboxError(f"the sandboxed shell needs {', '.join(missing)}: install util-linux and bash, {FIX}")
    lacking = [n for n in ("mnt", "pid", "net", "uts", "ipc") if not os.path.exists(f"/proc/self/ns/{n}")]
    if lacking:
        raise SandboxError(f"this kernel has no {'/'.join(lacking)} namespaces: "
                           f"use a kernel with namespaces, {FIX}")
    module = Path(f"/lib/modules/{os.uname().release}/kernel/fs/overlayfs")
    if "overlay" not in Path("/proc/filesystems").read_text() and not module.exists():
        raise SandboxError(f"overlayfs is not available: load it (modprobe overlay), {FIX}")


def _hidden_paths(paths=None) -> list[str]:
    """The genpi checkout and the Python environment, where not already under a masked folder."""
    found = []
    system = {"usr", "lib", "lib32", "lib64", "bin", "sbin", "etc"}
    if paths is None:
        paths = {Path(__file__).resolve().parents[2], Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    for p in paths:
        rel = str(p).lstrip("/")
        if rel and rel.split("/")[0] not in system and not any(rel == m or rel.startswith(m + "/") for m in MASKED):
            found.append(rel)
    # a path under another hidden one is hidden with it (a venv inside the checkout)
    return sorted(r for r in found if not any(r.startswith(o + "/") for o in found))


def _check(ret: int) -> None:
    if ret != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def _kill(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class _Output:
    """Keeps at most `cap` characters of what it is fed; the rest is read and dropped."""

    def __init__(self, cap: int):
        self.cap, self.data, self.dropped = cap, bytearray(), False

    def feed(self, chunk: bytes) -> None:
        room = 4 * self.cap - len(self.data)
        self.data += chunk[:max(room, 0)]
        self.dropped |= len(chunk) > room

    def text(self, pty: bool = False) -> tuple[str, bool]:
        text = self.data.decode("utf-8", "replace")
        if pty:
            text = text.replace("\r\n", "\n")
        return text[:self.cap], self.dropped or len(text) > self.cap


class _State:
    """Everything close() must undo; kept apart from Sandbox so that weakref.finalize can hold it."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.fds: list[int] = []
        self.cgroups: list[Path] = []
        self.root_pidfd = -1

    def close(self) -> None:
        if self.root_pidfd >= 0:  # the namespace's PID 1: the kernel then kills the whole namespace
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.root_pidfd, signal.SIGKILL)
        for p in self.procs[1:]:
            p.kill()
        for p in self.procs[::-1]:  # unshare last: it ends after PID 1, which ends after all the others
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for pipe in (p.stdin, p.stdout, p.stderr):
                if pipe:
                    pipe.close()
        deadline = time.monotonic() + 3
        for cg in self.cgroups:
            while cg.exists() and time.monotonic() < deadline:
                _kill(int(x) for x in (cg / "cgroup.procs").read_text().split())
                try:
                    cg.rmdir()
                except OSError:
                    time.sleep(0.005)
        for fd in self.fds + [self.root_pidfd]:
            if fd >= 0:
                os.close(fd)
        self.procs, self.fds, self.cgroups, self.root_pidfd = [], [], [], -1


class Sandbox:
    """One sandbox: start() it (or use `with`), then run() and shell(), then close()."""

    def __init__(self, limits: SandboxLimits | None = None):
        self.limits = limits or SandboxLimits()
        self.limits_enforced: dict[str, bool] = {}
        self._state = _State()
        self._finalizer = weakref.finalize(self, self._state.close)
        self._root_pid = 0
        self._ns: dict[str, int] | None = None
        self._shell: subprocess.Popen | None = None
        self._token = secrets.token_hex(8)
        self._seq = itertools.count(1)

    @property
    def root_pid(self) -> int:
        return self._root_pid

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()
        self._shell = self._ns = None

    # ---- start-up

    def _make_cgroups(self) -> None:
        name = f"{os.getpid()}-{next(_ids)}"
        settings = {"memory": {"memory.limit_in_bytes": self.limits.memory_mb << 20,
                               "memory.memsw.limit_in_bytes": self.limits.memory_mb << 20},
                    "pids": {"pids.max": self.limits.pids}}
        for ctrl, values in settings.items():
            self.limits_enforced[ctrl] = False
            base = CGROUPS / ctrl / "genpi"
            try:
                base.mkdir(exist_ok=True)
                for old in base.iterdir():  # left by a killed earlier run: empty ones whose owner is gone
                    if old.is_dir() and not Path(f"/proc/{old.name.split('-')[0]}").exists():
                        with contextlib.suppress(OSError):
                            old.rmdir()
                (base / name).mkdir()
                self._state.cgroups.append(base / name)
                for key, value in values.items():
                    if "memsw" not in key or (base / name / key).exists():  # no swap accounting: no file
                        (base / name / key).write_text(str(value))
                self.limits_enforced[ctrl] = True
            except OSError:
                pass

    def _preexec(self, *, enter: bool = False, tty: bool = False):
        procs = [os.fspath(cg / "cgroup.procs") for cg in self._state.cgroups]
        ns_fds = list(self._ns.values())[:-1] if enter else []  # all but pid (joined by the parent)
        memory_rlimit = not self.limits_enforced.get("memory")
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        parent = os.getpid()

        def child() -> None:
            for path in procs:
                fd = os.open(path, os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
            if memory_rlimit:
                resource.setrlimit(resource.RLIMIT_AS, (self.limits.memory_mb << 20,) * 2)
            if not enter:
                _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0))
                if os.getppid() != parent:  # the harness died before the line above
                    os._exit(1)
                return
            for fd in ns_fds:
                _check(_libc.setns(fd, 0))
            os.chdir("/root" if os.path.isdir("/root") else "/")
            if tty:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            _check(_libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0))  # PR_CAP_AMBIENT_CLEAR_ALL
            for cap in range(last_cap + 1):
                if cap not in KEEP_CAPS:
                    _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
        return child

    def start(self) -> "Sandbox":
        check_sandbox()
        if self._root_pid:
            if self._ns is None:
                raise SandboxError("this sandbox was closed: start a new Sandbox")
            return self
        self._make_cgroups()
        size = str(self.limits.memory_mb)
        argv = ["unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "--kill-child",
                "/bin/sh", "-c", SETUP, "genpi-sandbox", size, *MASKED, *_hidden_paths()]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=ENV, preexec_fn=self._preexec())
        except (OSError, subprocess.SubprocessError) as e:
            self.close()
            raise SandboxError(f"the sandbox could not start ({e}): {HOW}, {FIX}") from None
        self._state.procs.append(proc)
        line = b""
        if select.select([proc.stdout], [], [], 10)[0]:
            line = proc.stdout.readline()
        if not line.startswith(b"ready "):
            proc.kill()
            err = proc.stderr.read().decode(errors="replace").strip().splitlines() or ["no message"]
            self.close()
            raise SandboxError(f"the sandbox could not start ({err[-1]}): {HOW}, {FIX}")
        try:
            self._enter_namespace(int(line.split()[1]))
        except BaseException:
            self.close()
            raise
        return self

    def _enter_namespace(self, root_pid: int) -> None:
        """Hold the namespaces, the command folder and the terminals' folder; start the shell."""
        self._root_pid = root_pid
        self._state.root_pidfd = os.pidfd_open(self._root_pid)
        self._ns = {n: self._keep(os.open(f"/proc/{self._root_pid}/ns/{n}", os.O_RDONLY))
                    for n in ("ipc", "uts", "net", "mnt", "pid")}
        self._own_pidns = self._keep(os.open("/proc/self/ns/pid", os.O_RDONLY))
        root = f"/proc/{self._root_pid}/root"  # safe now: nothing of the agent's has run yet
        self._cmd_dir = self._keep(os.open(f"{root}/run/genpi", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW))
        self._pts_dir = self._keep(os.open(f"{root}/dev/pts", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW))
        self._start_shell()

    def _keep(self, fd: int) -> int:
        self._state.fds.append(fd)
        return fd

    def _spawn(self, argv: list[str], tty: bool = False, **kw) -> subprocess.Popen:
        """Fork a process inside the sandbox: this thread's children go to its PID namespace meanwhile."""
        if self._ns is None:
            raise SandboxError("the sandbox is not started: call start() first")
        _check(_libc.setns(self._ns["pid"], CLONE_NEWPID))
        try:
            return subprocess.Popen(argv, env=ENV, start_new_session=True,
                                    preexec_fn=self._preexec(enter=True, tty=tty), **kw)
        finally:
            _check(_libc.setns(self._own_pidns, CLONE_NEWPID))

    # ---- run(): one fresh process

    def run(self, argv: list[str], timeout: float | None = None, stdin: str | None = None) -> CommandResult:
        deadline = time.monotonic() + (timeout or self.limits.command_timeout_s)
        stdin_fd = subprocess.DEVNULL
        if stdin is not None:
            stdin_fd = os.memfd_create("genpi-stdin")
            os.write(stdin_fd, stdin.encode())
            os.lseek(stdin_fd, 0, os.SEEK_SET)
        before = self._pids()
        try:
            proc = self._spawn(list(argv), stdin=stdin_fd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except FileNotFoundError:
            return CommandResult(f"{argv[0]}: command not found", 127)
        finally:
            if stdin is not None:
                os.close(stdin_fd)
        out, fd, pidfd = _Output(self.limits.output_cap), proc.stdout.fileno(), os.pidfd_open(proc.pid)
        exited = timed_out = False
        try:
            while not (timed_out := time.monotonic() >= deadline):
                left = max(deadline - time.monotonic(), 0.0)  # the clock moves on after the check above
                ready = select.select([fd] + [pidfd] * (not exited), [], [], min(left, 0.05) if exited else left)[0]
                if fd in ready:
                    if not (chunk := os.read(fd, 1 << 16)):
                        break
                    out.feed(chunk)
                elif pidfd in ready:
                    exited = True
                elif exited:  # it ended, and whatever it left in the background is quiet
                    break
            if not timed_out:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(deadline - time.monotonic(), 0))
                timed_out = proc.poll() is None
            if timed_out:
                self._kill_new(before)
        finally:
            os.close(pidfd)
            proc.stdout.close()
        code = proc.wait()
        text, truncated = out.text()
        if timed_out:
            return CommandResult(text, None, True, truncated)
        return CommandResult(text, code if code >= 0 else 128 - code, False, truncated)

    def _pids(self) -> set[int]:
        """Every live process of the sandbox (host pids): from its pids cgroup, else its PID namespace."""
        for cg in self._state.cgroups:
            if cg.parent.parent.name == "pids":
                with contextlib.suppress(OSError):
                    return {int(x) for x in (cg / "cgroup.procs").read_text().split()}
        ns, found = os.readlink(f"/proc/{self._root_pid}/ns/pid"), set()
        for p in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if os.readlink(p / "ns/pid") == ns:
                    found.add(int(p.name))
        return found

    def _kill_new(self, before: set[int]) -> None:
        """SIGKILL every process of the sandbox that `before` does not list: the timed-out command and
        whatever it started (children, orphans, new sessions), until none is left (forks in between)."""
        for _ in range(50):
            new = self._pids() - before
            if not new:
                return
            _kill(new)
            time.sleep(0.005)

    # ---- shell(): the one interactive bash

    def _start_shell(self) -> None:
        master = os.open("ptmx", os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW, dir_fd=self._pts_dir)
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            attrs = termios.tcgetattr(slave)
            attrs[3] = (attrs[3] & ~termios.ECHO) | termios.NOFLSH
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            self._shell = self._spawn(["bash", "--norc", "--noprofile", "--noediting", "-i"], tty=True,
                                      stdin=slave, stdout=slave, stderr=slave)
        finally:
            os.close(slave)
        self._state.procs.append(self._shell)
        self._master, self._shell_pidfd = self._keep(master), self._keep(os.pidfd_open(self._shell.pid))
        os.set_blocking(master, False)
        self._carry = b""
        how, _ = self._send(" PS1= PS2= PS0= HISTCONTROL=ignorespace; unset PROMPT_COMMAND HISTFILE",
                            _Output(0), time.monotonic() + 10)
        if how != "done":
            raise SandboxError(f"the sandbox's shell did not start ({how}): {HOW}, {FIX}")

    def _send(self, line: str, out: _Output, deadline: float) -> tuple[str, int | None]:
        """Type `line` and a marker with its status; read until the marker: ("done", status), else
        ("timeout"|"exited", None)."""
        tag = f"{self._token}-{next(self._seq)}"
        with contextlib.suppress(OSError):  # a shell that has gone shows below
            os.write(self._master, f"{line}; printf '\\036%s:%d\\036' {tag} $?\n".encode())
        marker = re.compile(rb"\x1e" + tag.encode() + rb":(\d+)\x1e")
        buf, self._carry = self._carry, b""
        while True:
            found = marker.search(buf)
            if found:
                out.feed(buf[:found.start()])
                self._carry = buf[found.end():]
                return "done", int(found.group(1))
            out.feed(buf[:-64])
            buf = buf[-64:]
            left = deadline - time.monotonic()
            ready = select.select([self._master, self._shell_pidfd], [], [], left)[0] if left > 0 else []
            if self._master in ready:
                try:
                    buf += os.read(self._master, 1 << 16)
                    continue
                except OSError as e:  # EIO: no one holds the terminal any more
                    if isinstance(e, BlockingIOError):
                        continue
                    ready = [self._shell_pidfd]
            if self._shell_pidfd in ready:
                self._shell.wait()
                with contextlib.suppress(OSError):  # what it wrote before it ended (bounded: jobs go on)
                    for _ in range(64):
                        buf += os.read(self._master, 1 << 16)
                out.feed(buf)
                return "exited", None
            if not ready:
                out.feed(buf)
                return "timeout", None

    def _interrupt(self, out: _Output) -> str:
        """After a time limit: Ctrl-C, then SIGKILL the foreground group, then a new shell. A note."""
        with contextlib.suppress(OSError):
            os.write(self._master, b"\x03")
        for attempt in range(2):
            how = self._send(" :", out, time.monotonic() + 1)[0]
            if how != "timeout":
                return "" if how == "done" else self._restart_shell("the shell exited")
            group = os.tcgetpgrp(self._master)
            try:  # never the harness: a positive group of the sandbox's, not the shell itself
                ours = group > 0 and os.readlink(f"/proc/{group}/ns/pid") == os.readlink(
                    f"/proc/{self._root_pid}/ns/pid")
            except OSError:
                ours = False
            if attempt == 0 and ours and group != self._shell.pid:
                os.killpg(group, signal.SIGKILL)
        return self._restart_shell("the shell did not come back after the time limit")

    def _restart_shell(self, why: str) -> str:
        self._shell.kill()
        self._shell.wait()
        self._state.procs.remove(self._shell)
        for fd in (self._master, self._shell_pidfd):
            self._state.fds.remove(fd)
            os.close(fd)
        try:
            self._start_shell()
        except (OSError, subprocess.SubprocessError, SandboxError) as e:
            return f"[{why}; a new one could not be started: {e}]"
        return f"[{why}; a new one was started]"

    def shell(self, command: str, timeout: float | None = None) -> CommandResult:
        if self._shell is None:
            raise SandboxError("the sandbox is not started: call start() first")
        before = self._restart_shell("the shell had ended") + "\n" if self._shell.poll() is not None else ""
        deadline = time.monotonic() + (timeout or self.limits.command_timeout_s)
        out, name = _Output(self.limits.output_cap), f"c{secrets.token_hex(8)}"
        try:  # never follows a link: a new file, in the folder opened at start, by a name no one knows
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self._cmd_dir)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(command + "\n")
        except OSError as e:
            return CommandResult(f"[the command could not be passed to the shell: {e.strerror}]", None)
        how, code = self._send(f" source /run/genpi/{name} </dev/null", out, deadline)
        note = ""
        if how == "timeout":
            note = self._interrupt(out)
        elif how == "exited":
            code = self._shell.returncode if self._shell.returncode >= 0 else 128 - self._shell.returncode
            note = self._restart_shell("the shell exited")
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=self._cmd_dir)
        text, truncated = out.text(pty=True)
        text = re.sub(f"\x1e{self._token}-\\d+:\\d+\x1e", "", text)  # of a command cut short
        if note:
            text += ("" if not text or text.endswith("\n") else "\n") + note
        return CommandResult(before + text, None if how == "timeout" else code, how == "timeout", truncated)
