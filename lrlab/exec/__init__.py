"""Where runs execute: in this process, or spread over local worker processes."""

from .local import run_many

__all__ = ["run_many"]
