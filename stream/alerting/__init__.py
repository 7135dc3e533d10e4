"""Alerting concepts, one home each, and the notifier's stages in pipeline order.

- ``matchers``: the label matcher (Alertmanager syntax, RE2 regexes);
- ``labels``: the labels of an alert and its fingerprint;
- ``silences``: the silence and acknowledgement store (the compacted silences topic);
- the notifier's stages: ``route`` (1, route tree) -> ``groups`` (2, aggregation
  groups) -> ``inhibit`` (3, at group flush) -> silences (4) -> acknowledgements (5)
  -> receivers (6, connectors/notify), run together by ``pipeline``.

The worker evaluates rules (stream/lifecycle.py) and publishes alert state; the
notifier dispatches. Connectors never import this package: they get a finished
``schemas.notification.Notification``.
"""
