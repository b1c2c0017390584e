"""Source adapters: plan read tasks on the driver, read them into Documents on the workers."""

from corpus.sources.base import ReadTask, plan_input, read_task

__all__ = ["ReadTask", "plan_input", "read_task"]
