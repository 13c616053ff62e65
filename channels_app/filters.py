"""Query filters of the message log."""

from __future__ import annotations

import django_filters

from channels_app.models import ChannelMessage, Direction, MessageStatus


class MessageFilter(django_filters.FilterSet):
    direction = django_filters.ChoiceFilter(choices=Direction.choices)
    status = django_filters.ChoiceFilter(choices=MessageStatus.choices)

    class Meta:
        model = ChannelMessage
        fields = ("direction", "status")
