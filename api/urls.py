from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api import views

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("numbers/", views.NumberList.as_view(), name="api-numbers"),
    path("numbers/<int:pk>/", views.NumberDetail.as_view(), name="api-number"),
    path("contacts/", views.ContactList.as_view(), name="api-contacts"),
    path("contacts/<int:pk>/", views.ContactDetail.as_view(), name="api-contact"),
    path("conversations/", views.ConversationList.as_view(), name="api-conversations"),
    path("conversations/<int:pk>/", views.ConversationDetail.as_view(), name="api-conversation"),
    path("conversations/<int:pk>/assign/", views.ConversationAssign.as_view(), name="api-conversation-assign"),
    path("conversations/<int:pk>/status/", views.ConversationStatus.as_view(), name="api-conversation-status"),
    path("conversations/<int:pk>/messages/", views.MessageList.as_view(), name="api-messages"),
    path("conversations/<int:pk>/labels/", views.ConversationLabels.as_view(), name="api-conversation-labels"),
    path("conversations/<int:pk>/labels/<int:label_id>/", views.ConversationLabelDetail.as_view(),
         name="api-conversation-label"),
    path("conversations/<int:pk>/media/", views.MediaSend.as_view(), name="api-media-send"),
    path("messages/<int:pk>/", views.MessageDetail.as_view(), name="api-message"),
    path("messages/<int:pk>/media/", views.MessageMedia.as_view(), name="api-message-media"),
    path("labels/", views.LabelList.as_view(), name="api-labels"),
    path("labels/<int:pk>/", views.LabelDetail.as_view(), name="api-label"),
    path("alerts/", views.AlertList.as_view(), name="api-alerts"),
]
