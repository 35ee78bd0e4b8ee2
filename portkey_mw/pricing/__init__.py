"""What a request cost: the usage its provider reported, priced by genai-prices.

Prices come from `genai-prices <https://pypi.org/project/genai-prices/>`_, per provider as
well as per model, with cache reads and cache writes at the provider's own rates. Its data
ships inside the package and portkey-mw reads only that bundled copy: it never starts
genai-prices' ``UpdatePrices`` (the one part of the package that downloads anything) and
never reads the process-wide snapshot such an updater replaces, so prices change when the
installed package does and a machine without network prices exactly the same.

:mod:`.providers` maps portkey-mw's provider ids to genai-prices' (the one table of them);
:mod:`.usage` reads a response's usage; :mod:`.table` holds :class:`PriceTable`. The
server file's ``pricing`` adds or overrides a model's price, and an override wins. A model
neither prices has no cost (``None``), counted as unpriced, never a guessed one.
"""

from portkey_mw.pricing.providers import PROVIDERS, TRANSLATED
from portkey_mw.pricing.table import Price, PriceTable

__all__ = ["PROVIDERS", "TRANSLATED", "Price", "PriceTable"]
