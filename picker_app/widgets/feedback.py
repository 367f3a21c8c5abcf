"""Scan feedback: a clear green confirmation, a red refusal (with the terminal bell)."""

from __future__ import annotations

from textual.widgets import Static

KINDS = ("-ok", "-error", "-info")


class ScanFeedback(Static):
    def show(self, kind: str, text: str) -> None:
        for name in KINDS:
            self.set_class(name == f"-{kind}", name)
        self.update(text)

    def ok(self, text: str) -> None:
        self.show("ok", f"✔ {text}")

    def error(self, text: str) -> None:
        self.show("error", f"✘ {text}")

    def info(self, text: str) -> None:
        self.show("info", text)

    @property
    def kind(self) -> str | None:
        return next((name[1:] for name in KINDS if self.has_class(name)), None)

    @property
    def text(self) -> str:
        return str(self.content)
