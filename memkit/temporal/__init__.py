"""Time for memories: event-time values (:mod:`.times`) and time expressions in queries
(:mod:`.query`)."""

from memkit.temporal.times import TimeParser, to_epoch

__all__ = ["TimeParser", "to_epoch"]
