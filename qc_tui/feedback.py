"""A panel saying how the last step went: ``-ok``, ``-error`` or ``-info`` on it (each app's
stylesheet colours them: green, red, plain), the text beside."""

from __future__ import annotations

from textual.widgets import Static

KINDS = ("ok", "error", "info")


class ResultPanel(Static):
    def say(self, text: str, kind: str = "info") -> None:
        for name in KINDS:
            self.set_class(name == kind, f"-{name}")
        self.update(text)

    @property
    def kind(self) -> str | None:
        return next((name for name in KINDS if self.has_class(f"-{name}")), None)
