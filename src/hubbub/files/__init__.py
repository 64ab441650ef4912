"""Uploaded files: where their bytes live (``base.FileStore``, ``local.LocalFileStore``), and the
pure rules for names and content types (``names``, ``sniff``)."""
