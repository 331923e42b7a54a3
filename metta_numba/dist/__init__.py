"""Beyond one machine (DESIGN.md section 8, docs/cluster.md): sharded KBs (partition, manifest,
sharded_kb, shard_build), and batches of queries on Dask (batch, cluster)."""
