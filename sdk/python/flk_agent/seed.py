"""``PCSAgent``: the agent class of the original FLK README, on top of this package's real agent.

Code written against the seed's documentation keeps working::

    agent = PCSAgent(shard_id="dev-001", endpoint="http://127.0.0.1:8000/v1/pcs/submit",
                     sign_alg="hmac", hmac_key="...")
    pcs = agent.compute_pcs(epoch=1, scales=[2, 4, 8], N_j={2: 3, 4: 5, 8: 9},
                            points=points, raw_data=b"...", seed=42)
    success = agent.submit_pcs(pcs)

Underneath, ``compute_pcs`` is ``build_pcs`` (the one implementation of DESIGN §2: Merkle root, coh★,
r, regime, budget, signature) and ``submit_pcs`` puts the PCS in an ``Outbox`` (fsynced before it is
sent) and delivers it with ``deliver_record``: retries with backoff and ``Retry-After``, permanent
refusals to the dead-letter file. ``True`` means the server decided it (200 accepted or 202 escalated).
"""

from __future__ import annotations

import base64
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flk_agent import signals
from flk_agent.builder import build_pcs, sign_pcs
from flk_agent.client import SUBMIT_PATH, FlkClient
from flk_agent.delivery import ACCEPTED, DeliveryReport, RetryPolicy, deliver_pending, deliver_record
from flk_agent.outbox import Outbox
from flk_agent.signing import Ed25519Signer, HmacSigner, Signer

__all__ = ["PCSAgent"]


def _base_url(endpoint: str) -> str:
    """The server's base URL from the seed's endpoint, which named the submit URL itself."""
    endpoint = endpoint.rstrip("/")
    return endpoint[: -len(SUBMIT_PATH)] if endpoint.endswith(SUBMIT_PATH) else endpoint


def _signer(sign_alg: str, hmac_key: str | bytes | None, ed25519_priv_b64: str | None) -> Signer:
    if sign_alg == "hmac":
        if not hmac_key:
            raise ValueError("sign_alg='hmac' needs hmac_key")
        return HmacSigner(hmac_key.encode() if isinstance(hmac_key, str) else hmac_key)
    if sign_alg == "ed25519":
        if not ed25519_priv_b64:
            raise ValueError("sign_alg='ed25519' needs ed25519_priv_b64 (base64 of the 32-byte seed)")
        return Ed25519Signer.from_seed(base64.b64decode(ed25519_priv_b64))
    # The seed also knew "none"; FLK verifies every signature, so an unsigned PCS could only fail.
    raise ValueError(f"sign_alg must be 'hmac' or 'ed25519', got {sign_alg!r}")


class PCSAgent:
    """Compute and submit PCS for one shard, with the seed's names; close it (or use ``with``)."""

    def __init__(
        self,
        shard_id: str,
        endpoint: str,
        sign_alg: str = "hmac",
        hmac_key: str | bytes | None = None,
        ed25519_priv_b64: str | None = None,
        outbox_path: str | os.PathLike[str] = "flk-outbox",
        dlq_path: str | None = None,
        verify_tls: bool = True,
        *,
        tenant: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        """``endpoint`` is the submit URL (``…/v1/pcs/submit``) or the server's base URL.

        ``outbox_path`` is the outbox directory (it holds the log and ``dead-letter.jsonl``, so the
        seed's separate ``dlq_path`` is not used). The outbox is locked while the agent is open: one
        process per outbox.
        """
        if not verify_tls:
            raise ValueError("verify_tls=False is not supported: give the server a certificate you trust")
        if dlq_path is not None:
            warnings.warn(
                f"dlq_path is not used: dead letters are in {os.fspath(outbox_path)}/dead-letter.jsonl",
                stacklevel=2,
            )
        self.shard_id = shard_id
        self.sign_alg = sign_alg
        self._signer = _signer(sign_alg, hmac_key, ed25519_priv_b64)
        self.policy = policy or RetryPolicy()
        self.outbox = Outbox(outbox_path)
        self.client = FlkClient(_base_url(endpoint), tenant=tenant)
        self.last_status: int | None = None

    def compute_pcs(
        self,
        epoch: int,
        scales: Sequence[int],
        N_j: Mapping[int | str, int] | None,
        points: np.ndarray,
        raw_data: bytes,
        seed: int,
        attempt: int = 1,
    ) -> dict[str, Any]:
        """A complete signed PCS for ``epoch`` of this shard.

        ``N_j`` are the occupied cells per scale, as the seed took them; ``None`` counts them from
        ``points`` (box counting of DESIGN §2). D̂, the regime and the budget follow from them.
        """
        pcs = build_pcs(
            points=np.asarray(points, dtype=np.float64),
            raw=raw_data,
            shard_id=self.shard_id,
            epoch=epoch,
            seed=seed,
            signer=self._signer,
            scales=list(scales),
            attempt=attempt,
        )
        if N_j is not None:
            counts = {str(k): int(v) for k, v in N_j.items()}
            if set(counts) != {str(s) for s in scales}:
                raise ValueError("N_j must have one count for each scale")
            d_hat = signals.d_hat(list(scales), counts)
            pcs.update(
                N_j=counts,
                D_hat=d_hat,
                regime=signals.regime(pcs["coh_star"], d_hat),
                budget=signals.budget(pcs["coh_star"], d_hat, pcs["r"]),
            )
            pcs.pop("sig")
            sign_pcs(pcs, self._signer)
        return pcs

    def submit_pcs(self, pcs: dict[str, Any]) -> bool:
        """Store the PCS in the outbox, deliver it; ``True`` when the server decided it (200 or 202).

        ``False``: it is in the dead-letter file (a permanent refusal, or the retry budget ran out);
        ``flk-agent outbox status`` says why. ``last_status`` holds the server's last status.
        """
        record = self.outbox.put(pcs)
        deliver_record(self.outbox, self.client, record, policy=self.policy)
        self.last_status = record.last_status
        return record.state == "acked" and record.last_status in ACCEPTED

    def retry_pending(self) -> DeliveryReport:
        """Deliver whatever the outbox still holds pending (after a crash, say)."""
        return deliver_pending(self.outbox, self.client, policy=self.policy)

    def close(self) -> None:
        """Close the connection pool and release the outbox."""
        self.client.close()
        self.outbox.close()

    def __enter__(self) -> PCSAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
