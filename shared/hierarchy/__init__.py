"""Hierarchical configuration (company > branch > service > staff) with a never-stale cache.

Written once for every setting configured per level (policies, notifications): `chain`
(the levels and the pure merge), `queries` (the chain's one read, the levels' rows),
`writes` (one scope's row and its audit trail), `cache` (the versioned Redis cache),
`reads` (where a use case reads: raw pool or session) and `effective` (the effective value
of a target, from the cache or the database).
"""
