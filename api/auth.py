"""How an API request is let in: a tenant's token (Bearer), its scope, and its rate limit.

The token names the tenant; every view then reads through ``for_tenant(request.auth.tenant)`` and the
``inbox.access`` helpers, so another tenant's id is the same 404 as a missing one.
"""

from django.conf import settings
from django.core.cache import caches
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from config.scope import database_scope


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        from api.tokens import token_for_request

        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <token>, with one token.")
        try:
            value = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = token_for_request(value)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        # No Django user acts: the token is the tenant's integration (actions log it as user None).
        return (None, token)

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class HasApiToken(permissions.BasePermission):
    """A live token for every call; a read-write one for anything but GET/HEAD/OPTIONS."""

    message = "This token may only read (scope read); writes need a read-write token."

    def has_permission(self, request, view):
        from api.models import ApiToken

        token = request.auth
        if not isinstance(token, ApiToken):
            raise exceptions.NotAuthenticated("Authorization: Bearer <token> is required.")
        return request.method in permissions.SAFE_METHODS or token.can_write


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """``API_TOKEN_RATE`` requests per token, counted in Redis (the ``api`` cache) so every web process
    shares the count. Keyed by the token's hash (unique, never reused), under the deployment's scope."""

    scope = "api_token"

    def __init__(self):
        self.cache = caches["api"]
        super().__init__()

    def get_rate(self):
        return settings.API_TOKEN_RATE

    def get_cache_key(self, request, view):
        token = request.auth
        if token is None or not hasattr(token, "key_hash"):
            return None
        return f"throttle:{database_scope()}:{token.key_hash[:32]}"

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 - Redis down: serve the request unthrottled rather than fail it
            import logging

            logging.getLogger(__name__).warning("api.throttle_unavailable")
            return True


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The token in the OpenAPI document (drf-spectacular finds extensions by import)."""

    target_class = "api.auth.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "inb_<prefix>_<secret>"}
