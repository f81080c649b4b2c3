"""Getting each outbox row out exactly once: `store` (claims, leases, the ownership proof, what a run loads, the
sweeper's side), `lease` (the thread that keeps a run's leases alive), `policy` (pure: what happens next to one
message), `chunk` (what a run loads once and keeps until it writes), `outcomes` (a run's writes), `runner` (a chunk
through the providers) and `operator` (resend, cancel, test send)."""
