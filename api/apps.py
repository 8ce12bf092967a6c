from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API and webhooks"

    def ready(self):
        # The core records its events through inbox.integrations and never imports this app; webhook
        # deliveries are written by this recorder, in the transaction of each change.
        from api import webhooks
        from inbox import integrations

        integrations.register_recorder(webhooks.record_events)
