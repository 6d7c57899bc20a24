"""The procedure core: multi-agency group supervision as pure Python.

Nothing in this package imports Teams, aiohttp, Graph, Azure or TinyDB (a test enforces it).
Ports (typing.Protocol) in ``supervision.ports`` describe what the use cases need from the edge.
"""
