"""The task engine: every execution of every kind runs through it."""

from knm.core.tasks.executor import Cancelled, Executor, Prepared, TargetNode, TaskContext
from knm.core.tasks.schemas import ExecRequest, NodeResult, TaskRow

__all__ = [
    "Cancelled",
    "ExecRequest",
    "Executor",
    "NodeResult",
    "Prepared",
    "TargetNode",
    "TaskContext",
    "TaskRow",
]
