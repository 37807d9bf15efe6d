from django.urls import path

from apps.pcs.api import FloorView, SubmitBatchView, SubmitView
from apps.pcs.read_api import PcsDetailView, PcsListView, UsageView

urlpatterns = [
    path("pcs/submit", SubmitView.as_view(), name="pcs-submit"),
    path("pcs/submit:batch", SubmitBatchView.as_view(), name="pcs-submit-batch"),
    path("bench/floor", FloorView.as_view(), name="bench-floor"),
    path("pcs", PcsListView.as_view(), name="pcs-list"),
    path("pcs/<str:pcs_id>", PcsDetailView.as_view(), name="pcs-detail"),
    path("tenants/me/usage", UsageView.as_view(), name="tenant-usage"),
]
