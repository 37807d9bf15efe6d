"""flk-agent: the one implementation of the FLK PCS protocol, version 0.1.

The server imports this package; nothing here is implemented twice.
"""

from flk_agent.pcs import PCS_SCHEMA, PCS_VERSION, compute_pcs_id, payload_digest, signing_payload
from flk_agent.signing import Ed25519Signer, HmacSigner, Signer, verify_signature
from flk_agent.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "PCS_SCHEMA",
    "PCS_VERSION",
    "Ed25519Signer",
    "HmacSigner",
    "Signer",
    "WebhookVerificationError",
    "compute_pcs_id",
    "payload_digest",
    "signing_payload",
    "verify_signature",
    "verify_webhook",
]
