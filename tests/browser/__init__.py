"""Browser tests: the notebooks' widgets in JupyterLab in headless Chromium."""
