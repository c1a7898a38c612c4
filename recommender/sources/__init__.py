"""Where papers come from: the arXiv client (RSS, query API; all HTTP to arXiv) and file import (snapshot, corpus
JSONL)."""
