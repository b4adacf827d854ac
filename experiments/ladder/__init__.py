"""c10m-ladder: probe the box, plan the rungs (C10K, C100K, C1M, and the box's own ceilings),
climb them, name each rung's wall from evidence gathered during the run, and write one
self-contained HTML page, the JSON behind it and a Markdown summary (docs/LADDER.md)."""
