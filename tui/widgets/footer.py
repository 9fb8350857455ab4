"""Textual's footer, rebuilt only when the keys it shows change."""

from __future__ import annotations

from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    """Textual's footer rebuilds all its keys whenever the screen's bindings are refreshed
    (a focus change, a screen pushed or popped over it); here it does so only when the
    active bindings differ from the ones it shows."""

    _shown: tuple | None = None

    def _keys(self) -> tuple | None:
        if not self._bindings_ready:
            return None
        palette = self.app.COMMAND_PALETTE_BINDING
        return (
            self.compact,
            self.show_command_palette,
            tuple(
                (key, b, enabled, tooltip)
                for key, (_, b, enabled, tooltip) in self.screen.active_bindings.items()
                if b.show or key == palette  # what compose shows
            ),
        )

    def compose(self):
        self._shown = self._keys()
        yield from super().compose()

    async def recompose(self) -> None:
        if self._shown is not None and self.is_attached and self._keys() == self._shown:
            return
        await super().recompose()
