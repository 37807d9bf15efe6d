from django.urls import path

from apps.audit.api import CheckpointView, ConsistencyProofView, InclusionProofView, PublicKeyView

urlpatterns = [
    path("public-key", PublicKeyView.as_view(), name="audit-public-key"),
    path("<slug:tenant>/checkpoint", CheckpointView.as_view(), name="audit-checkpoint"),
    path("<slug:tenant>/proof/inclusion", InclusionProofView.as_view(), name="audit-inclusion"),
    path("<slug:tenant>/proof/consistency", ConsistencyProofView.as_view(), name="audit-consistency"),
]
