"""The web console: live devices, tags, energy and OEE in a browser (docs/CONSOLE.md).

Served on the health listener's aiohttp app (:mod:`edge_agent.service.health`):
``app`` (routes and guards), ``answers`` (headers, JSON, static files, language),
``stream`` (the live server-sent events), ``auth`` (users, sessions, CSRF, the login brake),
``ring`` (recent batches, kept per poll group), ``views`` (the documents the pages
read), ``energy`` (the energy and production page), ``commissioning`` (read, probe,
read a device once), ``logring`` (recent warnings and errors), ``static/`` (the pages).
"""
