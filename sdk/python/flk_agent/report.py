"""Compliance report bundles: their format, and their offline verification (``flk-agent report verify``).

A bundle is one zip:

- ``report.pdf``, ``evidence.json``, ``oscal-assessment-results.json``: the report for people and machines;
- ``checkpoint.json``: the log's signed checkpoint the report covers, the previous report's checkpoint
  with the RFC 9162 consistency proof between them, and inclusion proofs of a sample of the period's
  entries drawn from a recorded seed;
- ``schemas/oscal_assessment-results_schema.json``: the NIST schema the OSCAL document was validated
  against (the verifier checks its SHA-256 against the release it pins, ``OSCAL_SCHEMA_SHA256``);
- ``manifest.json``: the SHA-256 and size of every file above, and ``manifest.sig``: the base64 Ed25519
  signature of the manifest's exact bytes by the server's audit key (the key that signs checkpoints).

The verifier reuses ``flk_agent.checkpoint`` (notes and proofs) and ``flk_agent.merkle``: the server
builds the bundle with the same code, so the two cannot disagree about bytes. Every problem is named
(``evidence.json: sha256 mismatch``, ``manifest signature invalid``, ``consistency proof does not
extend previous checkpoint (size X -> Y)``, ``inclusion proof for seq N fails``, ``OSCAL document
invalid: ...``); the OSCAL check needs the optional ``jsonschema`` package and says so when skipped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import random
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flk_agent.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_consistency,
    check_inclusion,
    open_checkpoint,
)

BUNDLE_FORMAT = "flk-report-bundle/1"
PDF, EVIDENCE, OSCAL, CHECKPOINT = (
    "report.pdf",
    "evidence.json",
    "oscal-assessment-results.json",
    "checkpoint.json",
)
OSCAL_SCHEMA = "schemas/oscal_assessment-results_schema.json"
MANIFEST, MANIFEST_SIG = "manifest.json", "manifest.sig"
CONTENT_FILES = (PDF, EVIDENCE, OSCAL, CHECKPOINT, OSCAL_SCHEMA)

# NIST OSCAL v1.2.3, release file oscal_assessment-results_schema.json ($id
# http://csrc.nist.gov/ns/oscal/1.2.3/oscal-ar-schema.json). A bundle's copy must be exactly this file,
# so a bundle cannot bring a lenient schema of its own.
OSCAL_VERSION = "1.2.3"
OSCAL_SCHEMA_SHA256 = "37f41f6813c78e6d2c272b27030e17e93d7f92fee519c72e7531574fa0ecbb05"

SAMPLE_SIZE = 32  # inclusion proofs per report, besides the period's first and last entry


def sample_seqs(seed_hex: str, first: int, last: int, k: int = SAMPLE_SIZE) -> list[int]:
    """The entries whose inclusion a report proves: the first, the last and ``k`` drawn from the seed.

    ``random.Random`` seeded with an int is reproducible across Python 3 versions, so anyone can
    recompute the sample from the recorded seed and see it was not chosen after the fact.
    """
    if last < first:
        return []
    population = range(first, last + 1)
    drawn = random.Random(int(seed_hex, 16)).sample(population, min(k, len(population)))
    return sorted({first, last, *drawn})


# -- OSCAL validation ------------------------------------------------------------------------------

# OSCAL's token pattern uses the Unicode classes \p{L} and \p{N}, which Python's re lacks: the
# ``regex`` package reads them natively; without it they are rewritten to their re equivalents
# (letters: word characters that are not digits or "_"; numbers: decimal digits).
_UNICODE_CLASSES = (("\\p{L}", "[^\\W\\d_]"), ("\\p{N}", "\\d"))


def _compile(pattern: str) -> Any:
    try:
        import regex

        return regex.compile(pattern)
    except ImportError:
        for klass, equivalent in _UNICODE_CLASSES:
            pattern = pattern.replace(klass, equivalent)
        return re.compile(pattern)


def oscal_problems(document: Any, schema: dict[str, Any], limit: int = 5) -> list[str] | None:
    """Why ``document`` does not validate against the OSCAL ``schema`` (empty: valid).

    None when the ``jsonschema`` package is not installed (the check was skipped).
    """
    try:
        import jsonschema
        from jsonschema import validators
    except ImportError:
        return None
    cache: dict[str, Any] = {}

    def pattern(validator: Any, patrn: str, instance: Any, schema_: Any) -> Iterator[Any]:
        if not validator.is_type(instance, "string"):
            return
        compiled = cache.get(patrn) or cache.setdefault(patrn, _compile(patrn))
        if not compiled.search(instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    cls = validators.extend(jsonschema.Draft7Validator, {"pattern": pattern})
    errors = sorted(cls(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:limit]]


# -- verification ----------------------------------------------------------------------------------


@dataclass
class BundleVerification:
    """What ``verify_bundle`` found: ``problems`` make the bundle fail; ``notes`` are for the reader."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(name: str, data: bytes, result: BundleVerification) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError as exc:
        result.problems.append(f"{name}: not JSON ({exc})")
        return None
    if not isinstance(value, dict):
        result.problems.append(f"{name}: not a JSON object")
        return None
    return value


