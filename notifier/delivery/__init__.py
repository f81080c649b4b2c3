"""Getting each outbox row out exactly once: `store` (all SQL: leases, claims, the ownership proof, outcomes),
`lease` (the thread that keeps a run's leases alive), `policy` (pure: what happens next to one message), `runner`
(a chunk through the providers) and `operator` (resend, cancel, test send)."""
