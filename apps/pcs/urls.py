from django.urls import path

from apps.pcs.api import FloorView, SubmitView

urlpatterns = [
    path("pcs/submit", SubmitView.as_view(), name="pcs-submit"),
    path("bench/floor", FloorView.as_view(), name="bench-floor"),
]
