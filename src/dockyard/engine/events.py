"""The event stream (`docker events`): a bounded history for --since, and subscribers that
receive each new event. Thread-safe: the engine's services run in worker threads while the
API's subscribers live on the event loop."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

_HISTORY = 1024


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: deque[dict[str, Any]] = deque(maxlen=_HISTORY)
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []

    def emit(self, kind: str, action: str, actor_id: str,
             attributes: dict[str, str] | None = None) -> dict[str, Any]:
        now = time.time_ns()
        event = {
            "Type": kind, "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
            "scope": "local", "time": now // 1_000_000_000, "timeNano": now,
        }
        if kind == "container":
            # The legacy fields older clients still read.
            event.update(status=action, id=actor_id,
                         **({"from": attributes["image"]} if attributes and "image" in
                            attributes else {}))
        with self._lock:
            self._history.append(event)
            subscribers = list(self._subscribers)
        for deliver in subscribers:
            deliver(event)
        return event

    def subscribe(self, deliver: Callable[[dict[str, Any]], None],
                  since_ns: int | None = None) -> list[dict[str, Any]]:
        """Registers deliver for new events; returns the past events since since_ns."""
        with self._lock:
            self._subscribers.append(deliver)
            if since_ns is None:
                return []
            return [e for e in self._history if e["timeNano"] >= since_ns]

    def unsubscribe(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            if deliver in self._subscribers:
                self._subscribers.remove(deliver)


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: type, event/action, container, image, label, ..."""
    actor = event["Actor"]
    attributes = actor["Attributes"]
    checks = {
        "type": [event["Type"]],
        "event": [event["Action"], event["Action"].split(":")[0]],
        "container": [actor["ID"], attributes.get("name", "")] if event["Type"] == "container"
        else [],
        "image": [attributes.get("image", ""), actor["ID"] if event["Type"] == "image" else ""],
        "network": [actor["ID"], attributes.get("name", "")] if event["Type"] == "network"
        else [],
        "volume": [actor["ID"]] if event["Type"] == "volume" else [],
    }
    for key, wanted in filters.items():
        if key == "label":
            for label in wanted:
                name, sep, value = label.partition("=")
                if name not in attributes or (sep and attributes[name] != value):
                    return False
            continue
        have = checks.get(key)
        if have is None:
            continue
        if not any(w in have or any(h.startswith(w) for h in have if h and key != "type")
                   for w in wanted):
            return False
    return True
