from django.core.asgi import get_asgi_application

from config.env import use_default_settings_module

use_default_settings_module()  # production unless told otherwise (config/env.py)
# Load Django (apps, models) before anything imports the websocket routes.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from inbox.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# The socket server's startup heap (Django, the apps, Channels, Twisted: ~150,000 objects) out of the cyclic
# collector's full collections, as in the Celery workers and the runner's session hosts (config/heap.py).
from config.heap import freeze_startup_heap  # noqa: E402

freeze_startup_heap()
