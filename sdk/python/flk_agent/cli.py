"""The ``flk-agent`` command line.

Exit codes: 0 success; 1 unexpected error; 2 bad usage or input; 3 server unreachable (demo);
4 at least one PCS ended in the dead-letter file; 5 the outbox is used by another process;
6 an audit proof or checkpoint, or a report bundle, does not verify; 141 the reader of the output went
away (``| head``), as for a program stopped by SIGPIPE, whatever had been done before stays done.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import itertools
import json
import os
import secrets
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from flk_agent import vrf
from flk_agent.builder import build_pcs, sign_pcs
from flk_agent.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_consistency,
    check_inclusion,
    open_checkpoint,
)
from flk_agent.client import FlkClient
from flk_agent.delivery import DeliveryReport, RetryNotice, RetryPolicy, deliver_pending
from flk_agent.demo import demo_cases
from flk_agent.inputs import load_points
from flk_agent.outbox import DEAD, PENDING, Outbox, OutboxLocked, OutboxRecord
from flk_agent.report import previous_checkpoint_note, verify_bundle
from flk_agent.signals import DEFAULT_SCALES
from flk_agent.signing import Ed25519Signer, HmacSigner, Signer
from flk_agent.stream import StreamCheckpoint, window_pcs, windows_by_count, windows_by_time

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_DEAD_LETTERED = 4
EXIT_OUTBOX_LOCKED = 5
EXIT_NOT_VERIFIED = 6
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE, as a shell reports a program the signal stopped


class UsageError(Exception):
    """Bad arguments or unreadable input: exit code 2."""


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)


def _progress(args: argparse.Namespace, **kwargs: Any) -> tqdm:
    return tqdm(disable=args.json or not sys.stderr.isatty(), file=sys.stderr, **kwargs)


class _Feedback:
    """What a person sees while PCS are delivered: a progress bar on a terminal with the answers so
    far (accepted, escalated, rejected), and, on any stderr, each wait after a transient failure."""

    def __init__(self, args: argparse.Namespace, *, count_answers: bool, **bar: Any) -> None:
        self.bar = _progress(args, **bar)
        self.count_answers = count_answers  # the bar advances per answer (submit), else per window
        self.answers = {"accepted": 0, "escalated": 0, "rejected": 0}

    def answered(self, record: OutboxRecord, outcome: str) -> None:
        """One PCS decided (acked: 200 accepted, 202 escalated) or dead-lettered (rejected)."""
        if outcome == "dead":
            self.answers["rejected"] += 1
        elif record.last_status == 202:
            self.answers["escalated"] += 1
        else:
            self.answers["accepted"] += 1
        self.bar.set_postfix(self.answers, refresh=not self.count_answers)
        if self.count_answers:
            self.bar.update()

    def waiting(self, notice: RetryNotice) -> None:
        """A transient failure: say what is awaited, rather than staying silent through the wait."""
        message = f"flk-agent: {notice.describe()}"
        if self.bar.disable:
            print(message, file=sys.stderr, flush=True)
        else:
            self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        """Close the bar (its last state stays on the terminal)."""
        self.bar.close()


def _vrf_key(args: argparse.Namespace) -> bytes | None:
    """The VRF secret key of --vrf-key-file (hex), or None: then the PCS carries no proof."""
    if not args.vrf_key_file:
        return None
    try:
        key = bytes.fromhex(Path(args.vrf_key_file).read_text().strip())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--vrf-key-file: {exc}") from exc
    if len(key) != 32:
        raise UsageError("--vrf-key-file must hold 32 bytes in hex (flk-agent keygen --alg vrf)")
    return key


def _signer(args: argparse.Namespace) -> Signer:
    try:
        if args.ed25519_seed_file:
            seed = bytes.fromhex(Path(args.ed25519_seed_file).read_text().strip())
            return Ed25519Signer.from_seed(seed, args.key_id)
        secret = os.environ.get("FLK_HMAC_KEY")
        if args.key_file:
            secret = Path(args.key_file).read_text().strip()
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the key: {exc}") from exc
    if not secret:
        raise UsageError("give --key-file, --ed25519-seed-file or set FLK_HMAC_KEY")
    return HmacSigner(secret.encode(), args.key_id)


def _scales(text: str) -> tuple[int, ...]:
    try:
        scales = tuple(int(s) for s in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError("scales are comma-separated integers") from exc
    if len(scales) < 2 or any(b <= a for a, b in itertools.pairwise(scales)) or scales[0] < 2:
        raise argparse.ArgumentTypeError("scales must be at least two increasing integers >= 2")
    return scales


def _write_secret(path: Path, content: str, *, force: bool, mode: int = 0o600) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} exists; use --force to overwrite it")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(content + "\n")
    os.chmod(path, mode)  # O_CREAT's mode does not apply to an existing file


# -- commands -------------------------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.alg == "hmac":
        _write_secret(out, secrets.token_urlsafe(32), force=args.force)
        _emit(
            args,
            {"alg": "hmac", "secret_file": str(out)},
            f"HMAC secret written to {out} (mode 0600). Give the same value to the server as PCS_HMAC_KEY.",
        )
        return EXIT_OK
    seed = secrets.token_bytes(32)
    key_path, pub_path = out.with_suffix(".key"), out.with_suffix(".pub")
    if args.alg == "vrf":
        public, public_field = vrf.public_key(seed).hex(), "public_key"
        hint = f"pass {key_path} as --vrf-key-file; set the tenant's VRF public key to {public}"
    else:
        public = base64.b64encode(Ed25519Signer.from_seed(seed).public_key_bytes()).decode()
        public_field = "public_key_b64"
        hint = f"give the server the public key as PCS_ED25519_PUB_B64={public}"
    _write_secret(key_path, seed.hex(), force=args.force)
    _write_secret(pub_path, public, force=args.force, mode=0o644)
    _emit(
        args,
        {
            "alg": args.alg,
            "private_key_file": str(key_path),
            "public_key_file": str(pub_path),
            public_field: public,
        },
        f"{args.alg} private key written to {key_path} (mode 0600), public key to {pub_path}\n{hint}",
    )
    return EXIT_OK


def _cmd_compute(args: argparse.Namespace) -> int:
    try:
        points = load_points(args.points)
        raw = Path(args.raw).read_bytes() if args.raw else None
        events = (
            [line.encode() for line in Path(args.events).read_text(encoding="utf-8").splitlines() if line]
            if args.events
            else None
        )
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if raw is None and events is None:
        raise UsageError("give --raw, --events or both")
    if raw == b"" and events is None:
        raise UsageError("--raw is empty: r is undefined for empty data")
    pcs = build_pcs(
        points=points,
        raw=raw,
        events=events,
        shard_id=args.shard,
        epoch=args.epoch,
        seed=args.seed,
        signer=_signer(args),
        scales=args.scales,
        vrf_secret_key=_vrf_key(args),
    )
    text = json.dumps(pcs, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return EXIT_OK


def _delivery_summary(args: argparse.Namespace, report: DeliveryReport, outbox: Outbox) -> int:
    counts = outbox.counts()
    dead = {r.pcs_id: r for r in outbox.dead()}
    results, lines = [], []
    for pcs_id, status, outcome in report.results:
        result: dict[str, Any] = {"pcs_id": pcs_id, "status": status, "outcome": outcome}
        line = f"{outcome:<9} {status if status is not None else '-':<4} {pcs_id}"
        if outcome == "dead" and pcs_id in dead:
            result["reason"], result["detail"] = dead[pcs_id].dead_reason, dead[pcs_id].dead_detail
            line += f"  {_why(dead[pcs_id])}"
        results.append(result)
        lines.append(line)
    data = {
        "acked": report.acked,
        "dead": report.dead,
        "attempts": report.attempts,
        "requests": report.requests,
        "outbox": counts,
        "results": results,
    }
    lines.append(
        f"acked {report.acked}, dead-lettered {report.dead}, attempts {report.attempts} "
        f"in {report.requests} request{'' if report.requests == 1 else 's'}; "
        f"outbox: {counts[PENDING]} pending, {counts[DEAD]} dead"
    )
    if report.dead:
        lines.append(_dead_hint(outbox))
    _emit(args, data, "\n".join(lines))
    return EXIT_DEAD_LETTERED if report.dead else EXIT_OK


def _why(record: OutboxRecord) -> str:
    """A dead letter's reason and the server's detail, on one line."""
    reason = record.dead_reason or "?"
    return f"{reason}: {record.dead_detail}" if record.dead_detail else reason


def _dead_hint(outbox: Outbox) -> str:
    """What to do about dead letters; a wrong key can be fixed by re-signing them."""
    if any(r.dead_reason in ("invalid_signature", "unknown_key") for r in outbox.dead()):
        return (
            "the server did not accept a signature: get the right key, then "
            "`flk-agent outbox retry-dead --resign --key-file KEY` and `flk-agent submit`"
        )
    return "after fixing the cause: `flk-agent outbox retry-dead`, then `flk-agent submit`"


def _policy(args: argparse.Namespace) -> RetryPolicy:
    return RetryPolicy(max_attempts=args.max_attempts, cap_seconds=args.backoff_cap)


def _deliver(
    args: argparse.Namespace,
    outbox: Outbox,
    client: FlkClient,
    on_progress: Callable[[OutboxRecord, str], None] | None = None,
    on_wait: Callable[[RetryNotice], None] | None = None,
) -> DeliveryReport:
    """Deliver everything pending, one PCS per request or in batches of ``--batch``."""
    return deliver_pending(
        outbox, client, policy=_policy(args), on_progress=on_progress, batch_size=args.batch, on_wait=on_wait
    )


def _cmd_submit(args: argparse.Namespace) -> int:
    files: list[Path] = []
    for name in args.paths:
        path = Path(name)
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    pcs_list = []
    for path in files:
        try:
            pcs_list.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: {exc}") from exc
    with Outbox(args.outbox) as outbox, FlkClient(args.url, tenant=args.tenant) as client:
        # Durable (one fsync) before anything is sent; without files, what is pending is sent.
        outbox.put_many(pcs_list)
        feedback = _Feedback(
            args, count_answers=True, total=sum(1 for _ in outbox.pending()), unit="pcs", desc="submit"
        )
        report = _deliver(args, outbox, client, on_progress=feedback.answered, on_wait=feedback.waiting)
        feedback.close()
        return _delivery_summary(args, report, outbox)


def _cmd_stream(args: argparse.Namespace) -> int:
    signer, vrf_key = _signer(args), _vrf_key(args)
    source = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    total = DeliveryReport()
    with source, Outbox(args.outbox) as outbox, FlkClient(args.url, tenant=args.tenant) as client:
        checkpoint = StreamCheckpoint(outbox.directory, args.shard)
        done = checkpoint.last_epoch()
        if args.window_seconds:
            windows = windows_by_time(source, seconds=args.window_seconds)
        else:
            windows = windows_by_count(source, count=args.window_count, epoch_start=args.epoch_start)
        feedback = _Feedback(args, count_answers=False, unit="epoch", desc=f"stream {args.shard}")

        def deliver() -> DeliveryReport:
            return _deliver(args, outbox, client, on_progress=feedback.answered, on_wait=feedback.waiting)

        # A restarted agent first resends what it had stored but not delivered.
        if not args.no_send:
            _accumulate(total, deliver())
        waiting = 0  # windows stored since the last delivery pass
        for window in windows:
            if done is not None and window.epoch <= done:
                continue  # already in the outbox before a restart
            outbox.put(
                window_pcs(
                    window, shard_id=args.shard, signer=signer, scales=args.scales, vrf_secret_key=vrf_key
                )
            )
            checkpoint.save(window.epoch)
            waiting += 1
            # With --batch N, windows wait in the outbox (on disk) until N are pending; a delivery
            # pass ends with nothing pending (each PCS acked or dead-lettered).
            if not args.no_send and waiting >= args.batch:
                _accumulate(total, deliver())
                waiting = 0
            feedback.bar.update()
        if waiting and not args.no_send:  # the end of the input: what is left of the last batch
            _accumulate(total, deliver())
        feedback.close()
        return _delivery_summary(args, total, outbox)


def _accumulate(total: DeliveryReport, part: DeliveryReport) -> None:
    total.acked += part.acked
    total.dead += part.dead
    total.attempts += part.attempts
    total.requests += part.requests
    total.results += part.results


def _cmd_outbox(args: argparse.Namespace) -> int:
    signing = args.key_file or args.ed25519_seed_file or args.key_id
    if args.action != "retry-dead" and (args.resign or signing):
        raise UsageError("--resign and the key options go with retry-dead")
    if signing and not args.resign:
        raise UsageError("a key is only used to re-sign: add --resign")
    signer = _signer(args) if args.resign else None
    with Outbox(args.outbox) as outbox:
        if args.action == "retry-dead":
            resign = None
            if signer is not None:

                def resign(pcs: dict[str, Any]) -> dict[str, Any]:
                    pcs.pop("key_id", None)  # the old key's id would name a key the server refuses
                    return sign_pcs(pcs, signer)

            moved = outbox.retry_dead(resign=resign)
            how = ", re-signed with the key given" if signer is not None else ""
            _emit(
                args,
                {"moved_to_pending": moved, "resigned": signer is not None},
                f"{moved} dead-lettered PCS sent back to pending{how}; `flk-agent submit` sends them",
            )
        elif args.action == "purge-dead":
            purged = outbox.purge_dead()
            _emit(
                args,
                {"purged": [{"pcs_id": r.pcs_id, "reason": r.dead_reason} for r in purged]},
                "\n".join(
                    [f"purged    {r.pcs_id}  {_why(r)}" for r in purged]
                    + [
                        f"removed {len(purged)} dead-lettered PCS from the outbox "
                        f"({outbox.directory / 'dead-letter.jsonl'} keeps them)"
                    ]
                ),
            )
        elif args.action == "compact":
            removed = outbox.compact(horizon_seconds=args.horizon_hours * 3600)
            _emit(
                args,
                {"removed": removed, "outbox": outbox.counts()},
                f"removed {removed} acked records older than {args.horizon_hours} h",
            )
        else:
            counts = outbox.counts()
            troubles = [
                {
                    "seq": r.seq,
                    "pcs_id": r.pcs_id,
                    "state": r.state,
                    "attempts": r.attempts,
                    "last_status": r.last_status,
                    "reason": r.dead_reason or r.last_error,
                    "detail": r.dead_detail,
                }
                for r in outbox.records.values()
                if r.state != "acked"
            ]
            lines = [
                f"outbox {outbox.directory}: {counts['pending']} pending, {counts['acked']} acked, "
                f"{counts['dead']} dead"
            ]
            lines += [
                f"  #{t['seq']} {t['state']:<8} {t['pcs_id'][:16]}… attempts={t['attempts']} "
                f"last={t['last_status']} {t['reason'] or ''}" + (f": {t['detail']}" if t["detail"] else "")
                for t in troubles
            ]
            _emit(args, {"directory": str(outbox.directory), **counts, "records": troubles}, "\n".join(lines))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    signer = _signer(args)
    shard = args.shard or f"demo-{uuid.uuid4().hex[:8]}"
    rows = []
    try:
        with FlkClient(args.url, tenant=args.tenant) as client:
            for case in demo_cases(signer, shard_id=shard):
                result = client.submit(case.pcs)
                rows.append(
                    {
                        "case": case.label,
                        "expected": case.expectation,
                        "status": result.status,
                        "replayed": result.replayed,
                        "as_expected": (result.status, result.replayed) == (case.status, case.replayed),
                        "body": result.body,
                    }
                )
    except httpx.TransportError as exc:
        print(f"flk-agent: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    lines = [f"shard {shard} -> {args.url}"]
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
        mark = "" if row["as_expected"] else "   <-- NOT AS EXPECTED"
        lines.append(
            f"{row['status']}{replay}  {row['case']:<40} expected {row['expected']}{mark}\n      {summary}"
        )
    unexpected = sum(not row["as_expected"] for row in rows)
    if unexpected:
        lines.append(f"{unexpected} answer(s) not as expected: check the server's key and policy")
    _emit(args, rows, "\n".join(lines))
    return EXIT_UNEXPECTED if unexpected else EXIT_OK


def _read_json(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return data


def _read_checkpoint(args: argparse.Namespace, path: str) -> Checkpoint:
    try:
        key = base64.b64decode(args.public_key, validate=True)
        note = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if len(key) != 32:
        raise UsageError("--public-key is the base64 of a 32-byte Ed25519 public key")
    return open_checkpoint(note, name=args.log_name, public_key=key)


def _cmd_audit(args: argparse.Namespace) -> int:
    try:
        if args.action == "verify-inclusion":
            checkpoint = _read_checkpoint(args, args.checkpoint)
            proof = _read_json(args.proof)
            check_inclusion(checkpoint, proof)
            result = {
                "verified": True,
                "origin": checkpoint.origin,
                "tree_size": checkpoint.size,
                "leaf_index": proof["leaf_index"],
            }
            text = f"OK: leaf {proof['leaf_index']} is in {checkpoint.origin} at tree size {checkpoint.size}"
        else:
            old, new = _read_checkpoint(args, args.old), _read_checkpoint(args, args.new)
            check_consistency(old, new, _read_json(args.proof))
            result = {"verified": True, "origin": new.origin, "first": old.size, "second": new.size}
            text = f"OK: {new.origin} at size {old.size} is a prefix of size {new.size}"
    except CheckpointError as exc:
        _emit(args, {"verified": False, "reason": str(exc)}, f"NOT VERIFIED: {exc}")
        return EXIT_NOT_VERIFIED
    _emit(args, result, text)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        previous = previous_checkpoint_note(args.previous) if args.previous else None
        schema = Path(args.oscal_schema).read_bytes() if args.oscal_schema else None
        if not Path(args.bundle).is_file():
            raise UsageError(f"{args.bundle}: no such file")
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(str(exc)) from exc
    result = verify_bundle(
        args.bundle, public_key_b64=args.public_key, previous_note=previous, oscal_schema=schema
    )
    data = {"verified": result.ok, "problems": result.problems, "notes": result.notes, **result.summary}
    lines = [f"NOT VERIFIED: {problem}" for problem in result.problems]
    lines += [f"note: {note}" for note in result.notes]
    if result.ok:
        lines.insert(
            0,
            f"OK: {result.summary.get('framework')} report {result.summary.get('report_id')} of "
            f"{result.summary.get('tenant')}, checkpoint at size {result.summary.get('tree_size')}",
        )
    _emit(args, data, "\n".join(lines))
    return EXIT_OK if result.ok else EXIT_NOT_VERIFIED


# -- parser ---------------------------------------------------------------------------------------


def _signing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", help="file holding the HMAC secret (or set FLK_HMAC_KEY)")
    parser.add_argument("--ed25519-seed-file", help="file holding a hex Ed25519 private key seed")
    parser.add_argument("--key-id", help="key_id to put in each PCS (when the server names its keys)")


def _key_options(parser: argparse.ArgumentParser) -> None:
    _signing_options(parser)
    parser.add_argument(
        "--vrf-key-file", help="hex VRF secret key: the seed comes from the VRF and the proof is attached"
    )


def _version() -> str:
    try:
        return importlib.metadata.version("flk-agent")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def _send_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("FLK_URL", "http://127.0.0.1:8000"),
        help="FLK server base URL, or several comma-separated (one per region): on a connection failure "
        "or a 503 the agent moves to the next (env FLK_URL)",
    )
    parser.add_argument("--tenant", default=os.environ.get("FLK_TENANT"), help="X-Tenant-Id (env FLK_TENANT)")
    parser.add_argument(
        "--outbox",
        default=os.environ.get("FLK_OUTBOX", "flk-outbox"),
        help="outbox directory (env FLK_OUTBOX; default ./flk-outbox)",
    )
    parser.add_argument("--max-attempts", type=int, default=12, help="retry budget per PCS")
    parser.add_argument("--backoff-cap", type=float, default=30.0, help="longest backoff, seconds")
    parser.add_argument(
        "--batch",
        type=_batch_size,
        default=1,
        metavar="N",
        help="send up to N PCS per request (POST /v1/pcs/submit:batch); default 1, one per request",
    )


def _batch_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--batch is a whole number") from exc
    if size < 1:
        raise argparse.ArgumentTypeError("--batch is at least 1")
    return size


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="flk-agent", description="FLK agent: compute, sign and deliver PCS")
    parser.add_argument(
        "--version", action="version", version=f"flk-agent {_version()}", help="print the version and exit"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)

    keygen = sub.add_parser(
        "keygen", parents=[common], help="create an HMAC secret, an Ed25519 key pair or a VRF key pair"
    )
    keygen.add_argument(
        "--alg",
        choices=["hmac", "ed25519", "vrf"],
        default="ed25519",
        help="hmac: a shared secret; ed25519: a signing key pair; vrf: a VRF key pair (default ed25519)",
    )
    keygen.add_argument(
        "--out", required=True, help="secret file (hmac) or path stem for .key/.pub (ed25519, vrf)"
    )
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(func=_cmd_keygen)

    compute = sub.add_parser(
        "compute", parents=[common], help="compute and sign a PCS from points and raw data"
    )
    compute.add_argument("--points", required=True, help="point cloud: .csv, .npy or .jsonl")
    compute.add_argument("--raw", help="raw data file (compressibility r; Merkle leaves as 1 KiB chunks)")
    compute.add_argument("--events", help="JSONL file: one Merkle leaf per line (instead of raw chunks)")
    compute.add_argument("--shard", required=True, help="shard_id: which agent or partition the data is from")
    compute.add_argument("--epoch", type=int, required=True, help="the epoch (window number) of this data")
    compute.add_argument(
        "--seed", type=int, default=0, help="seed of coh★'s random directions (default 0; a VRF key sets it)"
    )
    compute.add_argument("--scales", type=_scales, default=DEFAULT_SCALES, help="e.g. 2,4,8,16,32")
    compute.add_argument("--out", help="write the PCS here instead of stdout")
    _key_options(compute)
    compute.set_defaults(func=_cmd_compute)

    submit = sub.add_parser(
        "submit", parents=[common], help="deliver PCS files (or directories of *.json) through the outbox"
    )
    submit.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="PCS JSON files or directories of *.json; none: send what the outbox holds pending",
    )
    _send_options(submit)
    submit.set_defaults(func=_cmd_submit)

    stream = sub.add_parser(
        "stream", parents=[common], help="window a JSONL event stream into epochs and deliver them"
    )
    stream.add_argument("--input", default="-", help="JSONL events file, or - for stdin")
    stream.add_argument("--shard", required=True, help="shard_id of every PCS of the stream")
    group = stream.add_mutually_exclusive_group()
    group.add_argument("--window-count", type=int, default=100, help="events per epoch (default 100)")
    group.add_argument("--window-seconds", type=float, help="epoch length by the events' 'ts' field")
    stream.add_argument(
        "--epoch-start", type=int, default=1, help="epoch of the first count window (default 1)"
    )
    stream.add_argument(
        "--scales", type=_scales, default=DEFAULT_SCALES, help="box-counting scales, e.g. 2,4,8,16,32"
    )
    stream.add_argument("--no-send", action="store_true", help="only fill the outbox")
    _key_options(stream)
    _send_options(stream)
    stream.set_defaults(func=_cmd_stream)

    outbox = sub.add_parser("outbox", parents=[common], help="inspect or repair the outbox")
    outbox.add_argument(
        "action",
        choices=["status", "retry-dead", "purge-dead", "compact"],
        help="status: what is pending, acked, dead and why; retry-dead: dead letters back to pending; "
        "purge-dead: remove dead letters for good; compact: drop old acked records",
    )
    outbox.add_argument(
        "--outbox",
        default=os.environ.get("FLK_OUTBOX", "flk-outbox"),
        help="outbox directory (env FLK_OUTBOX; default ./flk-outbox)",
    )
    outbox.add_argument(
        "--resign",
        action="store_true",
        help="retry-dead: sign each PCS again with the key given now (a dead letter of a wrong key)",
    )
    _signing_options(outbox)
    outbox.add_argument(
        "--horizon-hours",
        type=float,
        default=168.0,
        help="compact: drop acked records older than this (default 7 days)",
    )
    outbox.set_defaults(func=_cmd_outbox)

    audit = sub.add_parser("audit", parents=[common], help="verify audit checkpoints and proofs offline")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    for action, helptext in (
        ("verify-inclusion", "a decision's entry is in a signed checkpoint"),
        ("verify-consistency", "an older checkpoint is a prefix of a newer one"),
    ):
        cmd = audit_sub.add_parser(action, parents=[common], help=helptext)
        cmd.add_argument("--log-name", required=True, help="the signing key's name in the note")
        cmd.add_argument("--public-key", required=True, help="the log's Ed25519 public key, base64")
        cmd.add_argument("--proof", required=True, help="the proof JSON downloaded from the server")
        if action == "verify-inclusion":
            cmd.add_argument("--checkpoint", required=True, help="the signed checkpoint note")
        else:
            cmd.add_argument("--old", required=True, help="the older signed checkpoint")
            cmd.add_argument("--new", required=True, help="the newer signed checkpoint")
        cmd.set_defaults(func=_cmd_audit)

    report = sub.add_parser("report", parents=[common], help="verify a compliance report bundle offline")
    report_sub = report.add_subparsers(dest="action", required=True)
    verify = report_sub.add_parser(
        "verify", parents=[common], help="check every file, signature and proof of a report bundle (zip)"
    )
    verify.add_argument("bundle", help="the report bundle downloaded from the server (.zip)")
    verify.add_argument(
        "--public-key", help="the audit Ed25519 public key, base64, from a source you trust (pin it)"
    )
    verify.add_argument(
        "--previous", help="the previous report's bundle (or its checkpoint note) this one must extend"
    )
    verify.add_argument("--oscal-schema", help="validate the OSCAL document against this schema file instead")
    verify.set_defaults(func=_cmd_report)

    demo = sub.add_parser("demo", parents=[common], help="send synthetic PCS that show every kind of answer")
    demo.add_argument(
        "--url",
        default=os.environ.get("FLK_URL", "http://127.0.0.1:8000"),
        help="FLK server base URL (env FLK_URL)",
    )
    demo.add_argument("--tenant", default=os.environ.get("FLK_TENANT"), help="X-Tenant-Id (env FLK_TENANT)")
    demo.add_argument("--shard", help="shard_id (default: a fresh random one)")
    _key_options(demo)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flk-agent`` script."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly. Whatever was done (delivered, written to the
        # outbox) stays done; the status is the one a program stopped by SIGPIPE has.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the final flush at exit then has nowhere to fail
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        print(f"flk-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutboxLocked as exc:
        print(f"flk-agent: {exc}", file=sys.stderr)
        return EXIT_OUTBOX_LOCKED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
