"""Outcomes and model quality: every prediction a client received is recorded (``writer``), the
real outcomes are taken in when they arrive (``ingest``) and joined to the predictions they belong
to (``join``), behind one small store interface (``store``: SQLite by default, PostgreSQL when
several gateways share one log), and model quality is judged on them (``quality``). The
gateway uses only the writer on its hot path."""
