"""Scan feedback: a clear green confirmation, a red refusal (with the terminal bell), and
the whole screen flashing the same colour for a moment, so a picker sees the result from
the corner of an eye while reaching for the next item."""

from __future__ import annotations

from qc_tui.feedback import ResultPanel

FLASHES = ("-flash-ok", "-flash-error")
FLASH_S = 0.35


class ScanFeedback(ResultPanel):
    flashed = 0  # how many flashes so far (a flash is over in a moment)
    last_flash: str | None = None  # the colour of the latest: ok or error

    def show(self, kind: str, text: str) -> None:
        self.say(text, kind)
        if kind in ("ok", "error"):
            self.flash(kind)

    def flash(self, kind: str) -> None:
        """The whole screen in the result's colour for ``FLASH_S`` (then as it was)."""
        screen = self.screen
        self.flashed += 1
        self.last_flash = kind
        for name in FLASHES:
            screen.set_class(name == f"-flash-{kind}", name)
        self.set_timer(FLASH_S, lambda: screen.remove_class(*FLASHES))

    @property
    def flashing(self) -> str | None:
        return next((name[7:] for name in FLASHES if self.screen.has_class(name)), None)

    def ok(self, text: str) -> None:
        self.show("ok", f"✔ {text}")

    def error(self, text: str) -> None:
        self.show("error", f"✘ {text}")

    def info(self, text: str) -> None:
        self.show("info", text)

    @property
    def text(self) -> str:
        return str(self.content)
