"""Distribution on Dask: batch queries over a KB snapshot."""
