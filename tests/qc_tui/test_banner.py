"""ConnectionBanner: hidden until the connection is lost."""

from __future__ import annotations

from textual.app import App, ComposeResult

from qc_tui.banner import ConnectionBanner


class BannerApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ConnectionBanner()


async def test_show_and_hide() -> None:
    app = BannerApp()
    async with app.run_test() as pilot:
        banner = app.query_one(ConnectionBanner)
        await pilot.pause()
        assert not banner.display and not banner.lost
        assert banner.region.height == 0

        banner.show_lost("[b]server[/b] closed the socket")
        await pilot.pause()
        assert banner.display and banner.lost
        assert banner.region.height == 1
        # The reason is shown verbatim, never interpreted as markup.
        assert str(banner.content) == (
            "⚠ Connection lost — retrying… ([b]server[/b] closed the socket)"
        )

        banner.hide()
        await pilot.pause()
        assert not banner.display and not banner.lost


async def test_show_without_reason() -> None:
    app = BannerApp()
    async with app.run_test() as pilot:
        banner = app.query_one(ConnectionBanner)
        banner.show_lost()
        await pilot.pause()
        assert str(banner.content) == "⚠ Connection lost — retrying…"
