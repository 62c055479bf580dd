"""Raw data: where each dataset comes from (``registry``), how to fetch it (``download``), the
manifest a download leaves behind (``manifest``) and the locally generated demo signals (``demo``).

Modules are imported on demand (``from implicit2.data.registry import resolve_dataset``) so that
importing the package stays cheap.
"""
