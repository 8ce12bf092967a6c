from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("t/<slug:slug>/api/", include("api.page_urls")),
    path("", include("inbox.urls")),
]
