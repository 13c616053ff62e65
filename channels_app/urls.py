from channels_app.api import views
from common.urls import api_route

WS = "workspaces/<uuid:workspace_id>"
CH = f"{WS}/channels/<uuid:channel_id>"

# The inbound webhook is the busiest route of the service: the root URLconf lists these patterns
# first, so resolving a webhook does not walk every other app's patterns (~60 regex matches).
webhook_urlpatterns = [
    *api_route("webhooks/<str:platform>", views.WebhookView.as_view(), "channel-webhook"),
]

urlpatterns = [
    *api_route("channels/adapters", views.AdapterListView.as_view(), "channel-adapters"),
    *api_route("channels/discover", views.DiscoverView.as_view(), "channel-discover"),
    *api_route(f"{WS}/channels", views.ChannelListView.as_view(), "channel-list"),
    *api_route(CH, views.ChannelDetailView.as_view(), "channel-detail"),
    *api_route(f"{CH}/send", views.ChannelSendView.as_view(), "channel-send"),
    *api_route(f"{CH}/test", views.ChannelTestView.as_view(), "channel-test"),
    *api_route(f"{CH}/messages", views.ChannelMessageListView.as_view(), "channel-messages"),
    *api_route(f"{CH}/conversations", views.ChannelConversationListView.as_view(), "channel-conversations"),
]
