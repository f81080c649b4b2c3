"""The indexes that make detection fast on the openIMIS tables (SPEC §14: indexes are the DBA's call).

Standalone, the service owns its copies of these tables and its migrations create these indexes (Policy.Meta;
tests/test_attached_check.py holds the two lists together). Attached, nothing creates them: `manage.py
openimis_indexes` prints the statements and `--apply` runs them; the system check warns while one is missing.
Detection is correct without them, only slower (bench/README.md, "attached").

Each index comes from a query detection runs (EXPLAINed on the openIMIS schema):
- activation / renewal: current policies whose ValidityFrom lies in the due window, then the version before
  each (the newest history row with LegacyID = its id);
- starting: current active policies by EffectiveDate;
- the three expiry types: current policies by ExpiryDate.
The family's other policies (not renewed) and consent are reached through openIMIS's own indexes
(tblPolicy "FamilyID", tblFamilySMS's UNIQUE (FamilyID, ValidityTo)).
"""

from __future__ import annotations

from dataclasses import dataclass

from notifier.openimis.mode import openimis_schema


@dataclass(frozen=True)
class RecommendedIndex:
    model_index: str  # its name in standalone mode (Policy.Meta.indexes)
    table: str
    columns: tuple[str, ...]
    where: str | None  # the predicate of a partial index, as PostgreSQL prints it back
    why: str

    @property
    def name(self) -> str:
        """In openIMIS's schema the name says whose index it is."""
        return f"notifier_{self.model_index}"

    def statement(self, schema: str) -> str:
        columns = ", ".join(f'"{column}"' for column in self.columns)
        where = f" WHERE {self.where}" if self.where else ""
        return f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{self.name}" ON "{schema}"."{self.table}" ({columns}){where};'


CURRENT = '"ValidityTo" IS NULL'
HISTORY = '"ValidityTo" IS NOT NULL'

RECOMMENDED_INDEXES = (
    RecommendedIndex(
        "policy_current_from_idx",
        "tblPolicy",
        ("ValidityFrom",),
        CURRENT,
        "activation and renewal: current policies that became valid in the due window",
    ),
    RecommendedIndex(
        "policy_history_idx",
        "tblPolicy",
        ("LegacyID", "ValidityTo"),
        HISTORY,
        "activation and renewal: the version before the current row (newest history row of the policy)",
    ),
    RecommendedIndex(
        "policy_effective_idx",
        "tblPolicy",
        ("EffectiveDate",),
        None,
        "starting_of_policy: policies by EffectiveDate",
    ),
    RecommendedIndex(
        "policy_expiry_idx",
        "tblPolicy",
        ("ExpiryDate",),
        None,
        "need_for_renewal, expiration_of_policy, reminder_after_expiration: policies by ExpiryDate",
    ),
)


def index_statements(schema: str | None = None) -> list[str]:
    schema = schema or openimis_schema()
    return [index.statement(schema) for index in RECOMMENDED_INDEXES]
