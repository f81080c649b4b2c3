"""The openIMIS mirror: the openIMIS tables the notifier reads (and tblFamilySMS, which it writes).

Who owns these tables is one setting, `OPENIMIS_MODE`: *standalone* (default) creates and migrates them like any
other table; *attached* reads them where openIMIS keeps them (`OPENIMIS_DB_SCHEMA`, schema-qualified) and never
creates, alters, indexes or writes them, except consent rows in tblFamilySMS (notifier.openimis.consent).
"""
