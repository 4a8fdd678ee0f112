"""Channels: one module per channel behind one small interface."""

from channels.interfaces import Channel

__all__ = ["Channel"]
