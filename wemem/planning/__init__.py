"""What a batch will cost before it runs, without loading any dataset: the data geometry and jobs
(:mod:`.geometry`, :mod:`.jobs`), each notebook's plan built with the studies' own config builders
and the experiment's cache-key functions (:mod:`.workload`, :mod:`.entries`), the cost model
(:mod:`.costing`), the dry-run table (:mod:`.dry_run`) and the check that a finished batch trained
exactly the planned models (:mod:`.verify`)."""
