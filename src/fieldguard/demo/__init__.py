"""A small social network guarded by the shipped policies.

The same data behind a strawberry schema (:mod:`.strawberry_schema`) and a
plain graphql-core SDL schema (:mod:`.sdl_schema`); :mod:`.app` serves the
strawberry one over ASGI, and ``python -m fieldguard.demo`` runs a scripted
tour (who sees what, and a scraper being cut off) against it over real HTTP.
"""
