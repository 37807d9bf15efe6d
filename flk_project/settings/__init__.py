"""Settings: ``base`` is the embedded default; ``production``, ``test`` and ``bench`` build on it."""
