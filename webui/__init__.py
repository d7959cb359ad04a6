"""The browser UI and the copilot widget: static files served by the server at ``/``.

Everything the browser loads is a plain file in this package (ES modules, CSS, the vendored
libraries under ``vendor/``): there is no build step and Node.js is never needed to install or
run Triolet. `find_asset` is how the HTTP app finds one of those files safely.
"""

from ._assets import Asset, find_asset

__all__ = ["Asset", "find_asset"]
