"""The records a server and its trainer share, each with one writer (`layout.py` lists them).

- `layout.py`: the state directory's paths and owners, and atomic JSON writes.
- `traces.py`: the trace log: servers write, the trainer reads, over a database:
  `sqlite.py` (embedded, one file, WAL) or `postgres.py` (shared by several replicas).
- `checkpoints.py`: versions (the trainer's manifests) and the promotion history (the
  server's), behind the `Checkpoints` interface.
- `training.py`: training control (the server's) and the trainer's status.

The runtime (`runtime/`) and the trainer (`rl_loop/`) both import this package; it imports
neither. The embedded implementations are a local folder and a SQLite file; traces also go
to Postgres (`trace_store = "postgresql://..."`).
"""