def _public_key(value: str, what: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(f"{what} is not base64") from exc
    if len(key) != 32:
        raise ValueError(f"{what} is not a 32-byte Ed25519 public key")
    return key


def previous_checkpoint_note(path: str | Path) -> str:
    """The checkpoint note of a previous report: from its bundle (zip) or a note file."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as bundle:
            return json.loads(bundle.read(CHECKPOINT))["checkpoint"]["note"]
    return path.read_text(encoding="utf-8")


def _read_bundle(source: str | Path | bytes, result: BundleVerification) -> dict[str, bytes] | None:
    try:
        handle = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (OSError, zipfile.BadZipFile) as exc:
        result.problems.append(f"bundle unreadable: {exc}")
        return None
    with handle:
        files = {}
        for info in handle.infolist():
            if info.is_dir():
                continue
            try:
                files[info.filename] = handle.read(info)
            except (zipfile.BadZipFile, OSError) as exc:  # a CRC error: the zip itself was altered
                result.problems.append(f"{info.filename}: unreadable ({exc})")
        return files


def _check_manifest(files: dict[str, bytes], key: bytes, result: BundleVerification) -> dict[str, Any] | None:
    if MANIFEST not in files or MANIFEST_SIG not in files:
        result.problems.append(f"missing file: {MANIFEST if MANIFEST not in files else MANIFEST_SIG}")
        return None
    try:
        signature = base64.b64decode(files[MANIFEST_SIG].strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(key).verify(signature, files[MANIFEST])
    except (InvalidSignature, binascii.Error, ValueError):
        result.problems.append("manifest signature invalid")
    manifest = _json(MANIFEST, files[MANIFEST], result)
    if manifest is None:
        return None
    if manifest.get("format") != BUNDLE_FORMAT:
        result.problems.append(f"manifest.json: unknown format {manifest.get('format')!r}")
    listed = manifest.get("files") or {}
    for name in CONTENT_FILES:
        if name not in listed:
            result.problems.append(f"manifest.json: does not list {name}")
    for name, entry in sorted(listed.items()):
        if name not in files:
            result.problems.append(f"missing file: {name}")
        elif not isinstance(entry, dict) or _sha256(files[name]) != entry.get("sha256"):
            result.problems.append(f"{name}: sha256 mismatch")
    for name in sorted(set(files) - set(listed) - {MANIFEST, MANIFEST_SIG}):
        result.problems.append(f"{name}: not listed in the manifest")
    return manifest


def _period(evidence: dict[str, Any]) -> tuple[datetime, datetime] | None:
    try:
        return (
            datetime.fromisoformat(evidence["period"]["start"]),
            datetime.fromisoformat(evidence["period"]["end"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _check_checkpoints(
    doc: dict[str, Any],
    *,
    origin: str,
    key: bytes,
    trusted_previous: str | None,
    evidence: dict[str, Any] | None,
    result: BundleVerification,
) -> None:
    try:
        current = open_checkpoint(doc["checkpoint"]["note"], name=origin, public_key=key)
    except (CheckpointError, KeyError, TypeError) as exc:
        result.problems.append(f"checkpoint signature invalid: {exc}")
        return
    result.summary["tree_size"] = current.size
    if doc["checkpoint"].get("tree_size") != current.size:
        result.problems.append("checkpoint.json: tree_size differs from the signed note")
    _check_consistency(doc, current, origin=origin, key=key, trusted=trusted_previous, result=result)
    _check_inclusion(doc, current, evidence=evidence, result=result)


def _check_consistency(
    doc: dict[str, Any],
    current: Checkpoint,
    *,
    origin: str,
    key: bytes,
    trusted: str | None,
    result: BundleVerification,
) -> None:
    previous_doc = doc.get("previous")
    if previous_doc is None:
        if trusted is not None:
            result.problems.append("no consistency proof in the bundle, but a previous checkpoint was given")
        else:
            result.notes.append("first report of this log: no previous checkpoint to extend")
        return
    try:
        previous = open_checkpoint(trusted or previous_doc["note"], name=origin, public_key=key)
    except (CheckpointError, KeyError, TypeError) as exc:
        result.problems.append(f"previous checkpoint signature invalid: {exc}")
        return
    if trusted is None:
        result.notes.append(
            "previous checkpoint taken from the bundle; pass --previous with the last report you verified "
            "to check that this one extends it"
        )
    try:
        check_consistency(previous, current, doc.get("consistency") or {})
    except CheckpointError as exc:
        result.problems.append(
            "consistency proof does not extend previous checkpoint "
            f"(size {previous.size} -> {current.size}): {exc}"
        )
        return
    result.summary["extends"] = previous.size


def _check_inclusion(
    doc: dict[str, Any], current: Checkpoint, *, evidence: dict[str, Any] | None, result: BundleVerification
) -> None:
    sample = doc.get("sample") or {}
    proofs = doc.get("inclusion") or []
    try:
        expected = sample_seqs(sample["seed"], sample["first_seq"], sample["last_seq"], sample["size"])
    except (KeyError, TypeError, ValueError):
        result.problems.append("checkpoint.json: the inclusion sample has no usable seed and range")
        return
    got = [p.get("leaf_index") for p in proofs if isinstance(p, dict)]
    if got != expected:
        result.problems.append("checkpoint.json: the inclusion sample does not match its recorded seed")
    if evidence is not None and evidence.get("log", {}).get("last_seq") not in (None, sample["last_seq"]):
        result.problems.append("checkpoint.json: the sample's range is not the period's entries")
    period = _period(evidence) if evidence else None
    for proof in proofs:
        seq = proof.get("leaf_index") if isinstance(proof, dict) else None
        try:
            check_inclusion(current, proof)
        except (CheckpointError, AttributeError, TypeError, ValueError) as exc:
            result.problems.append(f"inclusion proof for seq {seq} fails: {exc}")
            continue
        created = (proof.get("entry") or {}).get("content", {}).get("created_at")
        if period and created:
            moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
            if not period[0] <= moment < period[1]:
                result.problems.append(f"inclusion proof for seq {seq}: the entry is outside the period")
    result.summary["inclusion_proofs"] = len(proofs)


def _check_oscal(files: dict[str, bytes], schema_override: bytes | None, result: BundleVerification) -> None:
    schema_bytes = schema_override
    if schema_bytes is None:
        schema_bytes = files.get(OSCAL_SCHEMA)
        if schema_bytes is None:
            return  # already named as missing
        if _sha256(schema_bytes) != OSCAL_SCHEMA_SHA256:
            result.problems.append(f"{OSCAL_SCHEMA}: not the NIST OSCAL {OSCAL_VERSION} release file")
            return
    document = _json(OSCAL, files.get(OSCAL, b"null"), result)
    if document is None:
        return
    problems = oscal_problems(document, json.loads(schema_bytes))
    if problems is None:
        result.notes.append("OSCAL check skipped: install jsonschema (pip install jsonschema) to run it")
    elif problems:
        result.problems.append(f"OSCAL document invalid: {'; '.join(problems)}")
    else:
        result.summary["oscal"] = f"valid against OSCAL {OSCAL_VERSION}"


def verify_bundle(
    source: str | Path | bytes,
    *,
    public_key_b64: str | None = None,
    previous_note: str | None = None,
    oscal_schema: bytes | None = None,
) -> BundleVerification:
    """Check a report bundle offline and name everything wrong with it.

    ``public_key_b64`` pins the audit key (from ``GET /v1/audit/public-key`` or your records); without
    it the key shipped in the bundle is used and the result says so, since a forger would ship theirs.
    ``previous_note`` is the checkpoint of the last report you verified: the bundle must extend it.
    """
    result = BundleVerification()
    files = _read_bundle(source, result)
    if files is None:
        return result
    try:
        unsigned = json.loads(files.get(MANIFEST, b"{}"))
        shipped = unsigned.get("public_key_b64", "") if isinstance(unsigned, dict) else ""
        key = _public_key(public_key_b64 or shipped, "--public-key" if public_key_b64 else "the bundle's key")
    except ValueError as exc:
        result.problems.append(f"public key unusable: {exc}")
        return result
    if public_key_b64 is None:
        result.notes.append("public key taken from the bundle itself: pin it with --public-key")
    elif shipped and shipped != public_key_b64:
        result.notes.append("the bundle names another public key than the pinned one")
    manifest = _check_manifest(files, key, result)
    if manifest is None:
        return result
    result.summary.update(
        {k: manifest.get(k) for k in ("report_id", "tenant", "framework", "period", "created_at")}
    )
    evidence = _json(EVIDENCE, files[EVIDENCE], result) if EVIDENCE in files else None
    if evidence is not None and (
        evidence.get("period") != manifest.get("period")
        or evidence.get("tenant", {}).get("slug") != manifest.get("tenant")
    ):
        result.problems.append("evidence.json: tenant or period differs from the manifest")
    doc = _json(CHECKPOINT, files[CHECKPOINT], result) if CHECKPOINT in files else None
    if doc is not None:
        origin = str(manifest.get("log_origin", ""))
        _check_checkpoints(
            doc, origin=origin, key=key, trusted_previous=previous_note, evidence=evidence, result=result
        )
        if evidence is not None and evidence.get("checkpoint", {}).get("tree_size") != result.summary.get(
            "tree_size"
        ):
            result.problems.append("evidence.json: its checkpoint is not the bundle's checkpoint")
    _check_oscal(files, oscal_schema, result)
    return result
