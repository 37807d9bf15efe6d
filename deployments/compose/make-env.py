"""Write the secrets of the Compose stack: ``.env`` next to compose.yaml and ``secrets/metrics_pass``.

    python deployments/compose/make-env.py              # once, before the first `docker-compose up`
    python deployments/compose/make-env.py --dir /tmp/x # somewhere else (the tests do)

Every value is fresh randomness from ``secrets``; nothing is a default anyone else knows. An existing
``.env`` is never overwritten (the database and the anchors were made with its keys): delete it and
the stack's volumes together to start over. Files are created with mode 0600.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def fresh_values() -> dict[str, str]:
    """One new value for every secret compose.yaml requires."""
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        # A Fernet key: 32 random bytes, URL-safe base64.
        "FLK_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        # An Ed25519 seed: 32 random bytes, standard base64.
        "AUDIT_SIGNING_KEY_B64": base64.b64encode(secrets.token_bytes(32)).decode(),
        "METRICS_PASS": secrets.token_urlsafe(24),
        "PCS_HMAC_KEY": secrets.token_urlsafe(32),
        # URL-safe: it is written into DATABASE_URL as is.
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "S3_SECRET_KEY": secrets.token_urlsafe(24),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(18),
    }


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def write_env(directory: Path) -> Path:
    """Write ``directory/.env`` and ``directory/secrets/metrics_pass``; refuse to replace ``.env``."""
    env_file = directory / ".env"
    if env_file.exists():
        raise FileExistsError(f"{env_file} exists; it holds the keys this stack's data was made with")
    values = fresh_values()
    lines = [
        "# Secrets of the FLK Compose stack, written by make-env.py. Never commit this file.",
        *(f"{name}={value}" for name, value in values.items()),
    ]
    _write_private(env_file, "\n".join(lines) + "\n")
    _write_private(directory / "secrets" / "metrics_pass", values["METRICS_PASS"])
    return env_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=HERE, help="where to write .env (default: next to this file)"
    )
    args = parser.parse_args(argv)
    try:
        path = write_env(args.dir)
    except FileExistsError as exc:
        print(f"make-env.py: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
