from django.urls import path

from inbox.consumers import InboxConsumer, OpsConsumer

websocket_urlpatterns = [
    path("ws/t/<slug:slug>/", InboxConsumer.as_asgi()),
    path("ws/ops/", OpsConsumer.as_asgi()),
]
