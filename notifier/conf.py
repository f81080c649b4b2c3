"""TEMPORARY, for the merge only: get_config lives in notifier.settings. delivery.py, coordination.py and
report_access.py (moved by other branches) still import it from here; delete this module once they import
notifier.settings."""

from notifier.settings import get_config

__all__ = ["get_config"]
