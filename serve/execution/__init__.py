"""Building blocks of live execution: records, risk limits and kill switch, the write-ahead journal,
reconciliation helpers and their configuration."""
