"""The bot on Telegram (python-telegram-bot v22): ``runtime`` (what handlers and jobs share), ``sending``
(rendering Replies as messages), ``handlers`` (updates in), ``delivery`` (the delivery run) and ``app``
(wiring, jobs, the ``run`` and ``deliver`` entry points).
"""
from bot.telegram.app import build_application, deliver_once, protect_token, run_telegram, running, schedule_jobs
from bot.telegram.delivery import Deliverer, DeliveryReport
from bot.telegram.runtime import Runtime, open_runtime

__all__ = ["Deliverer", "DeliveryReport", "Runtime", "build_application", "deliver_once", "open_runtime",
           "protect_token", "run_telegram", "running", "schedule_jobs"]
