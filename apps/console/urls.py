"""``/admin/console/``: the console inside the admin (login, staff check and CSRF of the admin site)."""

from django.contrib import admin
from django.urls import path

from apps.console import views

app_name = "console"
urlpatterns = [path("", admin.site.admin_view(views.console), name="console")]
