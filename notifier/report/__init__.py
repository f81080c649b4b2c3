"""The family policy notification report (SPEC §9): query (parameters and the one SELECT), pdf, views (the
endpoint, the sign-in page and the report form outside the admin), access (rights and API tokens), admin (the
report form in the admin), files (big reports produced by a worker)."""
