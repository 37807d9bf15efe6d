"""Address checks for deployments/local/run.sh, which has no portable way to make them in bash.

    probe.py bind-check HOST:PORT          exit 0 if the address can be listened on, else say why (1)
    probe.py free-port                     print a TCP port on 127.0.0.1 that nothing listens on
    probe.py wait-listening ADDRESS --timeout S --watch PID...
                                           exit 0 once ADDRESS (HOST:PORT or unix:PATH) accepts a
                                           connection; 1 if a watched process exits first; 2 after S s
    probe.py wait-healthz HOST:PORT --timeout S --watch PID...
                                           exit 0 once http://HOST:PORT/healthz answers 2xx; 1 and 2
                                           as above

Standard library only: it runs before anything else of `make run`, Django included.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

IN_USE = "the address is already in use (another FLK, or another program, listens there)"


def split_address(address: str) -> tuple[str, int]:
    """``("127.0.0.1", 8000)`` from ``127.0.0.1:8000``, ``[::1]:8000`` or ``:8000`` (all interfaces)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"FLK_BIND={address!r} is not HOST:PORT (for example 127.0.0.1:8000)")
    return host.removeprefix("[").removesuffix("]"), int(port)


def bind_problem(*, host: str, port: int) -> str | None:
    """Why nginx or gunicorn could not listen on ``host:port``, or ``None`` if they could.

    The test binds every address the name resolves to, with SO_REUSEADDR as both servers do, so a
    port left in TIME_WAIT by an earlier run counts as free and a port someone listens on does not.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"{host} does not resolve ({exc.strerror})"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return IN_USE
                if exc.errno == errno.EACCES:
                    return "ports below 1024 need privileges this user does not have"
                if exc.errno == errno.EADDRNOTAVAIL:
                    return "it is not an address of this machine"
                return exc.strerror or str(exc)
    return None


def bind_check(address: str) -> int:
    """Exit status 0 when ``address`` is free; otherwise explain, with another address to try."""
    try:
        host, port = split_address(address)
    except ValueError as exc:
        print(f"[run] {exc}", file=sys.stderr)
        return 1
    problem = bind_problem(host=host, port=port)
    if problem is None:
        return 0
    if problem == IN_USE:
        suggestion = f"{'[' + host + ']' if ':' in host else host}:{port + 1 if port < 65535 else 8000}"
    else:
        suggestion = f"127.0.0.1:{port if port >= 1024 else 8000}"
    print(
        f"[run] FLK cannot listen on {address}: {problem}.\n"
        f"[run] Nothing was started or changed. Choose another address, for example:\n"
        f"[run]     FLK_BIND={suggestion} make run",
        file=sys.stderr,
    )
    return 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(address: str) -> tuple[str, int]:
    """The host and port a local client reaches ``address`` by (a wildcard bind answers on loopback)."""
    host, port = split_address(address)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port


def health_url(address: str) -> str:
    """The /healthz URL of the server listening on ``address``."""
    host, port = reachable(address)
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"


def exited(pid: int) -> bool:
    """The process is gone, or a zombie its parent has not reaped yet (``kill -0`` sees zombies)."""
    try:
        # The state letter follows the command name, which is in parentheses and may hold spaces.
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return True  # Linux, and no such process
    try:
        os.kill(pid, 0)  # no /proc: another Unix
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def accepts(address: str) -> bool:
    """Something accepts connections at ``address`` (``HOST:PORT`` or ``unix:PATH``) now."""
    try:
        if address.startswith("unix:"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(address.removeprefix("unix:"))
        else:
            socket.create_connection(reachable(address), timeout=2).close()
    except OSError:
        return False
    return True


def answers_healthz(address: str) -> bool:
    """http://``address``/healthz answers 2xx now."""
    try:
        with urllib.request.urlopen(health_url(address), timeout=2) as answer:
            return 200 <= answer.status < 300
    except (urllib.error.URLError, OSError):
        return False  # not listening yet, or nginx's 502 until gunicorn is up


def wait_for(*, ready: Callable[[], bool], timeout: float, watch: list[int]) -> int:
    """0 once ``ready()``; 1 when a watched process exits first; 2 after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return 0
        if any(exited(pid) for pid in watch):
            return 1
        if time.monotonic() > deadline:
            return 2
        time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("bind-check").add_argument("address")
    commands.add_parser("free-port")
    for name in ("wait-listening", "wait-healthz"):
        wait = commands.add_parser(name)
        wait.add_argument("address")
        wait.add_argument("--timeout", type=float, default=60.0)
        wait.add_argument("--watch", type=int, nargs="*", default=[])
    args = parser.parse_args(argv)
    if args.command == "bind-check":
        return bind_check(args.address)
    if args.command == "free-port":
        print(free_port())
        return 0
    check = accepts if args.command == "wait-listening" else answers_healthz
    return wait_for(ready=lambda: check(args.address), timeout=args.timeout, watch=args.watch)


if __name__ == "__main__":
    sys.exit(main())
