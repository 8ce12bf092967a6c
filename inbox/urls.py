from django.contrib.auth import views as auth_views
from django.urls import path

from inbox import views, views_tools

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tenants/", views.tenant_picker, name="tenant_picker"),
    path("health/", views.health, name="health"),
    path("health/detailed", views.health_detailed, name="health_detailed"),
    path("ops/", views.ops_page, name="ops"),
    path("health/detailed/", views.health_detailed),
    # Every tenant page lives under /t/<slug>/ and is wrapped by inbox.resolver.tenant_view.
    path("t/<slug:slug>/", views.inbox, name="inbox"),
    path("t/<slug:slug>/list/", views.conversation_list, name="conversation_list"),
    path("t/<slug:slug>/c/<int:pk>/", views.conversation, name="conversation"),
    path("t/<slug:slug>/c/<int:pk>/messages/", views.thread_messages, name="thread_messages"),
    path("t/<slug:slug>/c/<int:pk>/reply/", views.reply, name="reply"),
    path("t/<slug:slug>/c/<int:pk>/assign/", views.assign, name="assign"),
    path("t/<slug:slug>/c/<int:pk>/status/", views.set_status, name="set_status"),
    path("t/<slug:slug>/c/<int:pk>/read/", views.mark_read, name="mark_read"),
    path("t/<slug:slug>/c/<int:pk>/history/", views.request_history, name="request_history"),
    path("t/<slug:slug>/c/<int:pk>/m/<int:message_id>/resend/", views.resend_message, name="resend_message"),
    path("t/<slug:slug>/connections/", views.connections_page, name="connections"),
    path("t/<slug:slug>/alerts/<int:alert_id>/acknowledge/", views.acknowledge_alert, name="acknowledge_alert"),
    path("t/<slug:slug>/connections/stats/", views.connection_stats, name="connection_stats"),
    path("t/<slug:slug>/connections/add/", views.connection_add, name="connection_add"),
    path("t/<slug:slug>/connections/<int:pk>/rename/", views.connection_rename, name="connection_rename"),
    path("t/<slug:slug>/connections/<int:pk>/filters/", views.connection_filters, name="connection_filters"),
    path("t/<slug:slug>/connections/<int:pk>/delete/", views.connection_delete, name="connection_delete"),
    path("t/<slug:slug>/connections/<int:pk>/history/", views.connection_history_page, name="connection_history"),
    path("t/<slug:slug>/members/", views.members_page, name="members"),
    path("t/<slug:slug>/members/add/", views.member_add, name="member_add"),
    path("t/<slug:slug>/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("t/<slug:slug>/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("t/<slug:slug>/alerts/emails/", views.alert_emails, name="alert_emails"),
    path("t/<slug:slug>/alerts/webhook/", views.alert_webhook, name="alert_webhook"),
    path("t/<slug:slug>/connections/<int:pk>/action/", views.connection_action, name="connection_action"),
    path("t/<slug:slug>/connections/<int:pk>/pair/", views.connection_pair, name="connection_pair"),
    path("t/<slug:slug>/connections/<int:pk>/pairing/", views.connection_pairing, name="connection_pairing"),
    # The agent's tools (issue 15): inbox/views_tools.py.
    path("t/<slug:slug>/c/<int:pk>/notes/", views_tools.add_note, name="add_note"),
    path("t/<slug:slug>/mentions/", views_tools.mentions_page, name="mentions"),
    path("t/<slug:slug>/mentions/badge/", views_tools.mentions_badge, name="mentions_badge"),
    path("t/<slug:slug>/mentions/read/", views_tools.mentions_read, name="mentions_read"),
]
