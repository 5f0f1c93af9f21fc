"""What a reader sees: the run folder (``metrics.json``, tables, figures; :mod:`.run_folder`), the
figures (:mod:`.plots`, :mod:`.plots_defenses`), the offline HTML reports and their index."""
