"""Source adapters: plan read tasks on the driver, read them into Documents on the workers.

`registry` maps input formats to planners and containers to readers; `base` holds what readers share.
"""

from lemur_corpus.sources.base import ReadTask, planned_documents
from lemur_corpus.sources.registry import PLANNERS, READERS, plan_input, read_task

__all__ = ["PLANNERS", "READERS", "ReadTask", "plan_input", "planned_documents", "read_task"]
