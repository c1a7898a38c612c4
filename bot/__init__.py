"""The chat side of arxiv-digest: transport-free commands (``commands`` and the ``cmd_*`` groups), rich text and
rendering (``rich``, ``render``, ``reply``), the Telegram front end (``telegram``, ``pacing``), the terminal
front end (``console``), delivery scheduling (``schedule``) and the ``run``/``deliver``/``users`` subcommands
(``cli``). It depends on ``recommender``; nothing in ``recommender`` imports it.
"""
