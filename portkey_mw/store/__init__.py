"""The control-plane store: records, the protocol every part is written against, and
the SQL implementation."""
