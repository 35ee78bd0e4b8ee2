"""The SQL log store: the request-log tables, their writer and their queries."""

from portkey_mw.logstore.query import GROUP_FIELDS, LogFilter, LogQueries

__all__ = ["GROUP_FIELDS", "LogFilter", "LogQueries"]
