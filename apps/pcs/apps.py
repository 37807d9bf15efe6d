from django.apps import AppConfig


class PcsConfig(AppConfig):
    name = "apps.pcs"
    verbose_name = "PCS ingest"

    def ready(self) -> None:
        # The async audit walks every log; decision entries are checked by the ingest app's verifier.
        from apps.audit.reverify import verifier_register
        from apps.pcs.reverify import DECISION_KIND, DecisionVerifier

        verifier_register(DECISION_KIND, DecisionVerifier())
