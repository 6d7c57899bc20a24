"""The Teams edge and composition root. Botbuilder imports stay in ``bot/`` and ``dialogs/``."""
