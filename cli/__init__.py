"""Command-line interface: ``detect scan``, ``detect inspect`` and friends."""
