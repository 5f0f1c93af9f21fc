"""What each notebook family computes and claims, one module per paper figure or table.

- :mod:`~wemem.studies.motivation`: the motivation experiment (02; dense vs one-shot vs iterative).
- :mod:`~wemem.studies.sweeps`: evaluate defense configs on an experiment (03–07, 09, 11), n_c, τ.
- :mod:`~wemem.studies.windows`: Fig. 5 and Fig. 6, RSW (03) and SWMR (05) window grids.
- :mod:`~wemem.studies.rmr`: the RMR table, λr ∈ {0.01, 0.1, 1} (04).
- :mod:`~wemem.studies.comparison`: Fig. 7, baselines against WeMem (06), and DP-SGD (07).
- :mod:`~wemem.studies.attack_report`: the attacks of 08.
- :mod:`~wemem.studies.pruning_choices`: Fig. 8 (iterative vs one-shot), Fig. 9 (structured) and
  the pruning rates (09).
- :mod:`~wemem.studies.time_cost`: the time table T-time (10).
- :mod:`~wemem.studies.autotune`: automatic settings (11).
- :mod:`~wemem.studies.paper_tables`, :mod:`~wemem.studies.paper_values`: the paper's numbers beside
  the reproduced ones (12); :mod:`~wemem.studies.overview`: the datasets and names tables (00).
"""
