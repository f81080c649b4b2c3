"""After-mutation signals of the family service. Receivers get `family` and `contributions` (a dict keyed by
module name; the notifier reads `contributions["PolicyNotification"]`, the seed's consent payload)."""

from __future__ import annotations

from django.dispatch import Signal

family_created = Signal()
family_updated = Signal()
family_deleted = Signal()
insuree_changed = Signal()
