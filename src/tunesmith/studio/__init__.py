"""``tunesmith studio``: a local web page to generate, continue, regenerate bars, listen,
look and download, over the checkpoints given when it starts (server + bundled assets)."""
