from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = _("API and webhooks")

    def ready(self):
        # The core records its events through inbox.integrations and never imports this app; webhook
        # deliveries are written by this recorder, in the transaction of each change.
        from api import webhooks
        from inbox import integrations

        integrations.register_recorder(webhooks.record_events)
