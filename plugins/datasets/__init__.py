"""Dataset plugins (tfpipe.datasets): where data comes from and how it decodes into samples."""
