"""The ``flk-agent`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

import httpx

from flk_agent.client import FlkClient
from flk_agent.demo import demo_cases
from flk_agent.signing import Ed25519Signer, HmacSigner, Signer

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def _signer(args: argparse.Namespace) -> Signer:
    try:
        if args.ed25519_seed_file:
            seed = bytes.fromhex(Path(args.ed25519_seed_file).read_text().strip())
            return Ed25519Signer.from_seed(seed, args.key_id)
        secret = os.environ.get("FLK_HMAC_KEY")
        if args.key_file:
            secret = Path(args.key_file).read_text().strip()
    except (OSError, ValueError) as exc:
        raise SystemExit(f"flk-agent: cannot read the key: {exc}") from exc
    if not secret:
        raise SystemExit("flk-agent: give --key-file, --ed25519-seed-file or set FLK_HMAC_KEY")
    return HmacSigner(secret.encode(), args.key_id)


def _cmd_demo(args: argparse.Namespace) -> int:
    signer = _signer(args)
    shard = args.shard or f"demo-{uuid.uuid4().hex[:8]}"
    rows = []
    try:
        with FlkClient(args.url, tenant=args.tenant) as client:
            for label, expected, pcs in demo_cases(signer, shard_id=shard):
                result = client.submit(pcs)
                rows.append(
                    {
                        "case": label,
                        "expected": expected,
                        "status": result.status,
                        "replayed": result.replayed,
                        "body": result.body,
                    }
                )
    except httpx.TransportError as exc:
        print(f"flk-agent: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"shard {shard} -> {args.url}")
    for row in rows:
        body = row["body"]
        if row["status"] in (200, 202):
            summary = (
                f"D_hat={body['D_hat']:.3f} regime={body['regime']} budget={body['budget']:.3f} "
                f"audit_index={body['audit_index']}"
                + (f" reason={body['reason']}" if "reason" in body else "")
            )
        else:
            summary = f"error={body.get('error')} detail={body.get('detail')}"
        replay = " [Idempotent-Replayed]" if row["replayed"] else ""
        print(f"{row['status']}{replay}  {row['case']:<40} expected {row['expected']}\n      {summary}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="flk-agent", description="FLK agent: sign and send PCS")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="send synthetic PCS that show every kind of answer")
    demo.add_argument("--url", default="http://127.0.0.1:8000", help="FLK server base URL")
    demo.add_argument("--key-file", help="file holding the HMAC secret (make run prints its path)")
    demo.add_argument("--ed25519-seed-file", help="file holding a hex Ed25519 private key seed")
    demo.add_argument("--key-id", help="key_id to put in each PCS")
    demo.add_argument("--tenant", help="X-Tenant-Id header")
    demo.add_argument("--shard", help="shard_id (default: a fresh random one)")
    demo.add_argument("--json", action="store_true", help="machine-readable output")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flk-agent`` script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
