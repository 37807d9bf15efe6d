"""The project's URLconf with the /v1/ JSON error handlers wired, as ``flk_project.urls`` wires them.

One extra route fails on purpose, to show what an unexpected failure under /v1/ answers.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from flk_project.urls import urlpatterns as project_urlpatterns


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug, on purpose")


urlpatterns = [path("v1/test-failure", fail), *project_urlpatterns]

handler404 = "flk_project.api_errors.page_not_found"
handler500 = "flk_project.api_errors.server_error"
