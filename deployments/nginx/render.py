"""Render the nginx configuration that fronts gunicorn: nginx.conf (for `make run`) and flk.conf.

    python deployments/nginx/render.py --dir var/nginx --listen 127.0.0.1:8000 \\
        --upstream unix:var/run/gunicorn.sock --max-body-bytes 65536 --batch-max-body-bytes 8388608

The templates' ``${NAME}`` placeholders (upper case) are filled from the arguments; nginx's own variables
(``$remote_addr``) are never placeholders. A placeholder without a value stops the rendering, so a
template and this script cannot drift apart silently. Values are checked before they are written:
an address with a ``;`` or a space in it would otherwise end a directive and start another.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import sys
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# host:port, [v6]:port or a bare port, as nginx's `listen` and gunicorn's `--bind` both take them.
TCP_ADDRESS = re.compile(r"^(?:(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):)?[0-9]{1,5}$")
UNIX_ADDRESS = re.compile(r"^unix:/[^\s;{}'\"$]+$")
SAFE_PATH = re.compile(r"^/[^\s;{}'\"$]+$")
# nginx's own default; the admin's forms and the read API stay far below it.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def fill(*, template: str, values: dict[str, str]) -> str:
    """``template`` with every ``${NAME}`` replaced; a name without a value raises ``KeyError``."""
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def user_directive() -> str:
    """``user <me> <my group>;`` when running as root, else nothing.

    A root master would otherwise run its workers as ``nobody``, who may not reach the gunicorn
    socket or the files under var/; for any other user nginx ignores the directive with a warning.
    """
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def render(
    *,
    directory: Path,
    listen: str,
    upstream: str,
    max_body_bytes: int,
    batch_max_body_bytes: int,
    default_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    retry_after_seconds: int = 5,
) -> Path:
    """Write ``nginx.conf`` and ``flk.conf`` (and nginx's temp directories) into ``directory``.

    Returns the path of nginx.conf, the file to start nginx with.
    """
    directory = directory.resolve()
    if not TCP_ADDRESS.match(listen):
        raise ValueError(f"listen address {listen!r} is not host:port")
    if upstream.startswith("unix:"):
        upstream = "unix:" + str(Path(upstream.removeprefix("unix:")).resolve())
        if not UNIX_ADDRESS.match(upstream):
            raise ValueError(f"upstream socket {upstream!r} has characters nginx cannot take")
    elif not TCP_ADDRESS.match(upstream):
        raise ValueError(f"upstream {upstream!r} is neither unix:/path nor host:port")
    if not SAFE_PATH.match(str(directory)):
        raise ValueError(f"directory {directory} has characters nginx cannot take")
    for name, number in (
        ("max_body_bytes", max_body_bytes),
        ("batch_max_body_bytes", batch_max_body_bytes),
        ("default_max_body_bytes", default_max_body_bytes),
        ("retry_after_seconds", retry_after_seconds),
    ):
        if number <= 0:
            raise ValueError(f"{name} must be positive, not {number}")
    values = {
        "FLK_LISTEN": listen,
        "FLK_UPSTREAM": upstream,
        "FLK_NGINX_DIR": str(directory),
        "FLK_NGINX_USER_DIRECTIVE": user_directive(),
        "MAX_BODY_BYTES": str(max_body_bytes),
        "BATCH_MAX_BODY_BYTES": str(batch_max_body_bytes),
        "FLK_DEFAULT_MAX_BODY_BYTES": str(default_max_body_bytes),
        "RETRY_AFTER_SECONDS": str(retry_after_seconds),
    }
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    (directory / "flk.conf").write_text(
        fill(template=(TEMPLATES / "flk.conf.template").read_text(), values=values)
    )
    main = directory / "nginx.conf"
    main.write_text(fill(template=(TEMPLATES / "nginx.conf.template").read_text(), values=values))
    return main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path, help="for the configuration and nginx's files")
    parser.add_argument("--listen", required=True, help="address nginx listens on (FLK_BIND)")
    parser.add_argument("--upstream", required=True, help="gunicorn: unix:/path.sock or host:port")
    parser.add_argument("--max-body-bytes", required=True, type=int, help="the app's MAX_BODY_BYTES")
    parser.add_argument(
        "--batch-max-body-bytes", required=True, type=int, help="the app's BATCH_MAX_BODY_BYTES"
    )
    parser.add_argument("--default-max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--retry-after", type=int, default=5, help="the app's RETRY_AFTER_SECONDS")
    args = parser.parse_args(argv)
    try:
        path = render(
            directory=args.dir,
            listen=args.listen,
            upstream=args.upstream,
            max_body_bytes=args.max_body_bytes,
            batch_max_body_bytes=args.batch_max_body_bytes,
            default_max_body_bytes=args.default_max_body_bytes,
            retry_after_seconds=args.retry_after,
        )
    except (ValueError, KeyError) as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
