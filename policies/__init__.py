"""fraudstack's policy pack: the platform's security rules as code.

``policies.rules.RULES`` holds every rule; ``policies/__main__.py`` serves them to the
Pulumi CLI and ``policies.engine.evaluate`` runs them in-process (offline preview, tests).
"""
