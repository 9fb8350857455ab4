"""The ferryman console (Textual). Entry point: `tui.app.FerrymanApp(backend).run()`."""
