"""Conversation memory: chat turns in, turns and standalone facts out, with contradictions
resolved in event time. Entry point: :func:`remember` (``Memory.remember``)."""

from memkit.conversation.remember import RememberReport, remember

__all__ = ["RememberReport", "remember"]
