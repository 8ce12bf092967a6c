from django.urls import path

from inbox.consumers import InboxConsumer

websocket_urlpatterns = [
    path("ws/t/<slug:slug>/", InboxConsumer.as_asgi()),
]
