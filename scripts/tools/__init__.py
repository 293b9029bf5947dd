"""Tools: the single-file trf (`build_pyz`, with its entry `pyz_main`), build manifests, one pilot job by hand."""
