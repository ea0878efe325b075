"""Account filter expression language (see docs/filter-language.md).

>>> f = parse_filter("customFields != null AND customFields.country == UK")
>>> f.matches({"customFields": {"country": "UK"}})
True
"""

from .errors import FilterSyntaxError
from .evaluate import AccountFilter
from .parser import MAX_DEPTH, parse_filter

__all__ = ["MAX_DEPTH", "AccountFilter", "FilterSyntaxError", "parse_filter"]
