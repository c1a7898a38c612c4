"""What tests and benchmarks share: the fake Bot API server, a local HTTP server playing arXiv, arXiv XML
builders and the bot's fixtures. Benchmarks import it by name (``tests.support``) with the repository root on
``sys.path``."""
