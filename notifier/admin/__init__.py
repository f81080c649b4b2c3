"""Admin for scheme staff: families with consent, the openIMIS mirror (read-mostly), and the notifier's tables.
Importing the package (Django's autodiscover does) registers every page; the site itself is `admin_site.py`."""

from notifier.admin import families, openimis, outbox, providers, records, templates
from notifier.report import admin as report_admin

__all__ = ["families", "openimis", "outbox", "providers", "records", "report_admin", "templates"]
